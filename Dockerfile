# One image for the GridWatch services (ingest, streams, tickets).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gridwatch ./gridwatch
COPY ingest ./ingest
COPY streams ./streams
COPY models ./models
COPY tickets ./tickets
COPY dashboards ./dashboards
COPY simulators ./simulators
RUN pip install . && useradd --system --uid 10001 gridwatch && mkdir -p /data && chown gridwatch /data
USER gridwatch
ENV GW_STACK__VAR_DIR=/data
ENTRYPOINT ["gridwatch"]
CMD ["--help"]
