"""Sample-quality metrics of generated images, computed in a feature space.

- Fréchet distance (`fd`) and KID (`kid_mean`, `kid_std`): torchmetrics' FrechetInceptionDistance and
  KernelInceptionDistance, fed with features we extract once (so real-image features can be cached).
  `fd` is FID proper only with `--features inception`; with the domain classifier it is the same formula
  in that classifier's feature space (compare numbers only under the same `protocol.features`).
- precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020): k-NN balls
  in feature space, k = 5, as in the authors' `prdc` package.
- `class_coverage`: the domain classifier's predicted-class histogram of the fakes against the data's
  class distribution.
- `class_accuracy` (class-conditional generators): the share of samples asked for class c that the
  domain classifier puts in class c, per class and overall.

Every result carries a `protocol` dict: how many fake and real images, which split, how images were
resized, which feature extractor (name includes a hash of its weights).

A feature extractor is an nn.Module with `name`, `num_features`, `resize` (a description) whose
forward takes uint8 (N, C, H, W) images and returns float (N, num_features).
"""

from __future__ import annotations

import logging
import math
import warnings

import torch
from torch import nn

from ganforge.errors import ConfigError

log = logging.getLogger(__name__)

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
NEAREST_K = 5


class _Precomputed(nn.Module):
    """Identity 'feature extractor' so torchmetrics' metrics can be fed features directly."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@torch.no_grad()
def extract_features(images: torch.Tensor, extractor: nn.Module, batch: int = 500) -> torch.Tensor:
    """Features (N, D) float32 of uint8 images (N, C, H, W), in batches."""
    _check_uint8(images, "images")
    extractor.eval()
    return torch.cat([extractor(chunk).float().cpu() for chunk in images.split(batch)])


def _check_uint8(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(f"{what} must be uint8 images (N, C, H, W) in [0, 255], got {got}: "
                          f"convert float [-1, 1] images with ganforge.data.dataset.to_uint8")


def frechet_distance(fake_features: torch.Tensor, real_features: torch.Tensor) -> float:
    """torchmetrics' Fréchet distance between two feature sets (float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(real_features.shape[1]))
    metric.update(real_features.double(), real=True)
    metric.update(fake_features.double(), real=False)
    return float(metric.compute())


