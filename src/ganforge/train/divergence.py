"""Divergence: NaN or Inf in the losses or the weights.

The check costs no extra host sync: whether every weight is finite is computed on the device and
appended to the interval's statistics, which the trainer copies to the host once per log interval
(and before each checkpoint, so a checkpoint is only ever written from finite weights: every
checkpoint on disk is a good one). On divergence the policy either stops the run or rolls back to
the newest checkpoint with the learning rates lowered, a bounded number of times.
"""

from __future__ import annotations

import math

import torch
from torch import nn

POLICIES = ("stop", "rollback")
LR_FACTOR = 0.5  # each rollback halves both learning rates


def weights_finite(*modules: nn.Module) -> torch.Tensor:
    """1.0 if every parameter and buffer of the modules is finite, else 0.0, as a device scalar."""
    flags = [torch.isfinite(t).all() for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    return torch.stack(flags).all().float().reshape(1) if flags else torch.ones(1)


def find_problem(names: tuple[str, ...], values: list[float], weights_ok: float) -> str | None:
    """A short description of what is not finite, or None when all is well."""
    problems = [f"{n} is {v}" for n, v in zip(names, values) if not math.isfinite(v)]
    if weights_ok != 1.0:
        problems.append("the weights hold NaN or Inf")
    return ", ".join(problems) or None


class DivergenceGuard:
    """What to do on divergence, and how often it has been done (saved in checkpoints)."""

    def __init__(self, policy: str = "stop", max_rollbacks: int = 3):
        self.policy, self.max_rollbacks = policy, max_rollbacks
        self.rollbacks, self.lr_scale = 0, 1.0

    def may_roll_back(self) -> bool:
        return self.policy == "rollback" and self.rollbacks < self.max_rollbacks

    def roll_back(self) -> float:
        """Count one rollback; returns the new learning-rate scale (relative to the configured rates)."""
        self.rollbacks += 1
        self.lr_scale *= LR_FACTOR
        return self.lr_scale

    def state_dict(self) -> dict:
        return {"rollbacks": self.rollbacks, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict) -> None:
        self.rollbacks, self.lr_scale = state["rollbacks"], state["lr_scale"]
