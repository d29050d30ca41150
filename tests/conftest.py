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


@pytest.fixture(scope="session")
def digits_classifier_dir(tmp_path_factory):
    """A digits domain classifier, trained once per session (seconds); its `classifiers/` folder."""
    from ganforge.metrics.classifier import train_classifier

    cache = tmp_path_factory.mktemp("digits-classifier")
    mp = pytest.MonkeyPatch()
    mp.setenv("GANFORGE_CACHE", str(cache))
    try:
        train_classifier("digits", epochs=6)
    finally:
        mp.undo()
    return cache / "classifiers"


def private_cache_with_classifier(tmp_path_factory, classifier_dir):
    """Generator for module fixtures: $GANFORGE_CACHE points at a fresh folder holding only the trained
    classifier (reference statistics start uncached), for as long as the module runs."""
    import shutil

    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(classifier_dir, cache / "classifiers")
    mp = pytest.MonkeyPatch()
    mp.setenv("GANFORGE_CACHE", str(cache))
    try:
        yield cache
    finally:
        mp.undo()
