"""A small domain classifier, trained by ganforge on a labelled image dataset, used as the feature
space of Fréchet distance / KID on small images (where ImageNet's Inception is the wrong yardstick)
and to count which classes a generator produces.

Files: `<name>.safetensors` (weights only) + `<name>.json` (dataset, resolution, channels, classes,
class distribution of the training labels, test accuracy, feature size, sha256 of the weights).
Default place: `$GANFORGE_CACHE/classifiers/<dataset>.safetensors` (~/.cache/ganforge when unset).
Nothing but safetensors is ever loaded.

Input conventions: `forward(x)` / `features(x)` take float images in [-1, 1] at the classifier's own
resolution. `extractor()` wraps the model for torchmetrics' FrechetInceptionDistance /
KernelInceptionDistance (`feature=clf.extractor()`): it takes **uint8** images in [0, 255] of any size
(resized to the classifier's resolution, bilinear, antialiased) and returns `features`. With a custom
module torchmetrics passes images through untouched whatever `normalize` says, so give it uint8 and
leave `normalize=False`; floats are refused rather than silently misread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import CheckpointError, ConfigError, DataError

log = logging.getLogger(__name__)

FORMAT = "ganforge-classifier"
VERSION = 1
DEFAULT_WIDTH = 32
DEFAULT_FEATURES = 128
RESIZE = "bilinear-antialias"
# passes over the training set when --epochs is not given: enough for >= 90% on Fashion-MNIST
DEFAULT_EPOCHS = {"fashion-mnist": 3, "mnist": 2, "digits": 40}
FLIP_OK = {"fashion-mnist"}  # mirrored clothes are still the same class; mirrored digits are not


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DomainClassifier(nn.Module):
    """conv-pool, conv-pool, conv, adaptive 3x3 pool, fc (the feature layer), fc (the logits).

    `features` are the feature layer's activations times `feature_scale`, a constant set after training so
    that they have unit root-mean-square on the training images (KID's cubic kernel assumes features of
    order 1; the scale does not change any ranking, precision/recall or coverage).
    """

    def __init__(self, channels: int, num_classes: int, resolution: int, width: int = DEFAULT_WIDTH,
                 num_features: int = DEFAULT_FEATURES, classes: list[str] | None = None, name: str = ""):
        super().__init__()
        self.channels, self.num_classes, self.resolution = int(channels), int(num_classes), int(resolution)
        self.width, self.num_features = int(width), int(num_features)
        self.classes = list(classes) if classes else [str(i) for i in range(num_classes)]
        self.name = name  # set from the weights' hash when saved or loaded; "" = unsaved (never cached)
        self.meta: dict = {}
        w = self.width
        self.body = nn.Sequential(*_block(self.channels, w), nn.MaxPool2d(2), *_block(w, 2 * w), nn.MaxPool2d(2),
                                  *_block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(3), nn.Flatten())
        self.feature = nn.Sequential(nn.Linear(4 * w * 9, self.num_features), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.num_features, self.num_classes))
        self.register_buffer("feature_scale", torch.ones(()))

    def arch(self) -> dict:
        return {"channels": self.channels, "num_classes": self.num_classes, "resolution": self.resolution,
                "width": self.width, "num_features": self.num_features}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate layer (scaled), (N, num_features), of float images in [-1, 1] at self.resolution."""
        return self.feature(self.body(x)) * self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of float images in [-1, 1]."""
        return self.head(self.feature(self.body(x)))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) images of any size -> float in [-1, 1] at the classifier's resolution."""
        return prepare_images(images, self.channels, self.resolution)

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Class probabilities (N, num_classes) of uint8 images."""
        was = self.training
        self.eval()
        out = torch.cat([F.softmax(self(self.prepare(chunk)), dim=1) for chunk in images.split(batch)])
        self.train(was)
        return out

    def extractor(self) -> "ClassifierFeatures":
        """This model as a torchmetrics custom feature module (uint8 in, features out)."""
        return ClassifierFeatures(self)

    @property
    def resize(self) -> str:
        return f"{RESIZE} to {self.resolution}x{self.resolution}"

    @property
    def class_distribution(self) -> torch.Tensor:
        dist = self.meta.get("class_distribution")
        if not dist:
            return torch.full((self.num_classes,), 1.0 / self.num_classes, dtype=torch.float64)
        return torch.tensor(dist, dtype=torch.float64)


class ClassifierFeatures(nn.Module):
    """Feature extractor protocol used by ganforge.metrics: `name`, `num_features`, `resize` and
    forward(uint8 (N, C, H, W)) -> float (N, num_features). Stays in eval mode."""

    def __init__(self, classifier: DomainClassifier):
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.num_features
        self.name = classifier.name
        self.resize = classifier.resize

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"{self.name} takes uint8 images in [0, 255], got {images.dtype}; "
                            f"with torchmetrics pass uint8 and keep normalize=False")
        return self.classifier.features(self.classifier.prepare(images)).float()


def prepare_images(images: torch.Tensor, channels: int, resolution: int) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[1] != channels:
        raise ConfigError(f"images have {images.shape[1]} channels but the classifier was trained on {channels}: "
                          f"evaluate against a classifier of the same dataset")
    x = images.float()
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.div_(127.5).sub_(1.0)


# ----------------------------------------------------------------------------------------------- training

def _drop_test_duplicates(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor):
    """Train images byte-identical to a test image are dropped, so the test accuracy is honest
    (scikit-learn's digits 'test' split is a subset of its 'train' split)."""
    test_keys = {hashlib.blake2b(img.numpy().tobytes(), digest_size=12).digest() for img in test_x}
    keep = torch.tensor([hashlib.blake2b(img.numpy().tobytes(), digest_size=12).digest() not in test_keys
                         for img in train_x], dtype=torch.bool)
    return train_x[keep], train_y[keep], int((~keep).sum())


def _load_splits(dataset_name: str, data_dir: str | None, resolution: int | None, seed: int):
    from ganforge.data import BUILTIN, load_dataset

    if dataset_name in ("ring8", "grid25"):
        raise ConfigError(f"{dataset_name} is 2-D points, not images: its metrics (modes, hq, reverse KL) need "
                          f"no classifier")
    train = load_dataset(dataset_name, data_dir=data_dir, resolution=resolution, split="train")
    if train.labels is None or train.num_classes < 2:
        raise DataError(f"{dataset_name} has no class labels, so no classifier can be trained on it: put the images "
                        f"in one sub-folder per class, or use --features inception")
    if dataset_name in BUILTIN:
        test = load_dataset(dataset_name, data_dir=data_dir, resolution=resolution, split="test")
        tx, ty, dropped = _drop_test_duplicates(train.data, train.labels, test.data)
        return train, (tx, ty), (test.data, test.labels), dropped
    # a folder has no test split: hold out a fixed 10%
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    cut = max(1, len(train) // 10)
    te, tr = perm[:cut], perm[cut:]
    return train, (train.data[tr], train.labels[tr]), (train.data[te], train.labels[te]), 0


@torch.no_grad()
def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    return float((model.predict_proba(images, batch).argmax(1) == labels).double().mean())


def train_classifier(dataset_name: str, data_dir: str | None = None, out: str | Path | None = None,
                     epochs: int | None = None, seed: int = 0, *, resolution: int | None = None, batch: int = 128,
                     lr: float = 3e-3, width: int = DEFAULT_WIDTH, num_features: int = DEFAULT_FEATURES,
                     max_images: int | None = None) -> dict:
    """Train the domain classifier of a labelled image dataset and save it (safetensors + JSON sidecar).

    out: the .safetensors path (default: the cache, see `default_classifier_path`). resolution: train at this
    size (default: the dataset's own). max_images: train on a random subset (for quick tests).
    Returns the sidecar's contents plus `path`.
    """
    from ganforge.metrics.cache import dataset_key, default_classifier_path

    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    out = Path(out).expanduser() if out else default_classifier_path(dataset_name)
    if out.suffix != ".safetensors":
        raise ConfigError(f"the classifier is saved as safetensors: --out must end in .safetensors, not '{out.name}'")
    train, (x, y), (tx, ty), dropped = _load_splits(dataset_name, data_dir, resolution, seed)
    gen = torch.Generator().manual_seed(seed)
    if max_images is not None and max_images < len(x):
        keep = torch.randperm(len(x), generator=gen)[:max_images]
        x, y = x[keep], y[keep]
    channels, res = train.data.shape[1], train.data.shape[-1]
    if train.data.shape[-2] != res:
        raise DataError(f"{dataset_name}: images are {tuple(train.data.shape[-2:])}, not square: pass --resolution")
    epochs = epochs or DEFAULT_EPOCHS.get(dataset_name, max(3, min(40, math.ceil(180_000 / len(x)))))
    flip = dataset_name in FLIP_OK

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DomainClassifier(channels, train.num_classes, res, width, num_features, train.classes)
        steps_per_epoch = max(1, len(x) // batch)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                    pct_start=0.2)
        start, cpu_start = time.perf_counter(), time.process_time()
        test_acc = 0.0
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(len(x), generator=gen)
            total = 0.0
            for i in range(steps_per_epoch):
                idx = perm[i * batch:(i + 1) * batch]
                xb = model.prepare(x[idx])
                if flip:
                    mirror = torch.rand(len(idx), generator=gen) < 0.5
                    xb[mirror] = xb[mirror].flip(-1)
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
            test_acc = accuracy(model, tx, ty)
            log.info(f"epoch {epoch + 1}/{epochs}: loss {total / steps_per_epoch:.3f}, test accuracy {test_acc:.4f} "
                     f"({time.perf_counter() - start:.0f} s)")
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.eval()
    with torch.no_grad():
        sample = x[torch.randperm(len(x), generator=gen)[:5000]]
        hidden = torch.cat([model.feature(model.body(model.prepare(c))) for c in sample.split(1000)])
        model.feature_scale.fill_(1.0 / hidden.square().mean().sqrt().clamp_min(1e-12))

    counts = torch.bincount(train.labels, minlength=train.num_classes).double()
    meta = {
        "format": FORMAT, "version": VERSION,
        "dataset": dataset_name, "dataset_key": dataset_key(dataset_name),
        "resolution": res, "channels": channels, "classes": list(train.classes),
        "class_distribution": (counts / counts.sum()).tolist(),
        "test_accuracy": round(test_acc, 5), "test_images": len(tx), "train_images": len(x),
        "train_test_duplicates_dropped": dropped,
        "feature_dim": num_features, "feature_scale": float(model.feature_scale), "arch": model.arch(),
        "resize": RESIZE,
        "epochs": epochs, "batch": batch, "lr": lr, "seed": seed, "hflip": flip,
        "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu_seconds, 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    save_classifier(model, out, meta)
    return {**model.meta, "path": str(out)}


# ----------------------------------------------------------------------------------------------- files

def save_classifier(model: DomainClassifier, path: str | Path, meta: dict) -> Path:
    """Write weights (safetensors) then the JSON sidecar, each atomically; the sidecar records the weights' sha256."""
    from safetensors.torch import save

    from ganforge.checkpoint import atomic_write

    path = Path(path)
    blob = save({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})
    meta = {**meta, "weights": path.name, "sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write(path, lambda f: f.write(blob))
    atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(meta, indent=1).encode()))
    model.meta = meta
    model.name = _extractor_name(meta)
    return path


def _extractor_name(meta: dict) -> str:
    return f"classifier-{meta['dataset_key']}-{meta['resolution']}px-{meta['sha256'][:10]}"


def load_classifier(source: str | Path) -> DomainClassifier:
    """Load a classifier from a .safetensors file, or the cached one of a dataset name.

    Anything that is not safetensors (.pt, .pth, .pkl, ...) is refused: pickle can run code.
    """
    from safetensors.torch import load

    from ganforge.checkpoint import refuse_pickle
    from ganforge.metrics.cache import default_classifier_path

    path = Path(source).expanduser()
    refuse_pickle(path)
    if not path.is_file():
        if path.suffix == ".safetensors":
            raise CheckpointError(f"classifier {path} does not exist: train one with `ganforge train-classifier "
                                  f"--data DATASET --out {path}`")
        name = str(source)
        path = default_classifier_path(name)
        if not path.is_file():
            raise CheckpointError(f"no classifier for {name} at {path}: train it once with `ganforge train-classifier "
                                  f"--data {name}` (a few CPU minutes), or use --features inception")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path} is not a .safetensors file: ganforge loads classifier weights only from "
                              f"safetensors (with a JSON sidecar)")
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{sidecar} is missing (it describes {path.name}): retrain with "
                              f"`ganforge train-classifier`") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {sidecar} ({e}): retrain with `ganforge train-classifier`") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{sidecar} is not a ganforge classifier sidecar: retrain with `ganforge train-classifier`")
    blob = path.read_bytes()
    if meta.get("sha256") and hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise CheckpointError(f"{path.name} does not match the sha256 in {sidecar.name} (changed or half-copied): "
                              f"copy both files again or retrain")
    try:
        tensors = load(blob)
    except Exception as e:  # safetensors' SafetensorError (its name varies by version)
        raise CheckpointError(f"{path} is not a valid safetensors file ({e}): retrain with "
                              f"`ganforge train-classifier`") from None
    arch = meta["arch"]
    model = DomainClassifier(arch["channels"], arch["num_classes"], arch["resolution"], arch["width"],
                             arch["num_features"], meta.get("classes"))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the classifier described in {sidecar.name}: "
                              f"{str(e).splitlines()[0]}; retrain") from None
    model.meta = {**meta, "path": str(path)}
    model.name = _extractor_name(meta)
    return model.eval()
