"""GAN losses, written on D's raw outputs (logits), never on probabilities, so no log(0) can occur.

Each loss is a small object with two formulas: `d_loss` (what D minimises in the D step) and
`g_loss` (what G minimises in the G step). Which network learns in which step is decided in
`ganforge.train.step`; here is only the arithmetic. Notation: r = D(x) on real data, f = D(G(z))
on fakes, sigma the logistic sigmoid, and softplus(t) = log(1 + e^t), so that
-log sigma(t) = softplus(-t) and -log(1 - sigma(t)) = softplus(t).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError


class GANLoss:
    name = ""
    #: Wasserstein critics are trained with several D steps per G step and their own optimiser
    #: settings; the config fills those in when the user leaves them unset.
    wasserstein = False
    #: D "says real" when its output exceeds this; None means halfway between the batch means
    #: (a critic's scores have no absolute scale).
    threshold: float | None = 0.0
    #: Needs D's output on real data in the G step too (relativistic losses).
    uses_real_in_g = False

    def d_loss(self, r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, f: torch.Tensor, r: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    #: Regularisers added to every D-step loss (e.g. `R1`), set by `get_loss`.
    regularizers: tuple = ()
    #: G's mode-seeking term (`ModeSeeking`), set by `get_loss`; None: off.
    mode_seeking = None

    @property
    def differentiates_gradients(self) -> bool:
        """True when the D step backpropagates through a gradient of D (gradient penalty, R1): a double
        backward, which torch.compile does not support."""
        return type(self).own_penalty is not GANLoss.own_penalty or bool(self.regularizers)

    def penalty(self, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        """Extra D-step terms that need D itself: the loss's own (gradient penalty) plus its
        regularisers (R1); None when there is none this step."""
        terms = [self.own_penalty(D, real, fake), *(reg(D, real) for reg in self.regularizers)]
        terms = [t for t in terms if t is not None]
        return sum(terms) if terms else None

    def own_penalty(self, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return None

    def after_d_step(self, D) -> None:
        """Hook for constraints applied to D's weights after its update (weight clipping)."""

    def readout(self, r: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's outputs on real and fake items as a user reads them: probabilities for classifier-style
        losses (a critic's raw scores otherwise)."""
        return torch.sigmoid(r), torch.sigmoid(f)

    def accuracy(self, r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Fraction of real and fake items D classifies correctly; 0.5 means D cannot tell."""
        t = self.threshold if self.threshold is not None else (r.mean() + f.mean()) / 2
        return ((r > t).float().mean() + (f <= t).float().mean()) / 2


class Minimax(GANLoss):
    """The original game (Goodfellow et al. 2014).
    D: -log sigma(r) - log(1 - sigma(f)) = softplus(-r) + softplus(f), i.e. BCE(D(x), 1) + BCE(D(G(z)), 0).
    G: log(1 - sigma(f)) = -softplus(f). Saturates when D confidently rejects fakes: G's gradient vanishes.
    """

    name = "minimax"

    def d_loss(self, r, f):
        return F.softplus(-r).mean() + F.softplus(f).mean()

    def g_loss(self, f, r=None):
        return -F.softplus(f).mean()


class NonSaturating(Minimax):
    """Minimax D; G maximises log sigma(f) instead: G: -log sigma(f) = softplus(-f) = BCE(D(G(z)), 1).
    Same fixed point, strong gradients early on: the seeds' "push D's output on fakes towards 1"."""

    name = "nonsaturating"

    def g_loss(self, f, r=None):
        return F.softplus(-f).mean()


class WGAN(GANLoss):
    """Wasserstein GAN (Arjovsky et al. 2017) with weight clipping to keep the critic Lipschitz.
    D (critic): mean(f) - mean(r).  G: -mean(f).  After each D step every weight is clipped to [-c, c], c = 0.01."""

    name = "wgan"
    wasserstein = True
    threshold = None

    def __init__(self, clip: float = 0.01):
        self.clip = clip

    def d_loss(self, r, f):
        return f.mean() - r.mean()

    def g_loss(self, f, r=None):
        return -f.mean()

    def after_d_step(self, D):
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-self.clip, self.clip)

    def readout(self, r, f):
        return r, f


class WGANGP(WGAN):
    """WGAN with gradient penalty (Gulrajani et al. 2017) instead of clipping.
    D: mean(f) - mean(r) + lambda * E[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps * x + (1 - eps) * G(z), lambda = 10.
    G: -mean(f)."""

    name = "wgan-gp"

    def __init__(self, weight: float = 10.0):
        self.weight = weight

    def after_d_step(self, D):
        pass

    def own_penalty(self, D, real, fake):
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
        return self.weight * (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


class Hinge(GANLoss):
    """Hinge loss (Lim & Ye 2017; used by SNGAN, BigGAN).
    D: mean(relu(1 - r)) + mean(relu(1 + f)).  G: -mean(f)."""

    name = "hinge"

    def d_loss(self, r, f):
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()

    def g_loss(self, f, r=None):
        return -f.mean()


class LSGAN(GANLoss):
    """Least squares GAN (Mao et al. 2017), targets a = 0 (fake), b = c = 1 (real).
    D: 0.5 * mean((r - 1)^2) + 0.5 * mean(f^2).  G: 0.5 * mean((f - 1)^2). D's output is read directly, 0.5 separates."""

    name = "lsgan"
    threshold = 0.5

    def d_loss(self, r, f):
        return 0.5 * (r - 1).pow(2).mean() + 0.5 * f.pow(2).mean()

    def g_loss(self, f, r=None):
        return 0.5 * (f - 1).pow(2).mean()

    def readout(self, r, f):
        return r, f


class RelativisticAverage(GANLoss):
    """Relativistic average GAN (Jolicoeur-Martineau 2019): D judges whether real data looks more
    real than the average fake. With r~ = r - mean(f) and f~ = f - mean(r):
    D: softplus(-r~) + softplus(f~).  G: softplus(r~) + softplus(-f~) (the roles swapped), so G
    also learns from D's output on real data."""

    name = "ragan"
    uses_real_in_g = True

    def d_loss(self, r, f):
        return F.softplus(-(r - f.mean())).mean() + F.softplus(f - r.mean()).mean()

    def g_loss(self, f, r=None):
        if r is None:
            raise ValueError("the relativistic loss needs D's output on real data in the G step")
        return F.softplus(r - f.mean()).mean() + F.softplus(-(f - r.mean())).mean()

    # Only differences of D's outputs enter the loss, so their level drifts freely: D's reading of an
    # item is relative too, the probability that it looks more real than the other side's average.
    def readout(self, r, f):
        return torch.sigmoid(r - f.mean()), torch.sigmoid(f - r.mean())

    def accuracy(self, r, f):
        return ((r > f.mean()).float().mean() + (f <= r.mean()).float().mean()) / 2


class R1:
    """R1 penalty (Mescheder et al. 2018): gamma / 2 * E_x ||grad_x D(x)||^2 on real data only.
    It pushes D's surface flat where the data lies, which makes the game converge instead of
    circling. Lazy as in StyleGAN2: computed on every `every`-th D update and multiplied by
    `every`, so it costs 1/every of a D step for the same average strength."""

    def __init__(self, gamma: float, every: int = 1):
        self.gamma, self.every = gamma, every
        self.calls = 0  # D updates seen; a checkpoint keeps it so resuming keeps the rhythm

    def __call__(self, D, real: torch.Tensor) -> torch.Tensor | None:
        due = self.calls % self.every == 0
        self.calls += 1
        if not due:
            return None
        real = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
        return (self.gamma / 2 * self.every) * grad.flatten(1).pow(2).sum(dim=1).mean()


class ModeSeeking:
    """Mode-seeking term of G (Mao et al. 2019, MSGAN): weight / (mean |G(z1) - G(z2)| / |z1 - z2|), over
    pairs of noise vectors (the first half of the batch against the second). It grows when two different
    noise vectors give the same image, the collapse of a conditional G that makes one image per class.
    For a conditional G the two fakes of a pair are asked for the same class (`pair_labels`)."""

    def __init__(self, weight: float):
        self.weight = weight

    @staticmethod
    def pair_labels(labels: torch.Tensor) -> torch.Tensor:
        half = len(labels) // 2
        return torch.cat([labels[:half], labels[:half], labels[2 * half:]])

    def __call__(self, z: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        half = len(z) // 2
        image_distance = (fake[:half] - fake[half:2 * half]).abs().flatten(1).mean(dim=1)
        noise_distance = (z[:half] - z[half:2 * half]).abs().mean(dim=1)
        return self.weight / ((image_distance / noise_distance).mean() + 1e-5)


LOSSES = {cls.name: cls for cls in (Minimax, NonSaturating, WGAN, WGANGP, Hinge, LSGAN, RelativisticAverage)}


def get_loss(name: str, r1: float = 0.0, r1_every: int = 1, mode_seeking: float = 0.0) -> GANLoss:
    """The loss `name`, with an R1 penalty of weight `r1` (every `r1_every` D updates) when r1 > 0, and
    G's mode-seeking term of weight `mode_seeking` when it is > 0."""
    try:
        loss = LOSSES[name]()
    except KeyError:
        raise ConfigError(f"unknown loss '{name}': use one of {', '.join(LOSSES)}") from None
    if r1 > 0:
        loss.regularizers = (R1(r1, r1_every),)
    if mode_seeking > 0:
        loss.mode_seeking = ModeSeeking(mode_seeking)
    return loss
