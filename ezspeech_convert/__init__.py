"""EzSpeech checkpoints into the project's safe checkpoint format (``python -m ezspeech_convert``).

Conversion-only code (reading EzSpeech's files, mapping its key layout) lives here, outside the
serving package, so the image ships only what serving needs; the converted model itself is
served by ``asr_service.ezspeech``.
"""
