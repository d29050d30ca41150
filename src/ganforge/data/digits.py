"""scikit-learn's 8x8 handwritten digits: 1,797 images shipped with scikit-learn, so no download."""

from __future__ import annotations

import torch

from ganforge.data.dataset import Dataset


def load_digits(split: str = "train") -> Dataset:
    """All 1,797 digits for "train"; a fixed 20% for "test" (the set is too small to hold out for training)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = torch.from_numpy(bunch.images).float().mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    if split == "test":
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[: len(labels) // 5]
        images, labels = images[keep], labels[keep]
    return Dataset("digits", images.unsqueeze(1).contiguous(), labels, [str(i) for i in range(10)])
