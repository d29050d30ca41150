"""Checkpoints that cannot run code and cannot be half-written.

A checkpoint is two files: `step-NNNNNNNN.safetensors` (every tensor: weights, optimiser moments,
RNG states) and `step-NNNNNNNN.json` (everything else). Each is written to a temporary file,
fsynced and renamed into place, the JSON last; a checkpoint counts only once its JSON exists, so a
crash mid-write leaves the previous one as the latest. Pruning keeps the newest K plus the one that
`best.json` names (set by evaluation through `mark_best`). Pickle files are never loaded.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ganforge.errors import CheckpointError

PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}
NAME = re.compile(r"^step-(\d{8})\.json$")
BEST = "best.json"


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_checkpoint(directory: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                    keep: int | None = None, protect: set[int] = frozenset()) -> Path:
    """Write the checkpoint of `step`; then delete all but the newest `keep` (and those in `protect`)."""
    from safetensors.torch import save

    stem = f"step-{step:08d}"
    blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    atomic_write(directory / f"{stem}.safetensors", lambda f: f.write(blob))
    record = {"step": step, "weights": f"{stem}.safetensors", "weights_bytes": len(blob), **meta}
    atomic_write(directory / f"{stem}.json", lambda f: f.write(json.dumps(record, indent=1).encode()))
    if keep is not None:
        protect = set(protect) | {b for b in [best_step(directory)] if b is not None}
        for old in list_checkpoints(directory)[:-keep]:
            if old not in protect:
                for suffix in (".json", ".safetensors"):
                    (directory / f"step-{old:08d}{suffix}").unlink(missing_ok=True)
    return directory / f"{stem}.json"


def list_checkpoints(directory: Path) -> list[int]:
    """Steps of the complete checkpoints in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := NAME.match(p.name)))


def mark_best(directory: Path, step: int, metric: str, value: float, **extra) -> None:
    """Record that checkpoint `step` scored best so far on `metric`; pruning never deletes it."""
    if not (directory / f"step-{step:08d}.json").is_file():
        raise CheckpointError(f"cannot mark step {step} as best: {directory} holds no complete checkpoint of it")
    record = {"step": step, "metric": metric, "value": value, **extra}
    atomic_write(directory / BEST, lambda f: f.write(json.dumps(record).encode()))


def best_step(directory: Path) -> int | None:
    """The step `best.json` names, or None (no marker, or a marker left unreadable)."""
    try:
        return int(json.loads((directory / BEST).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clean_partial(directory: Path) -> list[Path]:
    """Delete what an interrupted save leaves behind: temporary files and weights without a JSON.
    Only safe while no other process writes to `directory` (one trainer per run)."""
    if not directory.is_dir():
        return []
    complete = set(list_checkpoints(directory))
    removed = []
    for p in directory.iterdir():
        orphan = p.suffix == ".safetensors" and p.stem.startswith("step-") and p.stem[5:].isdigit() \
            and int(p.stem[5:]) not in complete
        if orphan or (p.name.startswith(".") and p.name.endswith(".tmp")):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path} looks like a pickle file, which can run arbitrary code when loaded; ganforge "
                              f"loads only safetensors weights with a JSON state file (pass a run directory, or "
                              f"convert a file you trust with safetensors.torch.save_file)")


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint given its .json, its .safetensors, or a checkpoints folder (the newest complete one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    refuse_pickle(path)
    if path.name == "checkpoints" and not path.exists():
        raise CheckpointError(f"{path.parent} has no checkpoint yet: train it (or continue it with ganforge train "
                              f"--resume {path.parent}) until it saves one")
    if path.is_dir():
        steps = list_checkpoints(path)
        if not steps:
            raise CheckpointError(f"no complete checkpoint in {path}: train first, or point at a run that saved one")
        path = path / f"step-{steps[-1]:08d}.json"
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        meta = json.loads(path.read_text())
        weights = path.parent / meta["weights"]
        if weights.suffix != ".safetensors":
            raise CheckpointError(f"{path} names weights {meta['weights']!r}, not a .safetensors file; ganforge "
                                  f"loads weights only from safetensors")
        if weights.stat().st_size != meta["weights_bytes"]:
            raise CheckpointError(f"{weights} is truncated ({weights.stat().st_size} of {meta['weights_bytes']} bytes): "
                                  f"resume from an earlier checkpoint")
        return load_file(str(weights)), meta
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError, TypeError) as e:
        raise CheckpointError(f"{path} is not a ganforge checkpoint state file ({e})") from None
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read the weights of {path}: {e}") from None


# ---------------------------------------------------------------- flattening PyTorch state
def flatten_module(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load `prefix.*` tensors into module; a shape mismatch names the tensor and both shapes."""
    own = module.state_dict()
    given = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not fit the {prefix} model: missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}; build the model with the settings the run was trained with")
    for k, v in given.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"checkpoint does not fit the {prefix} model: {k} is {tuple(v.shape)} in the "
                                  f"checkpoint but {tuple(own[k].shape)} in the model; use the run's own settings")
    module.load_state_dict(given)


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimiser state as tensors (moments, step counters) plus a JSON-able rest (hyper-parameters)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            idx, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
