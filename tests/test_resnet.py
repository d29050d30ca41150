"""ResNet (SNGAN-style) G and D, and the class-conditional variants of every model family."""

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.models import build, count_parameters
from ganforge.models.resnet import SUPPORTED


@pytest.mark.parametrize("resolution", [16, 28, 32, 64, 128])
def test_resnet_shapes(resolution):
    channels = 1 if resolution == 28 else 3
    G, D = build("resnet", (channels, resolution, resolution), latent_dim=8, width=4)
    x = G(torch.randn(2, 8))
    assert x.shape == (2, channels, resolution, resolution)
    assert x.abs().max() <= 1.0
    assert D(x).shape == (2,)


def test_resnet_supported_resolutions():
    assert {16, 28, 32, 64, 128} <= set(SUPPORTED) and 8 not in SUPPORTED
    with pytest.raises(ConfigError, match="--resolution"):
        build("resnet", (3, 8, 8), latent_dim=8)
    with pytest.raises(ConfigError, match="mlp"):
        build("resnet", (2,), latent_dim=8)


def test_resnet_gradients_reach_every_parameter():
    G, D = build("resnet", (3, 32, 32), latent_dim=8, width=4, num_classes=3)
    y = torch.tensor([0, 1, 2, 1])
    D(G(torch.randn(4, 8), y), y).sum().backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"


def test_resnet_discriminator_is_spectrally_normalised():
    _, D = build("resnet", (3, 16, 16), latent_dim=8, width=4)
    D.train()
    for _ in range(20):  # power iterations converge while training runs forward passes
        D(torch.randn(2, 3, 16, 16))
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    w = convs[1].weight.detach().flatten(1)
    assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1.0) < 0.05


def test_resnet_parameter_counts_are_sensible():
    G, D = build("resnet", (3, 32, 32), latent_dim=128, width=64)
    g, d = count_parameters(G), count_parameters(D)
    assert 2e6 < g < 2e7 and 5e5 < d < 1e7, (g, d)
    G64, D64 = build("resnet", (3, 64, 64), latent_dim=128, width=64)
    assert count_parameters(G64) > g and count_parameters(D64) > d  # one more level each
    Gs, _ = build("resnet", (3, 32, 32), latent_dim=128, width=32)
    assert count_parameters(Gs) < g / 3  # channels halve, convolutions shrink by ~4


@pytest.mark.parametrize("model,shape", [("mlp", (2,)), ("mlp", (1, 8, 8)), ("dcgan", (1, 16, 16)),
                                         ("dcgan", (3, 28, 28)), ("resnet", (1, 16, 16))])
def test_conditional_models_use_the_class(model, shape):
    torch.manual_seed(0)
    G, D = build(model, shape, latent_dim=8, width=8, num_classes=5)
    for m in G.modules():  # conditional BatchNorm starts as plain BN; move it as training would
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight)
    G.eval(), D.eval()
    z = torch.randn(4, 8)
    a, b = torch.zeros(4, dtype=torch.long), torch.full((4,), 3)
    with torch.no_grad():
        assert G(z, a).shape == (4, *shape)
        assert not torch.allclose(G(z, a), G(z, b)), "G ignores the class"
        x = G(z, a)
        assert D(x, a).shape == (4,)
        assert not torch.allclose(D(x, a), D(x, b)), "D ignores the class"


def test_unconditional_models_keep_their_parameters():
    """Old checkpoints still load: the unconditional models have exactly the same tensors as before."""
    G, D = build("dcgan", (1, 16, 16), latent_dim=8, width=8)
    assert not any("embed" in k or "projection" in k for k in [*G.state_dict(), *D.state_dict()])
    assert G(torch.randn(2, 8)).shape == (2, 1, 16, 16)
