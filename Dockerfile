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
ENV DATA_DIR=/data HEALTH_HOST=0.0.0.0 HEALTH_PORT=8080 LOG_FORMAT=json NUMBA_CACHE_DIR=/tmp/numba
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HEALTH_PORT\", \"8080\")}/healthz', timeout=4)"
CMD ["flowbot", "run"]
