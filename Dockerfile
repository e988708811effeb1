# Two stages: the wheel is built from the source tree (what goes in is what pyproject.toml packages; .dockerignore
# keeps tests, fakes, benchmarks, data and secrets out of the context), then installed alone into a clean image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
  && useradd --create-home --uid 10001 flowbot && mkdir -p /data && chown flowbot /data
USER flowbot
WORKDIR /home/flowbot
ENV DATA_DIR=/data HEALTH_HOST=0.0.0.0 HEALTH_PORT=8080 LOG_FORMAT=json NUMBA_CACHE_DIR=/tmp/numba
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HEALTH_PORT\", \"8080\")}/healthz', timeout=4)"
CMD ["flowbot", "run"]
