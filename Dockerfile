# bliss-exporter container image.
#
#   docker build -t bliss-exporter .          (or: podman build --format docker -t bliss-exporter .)
#   docker run -d -p 9811:9811 -e BEACON_HOST=beacon.id00:10001 -e BLISS_EXPORTER_SESSIONS=id00_* bliss-exporter
#
# Configuration by environment (docs/deployment.md; every flag has one, see README.md):
#   BLISS_EXPORTER_REDIS_URL        data Redis, e.g. redis://bliss-data:6380   (or:)
#   BEACON_HOST                     Beacon HOST:PORT, asked for the data Redis URL
#   BLISS_EXPORTER_SESSIONS         comma-separated session globs (default: all sessions)
#   BLISS_EXPORTER_STALL_THRESHOLD  idle seconds after which an active scan is stalled (default 600)
#   BLISS_EXPORTER_WEB_CONFIG_FILE  TLS / basic auth file (mount it read-only), see deploy/web-config.example.yml
#   BLISS_EXPORTER_LISTEN_ADDRESS   default 0.0.0.0:9811

# The base is Debian 12's slim image with Debian's own Python 3.11: what the test suite rebuilds
# from Debian's packages (debootstrap) when no image registry is reachable, so the image it tests is
# built from this file unchanged (docs/deployment.md, "Container image").
# -- builder: a virtual environment with the exporter and its runtime dependencies only ----------
FROM debian:bookworm-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive
# Debian stable's python3 (3.11): versions follow the release's security updates, not pinned here
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
COPY deploy/install-venv.sh deploy/install-venv.sh
RUN sh deploy/install-venv.sh /opt/bliss-exporter /src

# -- runtime: Debian's python3 (no pip, no venv module, no compiler), the virtual environment, a non-root user
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="bliss-exporter" \
      org.opencontainers.image.description="Prometheus exporter for BLISS scans published through blissdata (BLISS 2.x and 1.x data stores)" \
      org.opencontainers.image.licenses="MIT"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin bliss-exporter
COPY --from=builder /opt/bliss-exporter /opt/bliss-exporter
ENV PATH=/opt/bliss-exporter/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BLISS_EXPORTER_LISTEN_ADDRESS=0.0.0.0:9811 \
    BLISS_EXPORTER_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9811
# /healthz answers 200 while the process runs (and is open under basic auth); over HTTPS when the
# web config has tls_server_config (the certificate is not verified: it is the container itself).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request, yaml; env = os.environ.get; conf = env('BLISS_EXPORTER_WEB_CONFIG_FILE'); tls = bool(conf and (yaml.safe_load(open(conf)) or {}).get('tls_server_config')); host, _, port = env('BLISS_EXPORTER_LISTEN_ADDRESS', '0.0.0.0:9811').rpartition(':'); host = host.strip('[]'); host = '127.0.0.1' if host in ('', '0.0.0.0', '::') else host; host = f'[{host}]' if ':' in host else host; urllib.request.urlopen(f\"{'https' if tls else 'http'}://{host}:{port}/healthz\", timeout=4, context=ssl._create_unverified_context() if tls else None)"]
ENTRYPOINT ["bliss-exporter"]
