"""The optimisation step both training recipes share learns a fixed target."""

from __future__ import annotations

import torch
from torch import nn

from training.ctc_step import ctc_update


def test_ctc_update_lowers_the_loss_of_a_repeated_batch() -> None:
    torch.manual_seed(0)
    model = nn.Linear(8, 5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    features = torch.randn(2, 12, 8)
    targets = [[1, 2, 3], [4, 4]]
    losses = []
    for _ in range(30):
        log_probs = model(features).log_softmax(-1)
        losses.append(
            ctc_update(
                model=model,
                optimizer=optimizer,
                ctc=ctc,
                log_probs=log_probs,
                out_lens=torch.tensor([12, 10]),
                targets=targets,
                grad_clip=2.0,
            )
        )
    assert losses[-1] < 0.5 * losses[0]
