"""Every loss, with the settings it gets by default (optimiser, learning rate, D steps, D norm), trains
on 2-D points and on images for a few dozen steps without NaN. The step and models are driven directly
so the test stays fast; the trainer around them is covered in test_train.py."""

import pytest
import torch

from ganforge import TrainConfig
from ganforge.data import load_dataset
from ganforge.data.batches import InMemoryBatches
from ganforge.losses import LOSSES, get_loss
from ganforge.models import build
from ganforge.train.ema import EMA
from ganforge.train.step import STATS, GANStep
from ganforge.train.trainer import make_optimizer


@pytest.mark.parametrize("data", ["grid25", "digits"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_loss_trains_without_nan(loss, data):
    torch.set_num_threads(1)  # tiny models: a second thread only adds synchronisation
    torch.manual_seed(0)
    ds = load_dataset(data, resolution=8 if data == "digits" else None)
    cfg = TrainConfig(data=data, loss=loss, width=16, batch=32, steps=24).resolve(len(ds), ds.shape)
    G, D = build(cfg.model, ds.shape, latent_dim=cfg.latent_dim, width=cfg.width, d_norm=cfg.d_norm)
    step = GANStep(G, D, make_optimizer(cfg.optimizer, G.parameters(), cfg.lr, cfg.betas),
                   make_optimizer(cfg.optimizer, D.parameters(), cfg.lr_d, cfg.betas), get_loss(cfg.loss),
                   cfg.latent_dim)
    ema, batches = EMA(G, cfg.ema), InMemoryBatches(ds.data, cfg.batch, seed=0)
    for _ in range(cfg.steps):
        stats = step([batches.next() for _ in range(cfg.d_steps)])
        ema.update(G)
        assert torch.isfinite(stats).all(), dict(zip(STATS, stats.tolist()))
    assert all(torch.isfinite(p).all() for p in [*G.parameters(), *D.parameters(), *ema.module.parameters()])
    with torch.no_grad():
        assert torch.isfinite(ema.module.eval()(torch.randn(16, cfg.latent_dim))).all()
