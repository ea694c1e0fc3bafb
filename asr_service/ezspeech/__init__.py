"""EzSpeech's CTC Conformer (config ``ctc_sc``): architecture, features and checkpoint layout.

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
