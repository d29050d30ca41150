"""Plots written into a run: training curves and 2-D scatter plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict], path: Path, smooth: int = 5) -> Path:
    """Losses, D's mean output on real and fake data, and D's accuracy with the 50% line where D cannot tell."""
    plt = _pyplot()
    steps = [r["step"] for r in rows]

    def series(key):
        vals = [r.get(key, float("nan")) for r in rows]
        if smooth > 1 and len(vals) > smooth:
            vals = [sum(vals[max(0, i - smooth + 1):i + 1]) / len(vals[max(0, i - smooth + 1):i + 1]) for i in range(len(vals))]
        return vals

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(steps, series("loss_d"), label="D loss")
    axes[0].plot(steps, series("loss_g"), label="G loss")
    axes[0].set_title("losses")
    axes[1].plot(steps, series("d_real"), label="D(x), real")
    axes[1].plot(steps, series("d_fake"), label="D(G(z)), fake")
    axes[1].set_title("D's output")
    axes[2].plot(steps, series("d_acc"), label="D accuracy", color="tab:green")
    axes[2].axhline(0.5, color="grey", linestyle="--", label="50%: D cannot tell")
    axes[2].set_ylim(0, 1.02)
    axes[2].set_title("D accuracy")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_points(fake: torch.Tensor, path: Path, real: torch.Tensor | None = None, modes: torch.Tensor | None = None,
                title: str = "") -> Path:
    """Generated 2-D points over a sample of the true density (and its mode centres). Drawn as line-less
    markers with a fixed layout: a fraction of scatter's cost, as this runs about 20 times per training run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    if real is not None:
        ax.plot(real[:, 0], real[:, 1], ".", ms=2, color="tab:blue", alpha=0.15, label="data")
    ax.plot(fake[:, 0].cpu(), fake[:, 1].cpu(), ".", ms=2, color="tab:red", alpha=0.6, label="generated")
    if modes is not None:
        ax.plot(modes[:, 0], modes[:, 1], "x", color="black", ms=5, label="modes")
    ref = real if real is not None else fake.cpu()
    lo, hi = ref.min(0).values - 0.5, ref.max(0).values + 0.5
    ax.set_xlim(lo[0].item(), hi[0].item())
    ax.set_ylim(lo[1].item(), hi[1].item())
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8, markerscale=3)
    ax.set_title(title)
    fig.subplots_adjust(left=0.09, bottom=0.06, right=0.97, top=0.94)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_eval(rows: list[dict], path) -> Path | None:
    """The `eval/...` metrics of metrics.jsonl over training, one panel each (None when there are none)."""
    keys = sorted({k for r in rows for k in r if k.startswith("eval/")})
    if not keys:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys) + 1, 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        ax.set_title(key.split("/", 1)[1])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
