"""Evaluation during training (--eval-every): metric lines, eval.json, the protected best checkpoint."""

import json
import logging

import pytest
import torch

from conftest import private_cache_with_classifier, tiny_config
from ganforge import Trainer
from ganforge.checkpoint import list_checkpoints


def rows_of(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def points_config(tmp_path, **overrides):
    values = dict(data="grid25", model=None, resolution=None, batch=32, steps=6, log_every=4, eval_every=3)
    return tiny_config(tmp_path, **{**values, **overrides})


def test_points_are_evaluated_on_schedule(tmp_path):
    run = Trainer(points_config(tmp_path)).fit()
    rows = rows_of(run.dir)
    # a metric line at every log step and every eval step; eval keys only on eval steps (and the last)
    assert [r["step"] for r in rows] == [3, 4, 6]
    assert [("eval/modes" in r) for r in rows] == [True, False, True]
    assert all(0 <= r["eval/hq"] <= 1 and 0 <= r["eval/modes"] <= 25 for r in rows if "eval/modes" in r)
    result = json.loads((run.dir / "eval.json").read_text())
    assert result["step"] == 6 and result["kind"] == "points" and result["modes"] == rows[-1]["eval/modes"]
    assert result["protocol"]["n_fake"] == 2500 and result["protocol"]["split"] == "train"
    best = json.loads((run.dir / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "modes" and best["step"] in (3, 6)
    assert best["step"] in list_checkpoints(run.dir / "checkpoints")
    assert result["best"]["step"] == best["step"]


def test_best_checkpoint_survives_pruning(tmp_path, monkeypatch):
    """Make the earliest evaluation the best: its checkpoint must outlive keep_checkpoints=1."""
    import ganforge.train.evaluation as evaluation

    monkeypatch.setattr(evaluation, "headline", lambda result: ("modes", (-evaluation_step[0],)))
    evaluation_step = [0]
    original = evaluation.Evaluation.evaluate

    def counting(self, trainer):
        evaluation_step[0] = trainer.step
        return original(self, trainer)

    monkeypatch.setattr(evaluation.Evaluation, "evaluate", counting)
    run = Trainer(points_config(tmp_path, steps=9, eval_every=2, checkpoint_every=1, keep_checkpoints=1)).fit()
    assert list_checkpoints(run.dir / "checkpoints") == [2, 9]
    assert json.loads((run.dir / "checkpoints" / "best.json").read_text())["step"] == 2
    # resuming keeps protecting it
    Trainer(points_config(tmp_path, steps=11, eval_every=2, checkpoint_every=1, keep_checkpoints=1), resume=True).fit()
    assert list_checkpoints(run.dir / "checkpoints") == [2, 11]


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory, digits_classifier_dir):
    yield from private_cache_with_classifier(tmp_path_factory, digits_classifier_dir)


def test_image_evaluation_leaves_training_unchanged(tmp_path, digits_cache):
    plain = Trainer(tiny_config(tmp_path / "plain")).fit()
    measured = Trainer(tiny_config(tmp_path / "measured", eval_every=3, eval_n=200)).fit()
    for name, value in plain.G.state_dict().items():
        assert torch.equal(value, measured.G.state_dict()[name]), name
    rows = rows_of(measured.dir)
    evaluated = [r for r in rows if "eval/fd" in r]
    assert [r["step"] for r in evaluated] == [3, 6]
    assert all(r["eval/fd"] > 0 and 0 <= r["eval/classes"] <= 10 for r in evaluated)
    result = json.loads((measured.dir / "eval.json").read_text())
    p = result["protocol"]
    assert (p["n_fake"], p["split"], p["kid_subsets"]) == (200, "train", 20)
    assert p["features"].startswith("classifier-digits") and p["resize"].startswith("bilinear")
    best = json.loads((measured.dir / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "fd" and best["value"] == pytest.approx(min(r["eval/fd"] for r in evaluated), abs=1e-5)


def test_images_without_classifier_skip_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "empty-cache"))
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        run = Trainer(tiny_config(tmp_path, eval_every=2)).fit()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ganforge train-classifier --data digits" in warnings[0]
    assert not any(k.startswith("eval/") for r in rows_of(run.dir) for k in r)
    assert not (run.dir / "eval.json").exists()


def test_best_checkpoint_loads_and_evaluates(tmp_path, monkeypatch):
    import subprocess
    import sys

    import ganforge.train.evaluation as evaluation
    from ganforge import load_run
    from ganforge.errors import CheckpointError

    monkeypatch.setattr(evaluation, "headline", lambda result: ("modes", (0,)))  # the first evaluation stays best
    run = Trainer(points_config(tmp_path, steps=8, eval_every=4)).fit()
    device = str(run.device)  # the same kernels as the finished run, also on a GPU
    best, latest = load_run(run.dir, device, checkpoint="best"), load_run(run.dir, device)
    assert torch.equal(latest.sample(16), run.sample(16))
    assert not torch.equal(best.sample(16), latest.sample(16))  # step 4's G, not step 8's
    assert torch.equal(load_run(run.dir, device, checkpoint=4).sample(16), best.sample(16))
    with pytest.raises(CheckpointError, match="step 5"):
        load_run(run.dir, checkpoint=5)
    r = subprocess.run([sys.executable, "-m", "ganforge", "eval", str(run.dir), "--checkpoint", "best"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["checkpoint"] == "best"
    (run.dir / "checkpoints" / "best.json").unlink()
    r = subprocess.run([sys.executable, "-m", "ganforge", "eval", str(run.dir), "--checkpoint", "best"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--eval-every" in r.stderr and len(r.stderr.strip().splitlines()) == 1
