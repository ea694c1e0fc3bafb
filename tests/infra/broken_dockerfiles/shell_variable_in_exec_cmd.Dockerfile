# BROKEN on purpose (make image-test must refuse it): exec-form CMD with a shell variable.
# EXPECT: exec-form-variable
# No shell runs an exec-form CMD, so the server receives the literal text "$SERVER_PORT".
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements/service.txt /app/requirements.txt
RUN python -m pip install --no-cache-dir -r /app/requirements.txt
COPY asr_service /app/asr_service
RUN useradd --system --uid 10001 app
USER app
ENTRYPOINT ["python", "-m", "asr_service"]
CMD ["--port", "$SERVER_PORT", "--health-port", "${HEALTH_PORT}"]
