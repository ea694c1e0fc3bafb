# BROKEN on purpose: the project's Dockerfile (as of commit e98601d) with ONE defect, a
# COPY --chmod=600 of the server package, so the runtime user (10001) cannot read or enter it.
# Nothing in the Dockerfile's text is wrong to a static check; `make image-test
# DOCKERFILE=tests/infra/broken_dockerfiles/unreadable_packages.Dockerfile` builds it and must
# fail at the in-container check (run as the runtime user, then as root for the diagnosis).
# EXPECT-AFTER-BUILD: in-container-check
# syntax=docker/dockerfile:1
# asr-server: the streaming ASR WebSocket server (asr_service) with its shipped demo model.
#
#   make build                      # docker build, tagged with the git revision
#   docker run -p 8765:8765 -p 8080:8080 <image>                 # CPU
#   docker run --gpus all -p 8765:8765 -p 8080:8080 <image>      # NVIDIA host: DEVICE=auto picks cuda
#
# The PyPI torch wheel pinned in requirements/service.txt bundles its CUDA libraries, so this one
# image runs on the CPU (Fargate) and on an NVIDIA GPU (the ECS GPU-optimized AMI provides the
# driver and the container runtime hook); no CUDA base image is needed.
# BASE_IMAGE stays the public image; `make image-test` builds with a locally made stand-in.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ------------------------------------------------------------------------------ builder
#checkov:skip=CKV_DOCKER_7: the base is an ARG whose default is the versioned python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the pins enter this layer, so code changes never reinstall the (large) dependencies.
COPY requirements/service.txt requirements/constraints.txt /tmp/requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir \
        -r /tmp/requirements/service.txt -c /tmp/requirements/constraints.txt \
    && /opt/venv/bin/python -c "import torch, torchaudio, websockets, uvloop, soundfile, structlog, boto3" \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} + \
    && chmod -R a+rX /opt/venv

# ------------------------------------------------------------------------------ runtime
FROM ${BASE_IMAGE} AS runtime

# libsndfile1: soundfile's C library (WAV decoding of uploaded audio). Not version-pinned on
# purpose: bookworm's security updates replace old package versions, so a pin breaks the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid: `USER 10001:10001` below is then verifiably non-root without a passwd lookup.
RUN groupadd --system --gid 10001 asr \
    && useradd --system --uid 10001 --gid asr --home-dir /app --no-create-home --shell /usr/sbin/nologin asr

# The venv and the code stay owned by root and world-readable: the server can read them but not
# change them (and the ECS task runs with a read-only root filesystem anyway). The venv was made
# readable in the builder: a chmod here would copy its gigabytes into one more layer.
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# DEFECT: 600 on directories too: no read, no traverse for anyone but root.
COPY --chmod=600 asr_service/ /app/asr_service/
RUN mkdir -p /tmp/asr-models && chown asr:asr /tmp/asr-models && chmod 1777 /tmp

# The only writable place: downloaded models (MODEL_CACHE_DIR) and temp files. ECS mounts a
# scratch volume here under a read-only root filesystem; declaring it as a VOLUME makes ECS give
# that mount this directory's mode (1777) instead of root-only 0755, so the non-root user can write.
VOLUME ["/tmp"]

# Defaults of the container contract (DESIGN.md); the task definition sets its own values.
# PYTHONDONTWRITEBYTECODE: the code directory is not writable by the server's user.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8765 \
    HEALTH_PORT=8080 \
    LOG_LEVEL=INFO \
    DEVICE=auto \
    MODEL_CACHE_DIR=/tmp/asr-models

USER 10001:10001

# 8765: WebSocket (clients), 8080: HTTP /health /ready /metrics (inside the network only).
EXPOSE 8765 8080

# The server drains on SIGTERM: /ready turns 503, open sessions get their finals and a 1001 close.
STOPSIGNAL SIGTERM

# Liveness (/health), not readiness: a draining or warming server is alive. No curl in the image;
# the port follows HEALTH_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '8080') + '/health', timeout=4)"]

# Exec form: no shell in between, so python itself receives SIGTERM and drains. Every setting
# comes from the environment (or from flags appended, as in `docker run <image> --port 9000`).
ENTRYPOINT ["python", "-m", "asr_service"]
