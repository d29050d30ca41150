"""The optional `inception` feature extractor: torch-fidelity's InceptionV3 (the TensorFlow FID network,
2048-d pool features), for numbers comparable with published FIDs.

Needs the extra (`pip install -c constraints.txt 'ganforge[inception]'`, i.e. torch-fidelity) and its
weights file, which torch-fidelity downloads on first use into torch's hub cache
(`$TORCH_HOME/hub/checkpoints/`, ~/.cache/torch by default). Offline, copy
`weights-inception-2015-12-05-6726825d.pth` there or point $GANFORGE_INCEPTION_WEIGHTS at it.
That file is a PyTorch state dict that torch-fidelity reads with torch.load (weights-only by default
since torch 2.6); ganforge's own files stay safetensors.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ganforge.errors import ConfigError

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
INSTALL = "pip install -c constraints.txt 'ganforge[inception]'"


def weights_path() -> Path:
    if os.environ.get("GANFORGE_INCEPTION_WEIGHTS"):
        return Path(os.environ["GANFORGE_INCEPTION_WEIGHTS"]).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


class InceptionFeatures(nn.Module):
    """uint8 (N, C, H, W) -> (N, 2048). Grey images are repeated to RGB; torch-fidelity resizes to 299x299."""

    num_features = 2048
    name = "inception-v3-compat-2048"
    resize = "torch-fidelity bilinear (TF1-compatible) to 299x299; grey repeated to RGB"

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()

    def train(self, mode: bool = True) -> "InceptionFeatures":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"{self.name} takes uint8 images in [0, 255], got {images.dtype}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] != 3:
            raise ConfigError(f"the inception extractor takes grey or RGB images, not {images.shape[1]} channels")
        return self.net(images.contiguous())[0].reshape(len(images), -1).float()


def load_inception() -> InceptionFeatures:
    """InceptionV3 from torch-fidelity, or a ConfigError saying in one line how to get it."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise ConfigError(f"--features inception needs torch-fidelity: run `{INSTALL}`; offline, also copy "
                          f"{WEIGHTS_URL} to {weights_path()} (or set $GANFORGE_INCEPTION_WEIGHTS); "
                          f"or use --features classifier") from None
    path = weights_path()
    try:
        if path.is_file():
            net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
        else:  # torch-fidelity downloads into torch's hub cache, which is where weights_path() looks
            net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    except Exception as e:  # no network, damaged file, incompatible torch-fidelity
        raise ConfigError(f"cannot load the InceptionV3 weights ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
                          f"download {WEIGHTS_URL} to {path} (or set $GANFORGE_INCEPTION_WEIGHTS to it), "
                          f"or use --features classifier") from None
    return InceptionFeatures(net)
