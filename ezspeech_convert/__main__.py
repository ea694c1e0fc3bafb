"""``python -m ezspeech_convert CKPT --tokenizer T --out OUT``: see ``ezspeech_convert.convert``."""

import torch

from ezspeech_convert.convert import main

torch.set_grad_enabled(False)
raise SystemExit(main())
