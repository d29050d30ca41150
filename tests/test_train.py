"""End to end: a real (tiny) training run through the library and the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from ganforge import ConfigError, Trainer, load_run
from ganforge.checkpoint import load_checkpoint


def test_run_directory_has_everything(tmp_path):
    run = Trainer(tiny_config(tmp_path)).fit()
    d = run.dir
    for name in ("config.yaml", "metrics.jsonl", "samples.png", "curves.png"):
        assert (d / name).is_file(), name
    assert sorted(p.name for p in (d / "samples").glob("*.png")) == ["step-00000000.png", "step-00000003.png",
                                                                      "step-00000006.png"]
    assert any((d / "tb").iterdir())
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "d_acc", "img_per_s", "epoch"} <= set(rows[0])
    assert all(0 <= r["d_real"] <= 1 and 0 <= r["d_acc"] <= 1 for r in rows)
    tensors, meta = load_checkpoint(d / "checkpoints")
    assert meta["step"] == 6 and any(k.startswith("G.") for k in tensors)
    images = run.sample(5)
    assert images.shape == (5, 1, 8, 8) and images.dtype == torch.uint8


def test_same_seed_same_run(tmp_path):
    a = Trainer(tiny_config(tmp_path / "a")).fit().sample(4)
    b = Trainer(tiny_config(tmp_path / "b")).fit().sample(4)
    c = Trainer(tiny_config(tmp_path / "c", seed=1)).fit().sample(4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_resume_continues_where_it_stopped(tmp_path):
    full = Trainer(tiny_config(tmp_path / "full", steps=6)).fit()
    Trainer(tiny_config(tmp_path / "part", steps=3)).fit()
    resumed = Trainer(tiny_config(tmp_path / "part", steps=6), resume=True).fit()
    assert torch.equal(full.sample(8), resumed.sample(8))
    for name, value in full.G.state_dict().items():
        assert torch.equal(value, resumed.G.state_dict()[name]), name


def test_existing_run_directory_is_refused(tmp_path):
    Trainer(tiny_config(tmp_path)).fit()
    with pytest.raises(ConfigError, match="--overwrite"):
        Trainer(tiny_config(tmp_path)).fit()
    Trainer(tiny_config(tmp_path), overwrite=True).fit()


def test_overwrite_never_deletes_a_foreign_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a ganforge run"):
        Trainer(tiny_config(tmp_path), overwrite=True).fit()
    assert (tmp_path / "run" / "thesis.tex").read_text() == "precious"


def test_users_own_modules(tmp_path):
    G = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 8, 8)))
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))  # returns (B, 1)
    before = [p.clone() for p in G.parameters()]
    run = Trainer(tiny_config(tmp_path, model=None), generator=G, discriminator=D).fit()
    assert run.config.model == "custom"
    assert not all(torch.equal(a, b.cpu()) for a, b in zip(before, G.parameters()))  # G may have moved to a GPU
    assert run.sample(3).shape == (3, 1, 8, 8)


@pytest.mark.parametrize("loss", ["minimax", "wgan", "wgan-gp", "hinge", "lsgan", "ragan"])
def test_every_loss_trains_end_to_end(tmp_path, loss):
    run = Trainer(tiny_config(tmp_path, loss=loss, steps=4, d_steps=2)).fit()
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in rows)


def test_points_run_writes_scatter_plots(tmp_path):
    run = Trainer(tiny_config(tmp_path, data="grid25", model=None, resolution=None, batch=32)).fit()
    assert run.sample(10).shape == (10, 2)
    assert Image.open(run.dir / "samples.png").size[0] > 100


def ganforge(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_train_then_sample(tmp_path):
    r = ganforge("train", "--steps", "4", "--resolution", "8", "--width", "8", "--quiet", "--out", "runs/x", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for out in ("grid.png", "arr.npy", "folder"):
        r = ganforge("sample", "runs/x", "--n", "6", "--out", out, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "arr.npy").shape == (6, 1, 8, 8)
    assert len(list((tmp_path / "folder").glob("*.png"))) == 6
    r = ganforge("sample", "runs/x", "--interpolate", "--n", "20", "--out", "walk.png", cwd=tmp_path)
    assert r.returncode == 0 and Image.open(tmp_path / "walk.png").size[0] > Image.open(tmp_path / "walk.png").size[1]
    # replay from the saved config: a new run with the same settings
    r = ganforge("train", "--config", "runs/x/config.yaml", "--out", "runs/y", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert torch.equal(load_run(tmp_path / "runs/x").sample(4), load_run(tmp_path / "runs/y").sample(4))


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "nope"], "unknown dataset 'nope'"),
    (["train", "--batch", "0"], "--batch must be greater than 0"),
    (["train", "--loss", "vanilla"], "unknown loss 'vanilla'"),
    (["train", "--resolution", "30"], "--resolution with one of"),
    (["sample", "no/such/run"], "not a ganforge run directory"),
    (["sample", "weights.pt"], "pickle"),
])
def test_cli_user_errors_are_one_line(tmp_path, args, message):
    r = ganforge(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_latent_components_survive_saving_and_loading(tmp_path):
    cfg = tiny_config(tmp_path, data="ring8", model="mlp", resolution=None, latent_components=4, latent_dim=3)
    trained = Trainer(cfg).fit()
    loaded = load_run(trained.dir)
    assert loaded.config.latent_components == 4 and loaded.G.components.components == 4
    assert torch.equal(loaded.sample(50, seed=2), trained.sample(50, seed=2))
