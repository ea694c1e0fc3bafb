"""Operator commands: ``python -m ops.upload_model``, ``python -m ops.rollout`` and ``python -m ops.tokens``.

They run the same code as the Lambdas (the ``ezspeech_common`` layer in ``functions/common``),
which is put on ``sys.path`` here when the caller has not (the Makefile and pytest do).
"""

from __future__ import annotations

import sys
from pathlib import Path

_LAYER = Path(__file__).resolve().parent.parent / "functions" / "common"
if str(_LAYER) not in sys.path:
    sys.path.append(str(_LAYER))
