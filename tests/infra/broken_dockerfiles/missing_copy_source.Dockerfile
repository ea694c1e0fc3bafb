# BROKEN on purpose (make image-test must refuse it): a COPY source that is not in the context.
# EXPECT: copy-source-missing
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS builder
COPY requirements/service-gpu.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
COPY asr_service /app/asr_service
RUN useradd --system --uid 10001 app
USER app
WORKDIR /app
ENTRYPOINT ["/opt/venv/bin/python", "-m", "asr_service"]
