"""Generator / discriminator pairs, built for a dataset's sample shape.

Every G maps noise (B, latent_dim) to a sample in the data's float range ([-1, 1] images, raw 2-D
points); every D maps a sample to one logit per item, shape (B,). D never applies a sigmoid: the
losses work on logits, which keeps them numerically stable.
"""

from __future__ import annotations

from torch import nn

from ganforge.errors import ConfigError

MODELS = ("mlp", "dcgan")


def build(name: str, data_shape: tuple[int, ...], *, latent_dim: int, width: int | None = None,
          d_norm: str = "batch") -> tuple[nn.Module, nn.Module]:
    """Return (G, D) of model family `name` for samples of shape `data_shape` ((C, H, W) or (2,))."""
    if name == "mlp":
        from ganforge.models.mlp import MLPDiscriminator, MLPGenerator
        hidden = width or (256 if len(data_shape) == 1 else 512)
        return (MLPGenerator(latent_dim, data_shape, hidden),
                MLPDiscriminator(data_shape, hidden, norm=d_norm))
    if name == "dcgan":
        from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator, check_image_shape
        check_image_shape(data_shape)
        base = width or 64
        return (DCGANGenerator(latent_dim, data_shape, base),
                DCGANDiscriminator(data_shape, base, norm=d_norm))
    raise ConfigError(f"unknown model '{name}': use one of {', '.join(MODELS)}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["build", "MODELS", "count_parameters"]
