# The Runway worker image (docker-compose.yml's `worker` and `topics` services).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml ./
COPY config ./config
COPY streams ./streams
COPY agents ./agents
COPY tables ./tables
COPY sinks ./sinks
COPY stack ./stack
RUN pip install --upgrade pip && pip install . \
    && useradd --create-home --uid 1000 runway && mkdir -p /data && chown runway /data
USER runway
EXPOSE 6066
CMD ["runway", "worker", "-l", "info"]
