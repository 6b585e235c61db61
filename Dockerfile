# syntax=docker/dockerfile:1
# Runtime image of the worker and the batch commands. It talks to a ClickHouse server
# (AMLSCORE_CLICKHOUSE_URL), so the embedded engine (chdb, ~530 MB) is left out.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY stream ./stream
COPY batch ./batch
COPY amlscore ./amlscore
RUN pip install --upgrade pip && pip install . \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3.11/site-packages/pip

FROM python:3.11-slim
RUN groupadd --system --gid 10001 amlscore \
    && useradd --system --uid 10001 --gid amlscore --create-home --home-dir /home/amlscore amlscore \
    && mkdir -p /data /models && chown amlscore:amlscore /data /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AMLSCORE_HOME=/data \
    AMLSCORE_MODELS_DIR=/models \
    AMLSCORE_WEB_HOST=0.0.0.0 \
    AMLSCORE_WEB_PORT=6066
USER amlscore
WORKDIR /home/amlscore
EXPOSE 6066
# Liveness reflects progress (the event loop ticks, no batch stuck), not just a process.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AMLSCORE_WEB_PORT', '6066') + '/live', timeout=2)"]
ENTRYPOINT ["amlscore"]
CMD ["worker"]
