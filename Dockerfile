# The ltvcac worker: `docker build -t ltvcac .`, then `docker run ltvcac` runs `ltvcac worker`
# with the LTVCAC_* settings given (see the README's Settings). docker-compose.yml uses it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY stream ./stream
RUN pip install .
# the demo shop of the compose profile "demo"
COPY deploy/demo ./deploy/demo

RUN useradd --system --uid 10001 --home-dir /data --create-home ltvcac
USER ltvcac
WORKDIR /data

# A container is reached from outside: /metrics binds every interface.
ENV LTVCAC_WEB_HOST=0.0.0.0 \
    LTVCAC_WEB_PORT=6066 \
    LTVCAC_DATA_DIR=/data/ltvcac-data
EXPOSE 6066

ENTRYPOINT ["ltvcac", "worker"]