def kernel_distance(fake_features: torch.Tensor, real_features: torch.Tensor, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float, int]:
    """torchmetrics' KID (mean, std over subsets, subset size used); subset size is capped at the smaller set."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(fake_features), len(real_features))
    with warnings.catch_warnings():  # "will save all extracted features in buffer": that is the point here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_Precomputed(real_features.shape[1]), subsets=subsets,
                                         subset_size=size)
    metric.update(real_features.double(), real=True)
    metric.update(fake_features.double(), real=False)
    with torch.random.fork_rng():  # KID draws its subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def _kth_nn_radius(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for block in x.split(chunk):
        d = torch.cdist(block, x)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, -1])  # +1: the point itself at distance 0
    return torch.cat(out)


def prdc(fake_features: torch.Tensor, real_features: torch.Tensor, k: int = NEAREST_K, chunk: int = 1024) -> dict:
    """Precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) with k-NN balls.

    precision: share of fakes inside some real point's k-NN ball; recall: share of reals inside some fake's
    k-NN ball; density: mean number of real balls holding each fake, / k; coverage: share of reals whose ball
    holds at least one fake.
    """
    real, fake = real_features.float(), fake_features.float()
    k = min(k, len(real) - 1, len(fake) - 1)
    if k < 1:
        raise ConfigError("precision/recall need at least 2 real and 2 generated samples")
    r_real, r_fake = _kth_nn_radius(real, k, chunk), _kth_nn_radius(fake, k, chunk)
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool)
    fake_ball_count = torch.zeros(len(fake), dtype=torch.float64)
    real_in_fake = torch.zeros(len(real), dtype=torch.bool)
    real_covered = torch.zeros(len(real), dtype=torch.bool)
    for start in range(0, len(real), chunk):
        d = torch.cdist(real[start:start + chunk], fake)  # (chunk, n_fake)
        inside = d < r_real[start:start + chunk, None]
        fake_in_real |= inside.any(0)
        fake_ball_count += inside.sum(0, dtype=torch.float64)
        real_in_fake[start:start + chunk] = (d < r_fake[None, :]).any(1)
        real_covered[start:start + chunk] = inside.any(1)
    return {
        "precision": float(fake_in_real.double().mean()),
        "recall": float(real_in_fake.double().mean()),
        "density": float(fake_ball_count.mean() / k),
        "coverage": float(real_covered.double().mean()),
        "nearest_k": k,
    }


def feature_metrics(fake_features: torch.Tensor, real_features: torch.Tensor, *, kid_subsets: int = KID_SUBSETS,
                    kid_subset_size: int = KID_SUBSET_SIZE, nearest_k: int = NEAREST_K, seed: int = 0) -> dict:
    """FD, KID and precision/recall/density/coverage between two feature sets (N, D)."""
    if len(fake_features) < 2 or len(real_features) < 2:
        raise ConfigError("Fréchet distance needs at least 2 generated and 2 real samples: raise --n")
    if fake_features.shape[1] != real_features.shape[1]:
        raise ConfigError(f"feature sizes differ ({fake_features.shape[1]} vs {real_features.shape[1]}): "
                          f"use the same feature extractor for both sets")
    kid_mean, kid_std, size = kernel_distance(fake_features, real_features, kid_subsets, kid_subset_size, seed)
    result = {"fd": frechet_distance(fake_features, real_features), "kid_mean": kid_mean, "kid_std": kid_std}
    pr = prdc(fake_features, real_features, nearest_k)
    k = pr.pop("nearest_k")
    result.update(pr)
    result["_settings"] = {"kid_subsets": kid_subsets, "kid_subset_size": size, "nearest_k": k}
    return result


def image_metrics(fake_uint8: torch.Tensor, real_uint8: torch.Tensor | None, extractor: nn.Module, *,
                  real_features: torch.Tensor | None = None, split: str | None = None,
                  kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
                  nearest_k: int = NEAREST_K, seed: int = 0, batch: int = 500) -> dict:
    """FD, KID (mean, std), precision, recall, density and coverage of fake vs real uint8 images.

    Pass `real_features` (from `reference_features`) instead of `real_uint8` to reuse cached statistics.
    `split` is recorded in the protocol (which split the real images came from).
    """
    _check_uint8(fake_uint8, "generated images")
    if real_features is None:
        if real_uint8 is None:
            raise ValueError("pass real_uint8 or real_features")
        _check_uint8(real_uint8, "real images")
        if real_uint8.shape[1:] != fake_uint8.shape[1:]:
            raise ConfigError(f"generated images are {tuple(fake_uint8.shape[1:])} but real ones "
                              f"{tuple(real_uint8.shape[1:])}: compare at the same resolution and channels")
        real_features = extract_features(real_uint8, extractor, batch)
    fake_features = extract_features(fake_uint8, extractor, batch)
    result = feature_metrics(fake_features, real_features, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                             nearest_k=nearest_k, seed=seed)
    settings = result.pop("_settings")
    result["protocol"] = {
        "n_fake": len(fake_features), "n_real": len(real_features), "split": split,
        "resolution": list(fake_uint8.shape[1:]), "resize": getattr(extractor, "resize", "none"),
        "features": getattr(extractor, "name", "") or type(extractor).__name__, "feature_dim": int(real_features.shape[1]),
        **settings, "seed": seed,
    }
    return result


@torch.no_grad()
def class_coverage(fake_uint8: torch.Tensor, classifier, class_distribution=None, *, min_share: float = 0.5,
                   batch: int = 1000) -> dict:
    """Which classes the generator makes, by the domain classifier's predictions.

    class_distribution: the data's class frequencies (default: the classifier's training labels).
    Returns the predicted-class histogram, kl = KL(q || p) of the predicted shares q against the data's p
    (classes with q = 0 add nothing; 0 when the shares match), classes_covered = classes whose predicted
    share is at least `min_share` times their share in the data (so a few percent of classifier mistakes
    spilling into a class do not count as covering it), and mean_confidence = mean max softmax probability.
    """
    _check_uint8(fake_uint8, "generated images")
    p = classifier.class_distribution if class_distribution is None else torch.as_tensor(class_distribution)
    p = p.double() / p.double().sum()
    if len(p) != classifier.num_classes:
        raise ConfigError(f"class distribution has {len(p)} classes but the classifier {classifier.num_classes}")
    probs = classifier.predict_proba(fake_uint8, batch)
    conf, pred = probs.max(dim=1)
    counts = torch.bincount(pred, minlength=classifier.num_classes)
    q = counts.double() / counts.sum()
    kl = 0.0
    for qm, pm in zip(q.tolist(), p.tolist()):
        if qm > 0:
            kl += qm * math.log(qm / pm) if pm > 0 else math.inf
    covered = (q >= min_share * p) & (p > 0)
    return {
        "classes_covered": int(covered.sum()),
        "num_classes": classifier.num_classes,
        "kl": kl,
        "mean_confidence": float(conf.double().mean()),
        "histogram": dict(zip(classifier.classes, counts.tolist())),
        "missing": [c for c, ok in zip(classifier.classes, covered.tolist()) if not ok],
        "protocol": {"n_fake": len(fake_uint8), "classifier": classifier.name or "unsaved", "resize": classifier.resize,
                     "min_share": min_share,
                     "class_distribution": "classifier training labels" if class_distribution is None else "given",
                     "classifier_test_accuracy": classifier.meta.get("test_accuracy")},
    }


def class_accuracy(fake_uint8: torch.Tensor, asked: torch.Tensor, classifier, *, batch: int = 1000) -> dict:
    """How often the domain classifier agrees with the class each sample was asked for.

    asked: int64 (N,) class indices in the classifier's class order (a conditional run trained on the
    same dataset uses the same order). Returns `overall` (share of all samples), `per_class` (share
    among the samples asked for each class, None for classes never asked) and the classifier's own test
    accuracy on real images for scale: a generator cannot be expected to beat it by much.
    """
    _check_uint8(fake_uint8, "generated images")
    asked = torch.as_tensor(asked, dtype=torch.long).cpu()
    if asked.shape != (len(fake_uint8),):
        raise ConfigError(f"{len(asked)} asked-for classes for {len(fake_uint8)} images: give one per image")
    if len(asked) and (asked.min() < 0 or asked.max() >= classifier.num_classes):
        raise ConfigError(f"asked-for classes must lie in 0..{classifier.num_classes - 1} (the classifier's "
                          f"classes): evaluate with the classifier of the dataset the run was trained on")
    hit = (classifier.predict_proba(fake_uint8, batch).argmax(1) == asked).double()
    per_class = {}
    for c, name in enumerate(classifier.classes):
        mask = asked == c
        per_class[name] = float(hit[mask].mean()) if mask.any() else None
    return {
        "overall": float(hit.mean()),
        "per_class": per_class,
        "protocol": {"n_fake": len(fake_uint8), "classifier": classifier.name or "unsaved",
                     "resize": classifier.resize, "classifier_test_accuracy": classifier.meta.get("test_accuracy")},
    }


def reference_features(dataset_name: str, extractor: nn.Module, *, data_dir: str | None = None,
                       split: str = "train", resolution: int | None = None, n: int = 10_000, seed: int = 0,
                       cache: bool = True, batch: int = 500) -> tuple[torch.Tensor, dict]:
    """Features of n real images (a fixed seeded subset; all of them when the split is smaller), cached as
    safetensors under the cache dir, keyed by dataset, split, resolution, n, seed and extractor name."""
    from safetensors import safe_open
    from safetensors.torch import save

    from ganforge.checkpoint import atomic_write
    from ganforge.data import load_dataset
    from ganforge.metrics.cache import cache_dir, dataset_key, safe_name

    name = getattr(extractor, "name", None)
    key = safe_name(f"{dataset_key(dataset_name)}-{split}-{resolution or 'native'}px-n{n}-s{seed}-{name}")
    path = cache_dir() / "reference" / f"{key}.safetensors"
    info = {"dataset": dataset_name, "split": split, "resolution": resolution, "n_requested": n, "seed": seed,
            "features": name, "path": str(path)}
    if cache and name and path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                feats, stored = f.get_tensor("features"), f.metadata() or {}
            log.info(f"reference features of {dataset_name} ({split}, n={len(feats)}) from {path}")
            return feats, {**info, "n_real": len(feats), "channels": int(stored.get("channels", 0)) or None,
                           "cached": True}
        except Exception as e:  # a damaged cache file is recomputed, not fatal
            log.warning(f"ignoring unreadable cache file {path} ({e})")
    ds = load_dataset(dataset_name, data_dir=data_dir, resolution=resolution, split=split)
    if not ds.is_image:
        raise ConfigError(f"{dataset_name} is not an image dataset: reference features are for images")
    images = ds.data
    if n < len(images):
        images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]
    log.info(f"computing reference features of {len(images)} {dataset_name} images ({split}) with {name}")
    feats = extract_features(images, extractor, batch)
    info["channels"] = int(images.shape[1])
    if cache and name:
        blob = save({"features": feats.contiguous()}, metadata={k: str(v) for k, v in info.items()})
        try:
            atomic_write(path, lambda f: f.write(blob))
        except OSError as e:
            log.warning(f"cannot cache reference features at {path} ({e.strerror}); continuing without")
    return feats, {**info, "n_real": len(feats), "cached": False}
