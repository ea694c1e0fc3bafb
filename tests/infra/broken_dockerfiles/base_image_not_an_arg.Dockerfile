# BROKEN on purpose (make image-test must refuse it): a hard-coded base image cannot be swapped
# for the local one, and no registry can be reached here.
# EXPECT: base-image-arg
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY requirements/service.txt /app/requirements.txt
RUN python -m pip install --no-cache-dir -r /app/requirements.txt
COPY asr_service /app/asr_service
RUN useradd --system --uid 10001 app
USER app
ENTRYPOINT ["python", "-m", "asr_service"]
