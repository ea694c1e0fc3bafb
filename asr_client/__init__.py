"""Clients of the service and of its models, kept out of the image (which ships ``asr_service``).

- ``python -m asr_client`` (``stream``): stream a WAV file or the microphone to a running server.
- ``python -m asr_client.transcribe``: whole-file transcription with a checkpoint, no server.
"""
