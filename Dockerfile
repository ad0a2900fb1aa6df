# The Runway worker image (docker-compose.yml's `worker` and `topics` services).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml ./
# Every package of pyproject.toml's [tool.setuptools] packages (tests/unit/test_layout.py checks).
COPY config ./config
COPY contracts ./contracts
COPY tables ./tables
COPY sinks ./sinks
COPY agents ./agents
COPY streams ./streams
COPY registry ./registry
COPY retrain ./retrain
COPY autoscale ./autoscale
COPY staleness ./staleness
COPY stack ./stack
COPY tools ./tools
RUN pip install --upgrade pip && pip install . \
    && useradd --create-home --uid 1000 runway && mkdir -p /data && chown runway /data
USER runway
EXPOSE 6066
CMD ["runway", "worker", "-l", "info"]
