# BROKEN on purpose (make image-test must refuse it): single quotes are not JSON, so Docker runs
# this ENTRYPOINT through /bin/sh -c and SIGTERM reaches the shell instead of the server.
# EXPECT: exec-form-json
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements/service.txt /app/requirements.txt
RUN python -m pip install --no-cache-dir -r /app/requirements.txt
COPY asr_service /app/asr_service
RUN useradd --system --uid 10001 app
USER app
ENTRYPOINT ['python', '-m', 'asr_service']
