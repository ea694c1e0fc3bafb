"""EzSpeech ASR service: streaming speech recognition over WebSocket."""

__version__ = "0.1.0"
