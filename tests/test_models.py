import pytest
import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.models import build
from ganforge.models.dcgan import SUPPORTED, LatentProjection
from ganforge.models.mlp import LatentComponents


@pytest.mark.parametrize("resolution", [8, 16, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(resolution, channels):
    G, D = build("dcgan", (channels, resolution, resolution), latent_dim=10, width=8)
    x = G(torch.randn(3, 10))
    assert x.shape == (3, channels, resolution, resolution)
    assert x.abs().max() <= 1.0
    assert D(x).shape == (3,)


def test_dcgan_init_follows_paper():
    G, D = build("dcgan", (1, 64, 64), latent_dim=100)
    w = torch.cat([m.weight.flatten() for m in D.modules() if isinstance(m, torch.nn.Conv2d)])
    assert w.mean().abs() < 2e-3 and abs(w.std().item() - 0.02) < 2e-3


@pytest.mark.parametrize("channels_last", [False, True])
def test_latent_projection_is_the_transposed_convolution(channels_last):
    """G's first layer as a matrix product: the values, the layout and the gradients of the transposed
    convolution it replaces, from the same weights."""
    torch.manual_seed(0)
    layer = LatentProjection(6, 5, 7)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    layer.to(memory_format=layout)
    z = torch.randn(4, 6, 1, 1, requires_grad=True)
    fast = layer(z)
    fast.square().sum().backward()
    grads = z.grad.clone(), layer.weight.grad.clone()
    z.grad, layer.weight.grad = None, None
    slow = torch.nn.ConvTranspose2d.forward(layer, z)
    slow.square().sum().backward()
    assert fast.shape == slow.shape == (4, 5, 7, 7)
    assert fast.is_contiguous(memory_format=layout)
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(grads[0], z.grad)
    torch.testing.assert_close(grads[1], layer.weight.grad)


def test_unsupported_resolution_is_a_clear_error():
    with pytest.raises(ConfigError, match="--resolution"):
        build("dcgan", (1, 30, 30), latent_dim=8)
    assert 28 in SUPPORTED and 128 in SUPPORTED and 30 not in SUPPORTED


def test_dcgan_refuses_points():
    with pytest.raises(ConfigError, match="mlp"):
        build("dcgan", (2,), latent_dim=8)


def test_mlp_points_are_unbounded_images_bounded():
    G, D = build("mlp", (2,), latent_dim=4)
    assert not any(isinstance(m, torch.nn.Tanh) for m in G.modules())
    G, D = build("mlp", (1, 8, 8), latent_dim=4)
    assert G(torch.randn(5, 4)).shape == (5, 1, 8, 8)
    assert D(torch.randn(5, 1, 8, 8)).shape == (5,)


def test_unknown_model():
    with pytest.raises(ConfigError, match="mlp, dcgan"):
        build("stylegan9", (1, 8, 8), latent_dim=4)


def test_latent_components_are_equally_likely_gaussians_picked_by_the_first_coordinate():
    torch.manual_seed(0)
    split = LatentComponents(10, latent_dim=3)
    z = torch.randn(50_000, 3)
    k = split.component(z)
    assert (torch.bincount(k, minlength=10) - 5000).abs().max() < 300  # binomial sd 67: each a tenth
    # the first coordinate's Gaussian quantile decides: 5% and 15% fall in the first two tenths, 99.9% in the last
    quantiles = torch.special.ndtri(torch.tensor([0.05, 0.15, 0.999]))
    assert split.component(torch.stack([quantiles, torch.zeros(3), torch.zeros(3)], dim=1)).tolist() == [0, 1, 9]
    out = split(z)
    assert out.shape == (50_000, 2)
    for c in (0, 7):  # each component is N(mu_c, sigma_c^2) in the other coordinates
        mine = out[k == c]
        assert torch.allclose(mine.mean(0), split.mu[c].detach(), atol=0.02)
        assert torch.allclose(mine.std(0), split.log_sigma[c].exp().detach(), rtol=0.05)


def test_generator_with_components_learns_their_centres_and_spreads():
    G, D = build("mlp", (2,), latent_dim=3, components=6)
    z = torch.randn(4, 3)
    z[:, 0] = torch.special.ndtri(torch.tensor(0.5 / 6))  # all four in component 0
    G(z).pow(2).sum().backward()
    grads = G.components.mu.grad.abs().sum(1)
    assert grads[0] > 0 and grads[1:].eq(0).all()  # only the component that was drawn moves
    assert G.components.log_sigma.grad[0].abs().sum() > 0
    assert D(G(torch.randn(5, 3))).shape == (5,)
    with pytest.raises(ConfigError, match="--latent-components works with the mlp model"):
        build("dcgan", (1, 16, 16), latent_dim=8, components=4)


def test_dcgan_d_with_a_hidden_head_judges_features_non_linearly():
    torch.manual_seed(0)
    _, D = build("dcgan", (1, 28, 28), latent_dim=8, width=8, d_hidden=12)
    _, linear = build("dcgan", (1, 28, 28), latent_dim=8, width=8)
    head = D.net[-1]
    assert [type(m).__name__ for m in head] == ["Flatten", "Linear", "LeakyReLU", "Linear"]
    assert head[1].in_features == 16 * 7 * 7 and head[1].out_features == 12
    assert isinstance(linear.net[-1], nn.Conv2d)  # DCGAN's own head unless asked
    x = torch.randn(5, 1, 28, 28)
    assert D(x).shape == (5,)
    # the head is not linear in the features: negating them does not negate the logit, as DCGAN's head would
    features = D.net[:-1](x)
    assert torch.allclose(linear.net[-1](-features), -linear.net[-1](features))
    assert not torch.allclose(head(-features), -head(features), rtol=0.1)
    _, Dc = build("dcgan", (1, 28, 28), latent_dim=8, width=8, d_hidden=12, num_classes=3)
    assert Dc(x, torch.tensor([0, 1, 2, 0, 1])).shape == (5,)  # the projection reads the same features
    with pytest.raises(ConfigError, match="--d-hidden works with the dcgan model"):
        build("resnet", (1, 32, 32), latent_dim=8, d_hidden=12)
