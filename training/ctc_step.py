"""One optimisation step on a CTC loss: what both training recipes (GRU demo, small Conformer) share."""

from __future__ import annotations

import torch
from torch import nn


def ctc_update(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ctc: nn.CTCLoss,
    log_probs: torch.Tensor,  # [batch, frames, classes]
    out_lens: torch.Tensor,
    targets: list[list[int]],
    grad_clip: float,
) -> float:
    """Loss, backward, clip, step; returns the batch loss (for the smoothed log line)."""
    loss = ctc(
        log_probs.transpose(0, 1),
        torch.tensor([t for seq in targets for t in seq]),
        out_lens,
        torch.tensor([len(seq) for seq in targets]),
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return float(loss.item())
