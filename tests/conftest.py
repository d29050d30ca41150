import pytest
import torch


@pytest.fixture(autouse=True)
def _small_threads():
    torch.set_num_threads(2)
    yield


def tiny_config(tmp_path, **overrides):
    from ganforge import TrainConfig

    values = dict(data="digits", resolution=8, model="dcgan", width=8, latent_dim=8, batch=16, steps=6, log_every=2,
                  sample_every=3, checkpoint_every=3, quiet=True, out=str(tmp_path / "run"))
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny finished run, shared by tests that only read it."""
    from ganforge import Trainer

    return Trainer(tiny_config(tmp_path_factory.mktemp("trained"), steps=2, checkpoint_every=2)).fit().dir
