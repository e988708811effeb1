FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY flowbot ./flowbot
COPY engine ./engine
COPY storage ./storage
COPY ai ./ai
COPY bot ./bot
COPY fakes ./fakes
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 flowbot && mkdir -p /data && chown flowbot /data
USER flowbot
ENV DATA_DIR=/data
CMD ["flowbot", "run"]
