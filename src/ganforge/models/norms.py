"""Spectral normalisation (Miyato et al. 2018): each of D's layers divided by its largest singular
value, estimated by one power iteration per forward pass. D becomes 1-Lipschitz per layer, so its
gradients cannot explode and G gets a smooth signal; no batch statistics, so it suits any loss."""

from __future__ import annotations

from torch import nn


def spectral(layer: nn.Module) -> nn.Module:
    """Wrap `layer`'s weight in PyTorch's spectral-norm parametrisation (in place) and return it."""
    return nn.utils.parametrizations.spectral_norm(layer)
