"""EzSpeech's CTC Conformer (config ``ctc_sc``): architecture and features, what serving needs.

Reading EzSpeech's own files and mapping their key layout is the converter's job
(``ezspeech_convert``, not shipped in the image).

Importing this package registers the ``ezspeech_ctc_sc`` architecture with the checkpoint loader.
"""

from asr_service.ezspeech.features import FilterbankSettings
from asr_service.ezspeech.model import ARCH, BLANK_TOKEN, EzSpeechCTC, EzSpeechHParams, build_ezspeech_ctc

__all__ = [
    "ARCH",
    "BLANK_TOKEN",
    "EzSpeechCTC",
    "EzSpeechHParams",
    "FilterbankSettings",
    "build_ezspeech_ctc",
]
