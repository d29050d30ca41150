"""Class-conditional GANs: labels from the data through both phases of the step, checkpoints, sampling by
class, the CLI, and the class-accuracy metric."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from ganforge import ConfigError, Trainer, load_run
from ganforge.errors import DataError
from ganforge.losses import get_loss
from ganforge.models import build
from ganforge.train.step import GANStep


def test_labels_reach_g_and_d_in_both_phases():
    """Only the asked-for class's embedding rows learn: D's projection in the D phase, G's embedding in the G phase."""
    torch.manual_seed(0)
    G, D = build("mlp", (2,), latent_dim=4, width=16, num_classes=5)
    step = GANStep(G, D, torch.optim.Adam(G.parameters(), lr=1e-2), torch.optim.Adam(D.parameters(), lr=1e-2),
                   get_loss("nonsaturating"), latent_dim=4)
    real, labels = torch.randn(16, 2), torch.full((16,), 2)
    d_embed, g_embed = D.projection.embed.weight.detach().clone(), G.embed.embed.weight.detach().clone()
    step.d_phase(real, labels)
    moved = (D.projection.embed.weight.detach() != d_embed).any(dim=1)
    assert moved.tolist() == [False, False, True, False, False]
    assert torch.equal(G.embed.embed.weight, g_embed)  # G does not learn in the D phase
    step.g_phase(real, labels)
    moved = (G.embed.embed.weight.detach() != g_embed).any(dim=1)
    assert moved.tolist() == [False, False, True, False, False]


def test_conditional_run_trains_samples_by_class_and_resumes(tmp_path):
    full = Trainer(tiny_config(tmp_path / "full", conditional=True)).fit()
    assert full.conditional and full.classes == [str(i) for i in range(10)]
    # training grids: one row per class (10 rows of ceil(64 / 10) = 7)
    grid = Image.open(full.dir / "samples" / "step-00000000.png")
    assert grid.size[1] > grid.size[0] * 1.3
    assert full.sample(5).shape == (5, 1, 8, 8)
    by_name, by_index = full.sample(4, labels="3"), full.sample(4, labels=3)
    assert torch.equal(by_name, by_index)
    assert not torch.equal(full.sample(4, labels=3), full.sample(4, labels=4))
    assert torch.equal(full.sample(3, labels=[1, 2, 3]), full.sample(3, labels=torch.tensor([1, 2, 3])))
    with pytest.raises(ConfigError, match="no class 12"):
        full.sample(2, labels=12)
    with pytest.raises(ConfigError, match="one per sample"):
        full.sample(3, labels=[1, 2])

    Trainer(tiny_config(tmp_path / "part", conditional=True, steps=3)).fit()
    resumed = Trainer(tiny_config(tmp_path / "part", conditional=True, steps=6), resume=True).fit()
    assert torch.equal(full.sample(8, labels=5), resumed.sample(8, labels=5))
    loaded = load_run(full.dir)
    assert loaded.classes == full.classes and torch.equal(loaded.sample(6, labels=1), full.sample(6, labels=1))


@pytest.mark.parametrize("model,resolution", [("mlp", 8), ("resnet", 16)])
def test_every_model_family_trains_conditionally(tmp_path, model, resolution):
    run = Trainer(tiny_config(tmp_path, conditional=True, model=model, resolution=resolution, steps=2,
                              sample_every=2, checkpoint_every=2)).fit()
    assert run.sample(3, labels=7).shape == (3, 1, resolution, resolution)


def test_unconditional_run_refuses_a_class(tmp_path):
    run = Trainer(tiny_config(tmp_path, steps=2)).fit()
    assert not run.conditional
    with pytest.raises(ConfigError, match="without --conditional"):
        run.sample(2, labels=1)


def test_unlabelled_data_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="drop --conditional"):
        Trainer(tiny_config(tmp_path / "a", data="grid25", model=None, resolution=None, conditional=True)).fit()
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), i * 60, dtype=np.uint8)).save(flat / f"{i}.png")
    with pytest.raises(DataError, match="one sub-folder per class"):
        Trainer(tiny_config(tmp_path / "b", data=str(flat), conditional=True)).fit()


def test_image_folder_classes_condition_the_gan(tmp_path):
    root = tmp_path / "imgs"
    for c, value in (("dark", 20), ("light", 230)):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((8, 8, 3), value + i, dtype=np.uint8)).save(root / c / f"{i}.png")
    run = Trainer(tiny_config(tmp_path, data=str(root), conditional=True, batch=8, steps=2)).fit()
    assert run.classes == ["dark", "light"] and run.sample(2, labels="light").shape == (2, 3, 8, 8)


def test_cli_conditional_train_and_sample(tmp_path, monkeypatch, capsys):
    """The CLI in-process (the subprocess path is covered by test_train.py)."""
    from ganforge.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--conditional", "--steps", "2", "--resolution", "8", "--width", "8", "--quiet",
                 "--out", "runs/c"]) == 0
    assert main(["sample", "runs/c", "--n", "20", "--out", "grid.png"]) == 0
    assert "wrote 20 samples" in capsys.readouterr().out  # 10 rows of 2
    assert main(["sample", "runs/c", "--n", "6", "--class", "4", "--out", "four.npy"]) == 0
    assert np.load(tmp_path / "four.npy").shape == (6, 1, 8, 8)
    for args, message in ((["sample", "runs/c", "--class", "ten"], "no class 'ten'"),
                          (["train", "--data", "ring8", "--conditional", "--out", "runs/r"], "drop --conditional")):
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
