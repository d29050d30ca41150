"""Mode-collapse metrics for the 2-D Gaussian mixtures (ring8, grid25), as PacGAN and VEEGAN report them.

Definitions (those of PacGAN's `MetricLogger`, github.com/fjxmlzn/PacGAN, which follows VEEGAN):

- every generated sample is assigned to its nearest mode centre;
- it is **high quality** when that distance is below 3 standard deviations of the mixture
  components (`threshold` · std, strictly less);
- a mode is **captured** when at least one high-quality sample is assigned to it;
- **reverse KL** is KL(q ‖ p) = Σ_m q_m log(q_m / p_m), where q is the histogram of the high-quality
  samples over the modes (normalised to sum to 1; modes with q_m = 0 add nothing) and p is the true
  mode distribution (uniform unless `weights` says otherwise). With no high-quality sample at all,
  q is undefined and reverse_kl is reported as +inf.

The papers draw 2,500 samples; counts of captured modes grow with the number of samples, so compare
runs only at the same n (recorded in the result).
"""

from __future__ import annotations

import math

import torch

PAPER_SAMPLES = 2500
PAPER_THRESHOLD = 3.0


def mode_stats(samples: torch.Tensor, modes: torch.Tensor, std: float, *, threshold: float = PAPER_THRESHOLD,
               weights: torch.Tensor | None = None) -> dict:
    """Modes captured, fraction of high-quality samples and reverse KL of generated 2-D points.

    samples: (N, 2) generated points; modes: (M, 2) true centres; std: the components' standard deviation.
    Returns dict(modes, total_modes, hq, reverse_kl, per_mode, n, threshold_std).
    """
    samples = torch.as_tensor(samples).detach().double().cpu()
    modes = torch.as_tensor(modes).double().cpu()
    if samples.dim() != 2 or samples.shape[1] != modes.shape[1] or len(samples) == 0:
        raise ValueError(f"samples must be a non-empty (N, {modes.shape[1]}) tensor, got {tuple(samples.shape)}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    dist = torch.cdist(samples, modes, compute_mode="donot_use_mm_for_euclid_dist")  # exact, no mm round-off
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist < threshold * std
    counts = torch.bincount(nearest[good], minlength=len(modes))
    n_good = int(counts.sum())

    p = torch.full((len(modes),), 1.0 / len(modes), dtype=torch.float64) if weights is None else \
        torch.as_tensor(weights, dtype=torch.float64) / float(torch.as_tensor(weights).sum())
    if n_good:
        q = counts.double() / n_good
        kl = float(sum(qm * math.log(qm / pm) for qm, pm in zip(q.tolist(), p.tolist()) if qm > 0))
    else:
        kl = math.inf
    return {
        "modes": int((counts > 0).sum()),
        "total_modes": len(modes),
        "hq": n_good / len(samples),
        "reverse_kl": kl,
        "per_mode": counts.tolist(),
        "n": len(samples),
        "threshold_std": threshold,
    }
