# BROKEN on purpose (make image-test must refuse it): no USER, so the server runs as root.
# EXPECT: runtime-user
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements/service.txt /app/requirements.txt
RUN python -m pip install --no-cache-dir -r /app/requirements.txt
COPY asr_service /app/asr_service
ENTRYPOINT ["python", "-m", "asr_service"]
