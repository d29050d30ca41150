"""ganforge: train generative adversarial networks.

    from ganforge import TrainConfig, Trainer
    run = Trainer(TrainConfig(data="fashion-mnist", steps=5000, out="runs/fm")).fit()
    images = run.sample(64)  # uint8 (64, 1, 28, 28)

Importing ganforge is cheap: the heavy parts load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "ganforge.config",
    "Trainer": "ganforge.train.trainer",
    "Run": "ganforge.train.run",
    "load_run": "ganforge.train.run",
    "load_dataset": "ganforge.data",
    "GanforgeError": "ganforge.errors",
    "ConfigError": "ganforge.errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
