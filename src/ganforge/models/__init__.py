"""Generator / discriminator pairs, built for a dataset's sample shape.

Every G maps noise (B, latent_dim) to a sample in the data's float range ([-1, 1] images, raw 2-D
points); every D maps a sample to one logit per item, shape (B,). D never applies a sigmoid: the
losses work on logits, which keeps them numerically stable.

Built with num_classes > 0 they are class-conditional: G(z, y) and D(x, y) with y (B,) int64 class
indices (a class embedding or conditional BatchNorm in G, a projection head in D: models/conditional.py).
"""

from __future__ import annotations

from torch import nn

from ganforge.errors import ConfigError

MODELS = ("mlp", "dcgan", "resnet")


def build(name: str, data_shape: tuple[int, ...], *, latent_dim: int, width: int | None = None,
          d_norm: str = "batch", num_classes: int = 0, components: int = 0,
          d_hidden: int = 0) -> tuple[nn.Module, nn.Module]:
    """Return (G, D) of model family `name` for samples of shape `data_shape` ((C, H, W) or (2,));
    class-conditional ones for `num_classes` > 0; `components` > 0 splits the mlp G's noise (models/mlp.py);
    `d_hidden` > 0 gives the dcgan D a hidden layer in its head (models/dcgan.py)."""
    if components and name != "mlp":
        raise ConfigError(f"--latent-components works with the mlp model, not {name}: drop it or use --model mlp")
    if d_hidden and name != "dcgan":
        raise ConfigError(f"--d-hidden works with the dcgan model, not {name}: drop it or use --model dcgan")
    if name == "mlp":
        from ganforge.models.mlp import MLPDiscriminator, MLPGenerator
        hidden = width or (256 if len(data_shape) == 1 else 512)
        return (MLPGenerator(latent_dim, data_shape, hidden, num_classes=num_classes, components=components),
                MLPDiscriminator(data_shape, hidden, norm=d_norm, num_classes=num_classes))
    if name == "dcgan":
        from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator, check_image_shape
        check_image_shape(data_shape)
        base = width or 64
        return (DCGANGenerator(latent_dim, data_shape, base, num_classes=num_classes),
                DCGANDiscriminator(data_shape, base, norm=d_norm, num_classes=num_classes, hidden=d_hidden))
    if name == "resnet":  # SNGAN-style; D has spectral norm and no normalisation layers, so d_norm does not apply
        from ganforge.models.resnet import ResNetDiscriminator, ResNetGenerator, check_image_shape
        check_image_shape(data_shape)
        base = width or 64
        return (ResNetGenerator(latent_dim, data_shape, base, num_classes=num_classes),
                ResNetDiscriminator(data_shape, base, num_classes=num_classes))
    raise ConfigError(f"unknown model '{name}': use one of {', '.join(MODELS)}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["build", "MODELS", "count_parameters"]
