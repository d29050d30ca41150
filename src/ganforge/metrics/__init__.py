"""Evaluation: how good and how diverse a generator's samples are.

- 2-D mixtures (ring8, grid25): `mode_stats` — modes captured, share of high-quality samples, reverse KL
  (PacGAN / VEEGAN protocol, 2,500 samples).
- images: `image_metrics` — Fréchet distance, KID, precision/recall, density/coverage in the feature space
  of a domain classifier trained by ganforge (`train_classifier`) or of InceptionV3 (optional extra);
  `class_coverage` — which classes the generator makes; `class_accuracy` — for a conditional generator,
  how often a sample asked for class c is classified as c.

`evaluate(sample_fn, dataset)` picks the right ones for the data. Importing this package is cheap: the
heavy modules load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

POINT_SAMPLES = 2500    # PacGAN / VEEGAN
IMAGE_SAMPLES = 10_000

_LAZY = {
    "mode_stats": "modes",
    "train_classifier": "classifier", "load_classifier": "classifier", "DomainClassifier": "classifier",
    "image_metrics": "image", "class_coverage": "image", "class_accuracy": "image", "feature_metrics": "image",
    "reference_features": "image", "extract_features": "image",
    "load_inception": "inception",
    "cache_dir": "cache",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"ganforge.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ganforge.metrics' has no attribute '{name}'")


def json_safe(value):
    """JSON has no Infinity: non-finite floats become null (e.g. reverse KL with no high-quality sample)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def load_extractor(features: str, dataset_name: str):
    """'classifier' (the dataset's domain classifier, or a path to a .safetensors classifier) or 'inception'."""
    from ganforge.errors import ConfigError

    if features == "inception":
        from ganforge.metrics.inception import load_inception
        return load_inception()
    from ganforge.metrics.classifier import load_classifier
    if features == "classifier":
        return load_classifier(dataset_name).extractor()
    if features.endswith(".safetensors") or "/" in features:
        return load_classifier(features).extractor()
    raise ConfigError(f"unknown --features '{features}': use classifier, inception or a path to a classifier "
                      f".safetensors file")


def evaluate(sample_fn: Callable[[int], "torch.Tensor"], dataset_name: str, data_dir: str | None = None,
             n: int | None = None, features: str = "classifier", resolution: int | None = None, *,
             split: str = "train", seed: int = 0, classifier=None, kid_subsets: int = 100,
             labels_fn: Callable[[int], "torch.Tensor"] | None = None) -> dict:
    """Metrics of a generator against a dataset.

    sample_fn(n) returns n samples: uint8 images (n, C, H, W) or float points (n, 2).
    n: number of generated samples (default 2,500 for 2-D points, as PacGAN / VEEGAN; 10,000 for images).
    features: feature space of the image metrics, 'classifier' or 'inception' (or a classifier file).
    resolution: the images' square size (default: that of the samples); real images are loaded at it.
    classifier: a loaded DomainClassifier for class coverage (default: the dataset's cached one, if any).
    Images are compared with `split` of the data ('train' by default: what the generator learned from).
    seed: of the real-image subset and of KID's subsets (not of the generator: sample_fn owns that).
    kid_subsets: KID's number of random subsets (100 as in torch-fidelity; fewer is faster and noisier).
    labels_fn: for a class-conditional generator, labels_fn(n) gives the classes sample_fn(n)'s samples were
    asked for; adds `class_accuracy` (needs the dataset's classifier).
    """
    import torch

    from ganforge.data import load_dataset
    from ganforge.errors import ConfigError, GanforgeError

    if n is not None and n < 2:
        raise ConfigError(f"--n must be at least 2, got {n}")
    if dataset_name in ("ring8", "grid25"):
        from ganforge.metrics.modes import PAPER_THRESHOLD, mode_stats

        n = n or POINT_SAMPLES
        ds = load_dataset(dataset_name, data_dir=data_dir, split=split)
        samples = torch.as_tensor(sample_fn(n))
        if samples.dim() != 2 or samples.shape[1] != 2 or not samples.is_floating_point():
            raise ConfigError(f"{dataset_name} needs float (n, 2) points, but the generator gave "
                              f"{samples.dtype} {tuple(samples.shape)}: evaluate it against an image dataset")
        stats = mode_stats(samples, ds.modes, ds.mode_std)
        real = mode_stats(ds.data[:len(samples)], ds.modes, ds.mode_std)
        return {
            "dataset": dataset_name, "kind": "points",
            **{k: stats[k] for k in ("modes", "total_modes", "hq", "reverse_kl")},
            "per_mode": stats["per_mode"],
            "real": {k: real[k] for k in ("modes", "hq", "reverse_kl")},
            "protocol": {"n_fake": stats["n"], "n_real": real["n"], "split": split, "mode_std": ds.mode_std,
                         "high_quality": f"< {PAPER_THRESHOLD:g} std from the nearest mode",
                         "captured": ">= 1 high-quality sample", "reverse_kl": "KL(q_hq || uniform)",
                         "resize": "none", "features": "none"},
        }

    from ganforge.metrics.image import class_accuracy, class_coverage, image_metrics, reference_features

    n = n or IMAGE_SAMPLES
    fake = sample_fn(n)
    if not isinstance(fake, torch.Tensor) or fake.dtype != torch.uint8 or fake.dim() != 4:
        got = f"{fake.dtype} {tuple(fake.shape)}" if isinstance(fake, torch.Tensor) else type(fake).__name__
        raise ConfigError(f"{dataset_name} is an image dataset but the generator gave {got}, not uint8 (n, C, H, W) "
                          f"images")
    res = resolution or fake.shape[-1]
    if tuple(fake.shape[-2:]) != (res, res):
        raise ConfigError(f"generated images are {tuple(fake.shape[-2:])}, not {res}x{res}: pass the resolution "
                          f"the generator was trained at")
    extractor = load_extractor(features, dataset_name)
    real_feats, ref = reference_features(dataset_name, extractor, data_dir=data_dir, split=split, resolution=res,
                                         n=n, seed=seed)
    if ref.get("channels") and ref["channels"] != fake.shape[1]:
        raise ConfigError(f"generated images have {fake.shape[1]} channels but {dataset_name} has {ref['channels']}: "
                          f"evaluate against the dataset the generator was trained on")
    result = {"dataset": dataset_name, "kind": "images",
              **image_metrics(fake, None, extractor, real_features=real_feats, split=split, seed=seed,
                              kid_subsets=kid_subsets)}
    result["protocol"].update(resolution=[fake.shape[1], res, res], reference_cached=ref["cached"])
    if classifier is None:
        clf = getattr(extractor, "classifier", None)
        if clf is None:
            try:
                from ganforge.metrics.classifier import load_classifier
                clf = load_classifier(dataset_name)
            except GanforgeError as e:
                result["class_coverage"] = {"skipped": str(e)}
                if labels_fn is not None:
                    result["class_accuracy"] = {"skipped": str(e)}
    else:
        clf = classifier
    if clf is not None:
        result["class_coverage"] = class_coverage(fake, clf)
        if labels_fn is not None:
            result["class_accuracy"] = class_accuracy(fake, labels_fn(n), clf)
    return result


__all__ = ["evaluate", "load_extractor", "json_safe", *_LAZY]
