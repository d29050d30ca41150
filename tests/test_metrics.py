"""Metrics on cases with known answers: 2-D mode statistics, FD/KID/precision-recall, class coverage, evaluate()."""

import json
import math
import subprocess
import sys

import pytest
import torch

from conftest import private_cache_with_classifier
from ganforge.data import load_dataset
from ganforge.data.toy2d import mixture_modes
from ganforge.errors import ConfigError
from ganforge.metrics import evaluate, mode_stats
from ganforge.metrics.image import class_coverage, feature_metrics, image_metrics, prdc

FAST = dict(kid_subsets=10)

# ------------------------------------------------------------------------------------------- 2-D modes


def grid():
    return mixture_modes("grid25"), 0.05


def test_all_modes_exact_hits():
    modes, std = grid()
    s = mode_stats(modes.repeat(100, 1), modes, std)
    assert (s["modes"], s["total_modes"], s["hq"]) == (25, 25, 1.0)
    assert s["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    assert s["per_mode"] == [100] * 25


def test_twenty_of_twentyfive_modes():
    modes, std = grid()
    s = mode_stats(modes[:20].repeat(50, 1), modes, std)
    assert s["modes"] == 20 and s["hq"] == 1.0
    # q uniform over 20 modes vs p uniform over 25: KL = log(25 / 20)
    assert s["reverse_kl"] == pytest.approx(math.log(25 / 20), rel=1e-9)


def test_half_the_samples_far_away():
    modes, std = grid()
    near = modes.repeat(40, 1) + 0.5 * std * torch.randn(1000, 2, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    far = torch.full((1000, 2), 1.0)  # (1, 1) is sqrt(2) = 28 std from every mode
    s = mode_stats(torch.cat([near, far]), modes, std)
    assert s["hq"] == 0.5 and s["modes"] == 25 and s["n"] == 2000


def test_three_std_boundary_and_collapse():
    modes, std = grid()
    inside = modes[:1] + torch.tensor([[2.99 * std, 0.0]])
    outside = modes[:1] + torch.tensor([[0.0, 3.01 * std]])
    assert mode_stats(inside, modes, std)["hq"] == 1.0
    assert mode_stats(outside, modes, std)["hq"] == 0.0
    collapsed = mode_stats(modes[7:8].repeat(2500, 1), modes, std)
    assert collapsed["modes"] == 1 and collapsed["reverse_kl"] == pytest.approx(math.log(25))
    nothing = mode_stats(torch.full((10, 2), 100.0), modes, std)
    assert nothing["modes"] == 0 and nothing["hq"] == 0.0 and nothing["reverse_kl"] == math.inf


def test_real_mixture_scores_like_the_papers():
    for name in ("ring8", "grid25"):
        ds = load_dataset(name)
        s = mode_stats(ds.data[:2500], ds.modes, ds.mode_std)
        assert s["modes"] == s["total_modes"]
        assert s["hq"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(|N(0, I_2)| < 3)
        assert s["reverse_kl"] < 0.02


def test_evaluate_points():
    modes, std = grid()
    r = evaluate(lambda n: modes[:20].repeat(n // 20 + 1, 1)[:n], "grid25")
    assert r["kind"] == "points" and r["modes"] == 20 and r["hq"] == 1.0
    assert r["protocol"]["n_fake"] == 2500  # the PacGAN / VEEGAN sample count
    assert r["real"]["modes"] == 25
    with pytest.raises(ConfigError, match="points"):
        evaluate(lambda n: torch.zeros(n, 1, 8, 8, dtype=torch.uint8), "ring8")


# ------------------------------------------------------------------------------------------- feature metrics


def test_identical_features_give_zero_fd():
    feats = torch.randn(600, 16, generator=torch.Generator().manual_seed(0))
    r = feature_metrics(feats, feats.clone(), **FAST)
    assert abs(r["fd"]) < 1e-6
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0


def test_fd_of_a_shift_is_its_squared_length():
    feats = torch.randn(600, 16, generator=torch.Generator().manual_seed(0)).double()
    r = feature_metrics(feats + 0.5, feats, **FAST)  # same covariance, means 0.5 apart in 16 dims
    assert r["fd"] == pytest.approx(16 * 0.25, rel=1e-6)


def test_disjoint_sets_have_no_precision_or_recall():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 100
    r = prdc(a, b)
    assert r["precision"] == r["recall"] == r["density"] == r["coverage"] == 0.0


# ------------------------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def digits_env(tmp_path_factory, digits_classifier_dir):
    """The digits classifier in a private cache, and the data."""
    from ganforge.metrics.classifier import load_classifier

    for cache in private_cache_with_classifier(tmp_path_factory, digits_classifier_dir):
        yield load_classifier("digits"), load_dataset("digits"), cache


def test_real_vs_real_is_small_and_noise_is_huge(digits_env):
    clf, ds, _ = digits_env
    ex = clf.extractor()
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(1))
    a, b = ds.data[perm[:800]], ds.data[perm[800:1600]]
    same = image_metrics(a, a, ex, **FAST)
    assert abs(same["fd"]) < 1e-6
    real = image_metrics(a, b, ex, split="train", **FAST)
    noise = image_metrics(torch.randint(0, 256, a.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
                          b, ex, **FAST)
    assert noise["fd"] > 50 * real["fd"]
    assert noise["kid_mean"] > 50 * abs(real["kid_mean"])
    assert real["precision"] > 0.8 and real["recall"] > 0.8 and noise["recall"] < 0.2
    p = real["protocol"]
    assert (p["n_fake"], p["n_real"], p["split"]) == (800, 800, "train")
    assert p["features"] == clf.name and p["resize"].startswith("bilinear") and p["feature_dim"] == 128
    with pytest.raises(ConfigError, match="uint8"):
        image_metrics(a.float(), b, ex)


def test_three_classes_give_poor_coverage(digits_env):
    clf, ds, _ = digits_env
    three = class_coverage(ds.data[ds.labels < 3], clf)
    assert three["classes_covered"] == 3
    assert three["kl"] > 1.0  # log(10 / 3) = 1.20 when the three are equally frequent
    assert set(three["missing"]) == {str(i) for i in range(3, 10)}
    # in feature space too: three classes sit far further from the data than another sample of it does
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(2))
    half = ds.data[perm[:900]]
    three_fd = image_metrics(ds.data[ds.labels < 3], half, clf.extractor(), **FAST)["fd"]
    real_fd = image_metrics(ds.data[perm[900:]], half, clf.extractor(), **FAST)["fd"]
    assert three_fd > 10 * real_fd
    full = class_coverage(ds.data, clf)
    assert full["classes_covered"] == 10 and full["kl"] < 0.05 and not full["missing"]
    assert full["mean_confidence"] > 0.8
    assert sum(full["histogram"].values()) == len(ds) == full["protocol"]["n_fake"]
    assert full["protocol"]["classifier"] == clf.name


def test_evaluate_images_caches_the_reference(digits_env):
    clf, ds, cache = digits_env
    test = load_dataset("digits", split="test")
    sample = lambda n: test.data[torch.randint(len(test), (n,), generator=torch.Generator().manual_seed(0))]
    first = evaluate(sample, "digits", n=500, **FAST)
    assert first["kind"] == "images"
    for key in ("fd", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"):
        assert math.isfinite(first[key])
    p = first["protocol"]
    assert (p["n_fake"], p["n_real"], p["split"], p["reference_cached"]) == (500, 500, "train", False)
    assert p["resolution"] == [1, 8, 8] and p["features"] == clf.name
    assert first["class_coverage"]["classes_covered"] == 10
    assert list((cache / "reference").glob("digits-train-8px-n500-*.safetensors"))
    second = evaluate(sample, "digits", n=500, **FAST)
    assert second["protocol"]["reference_cached"] is True
    assert second["fd"] == pytest.approx(first["fd"], rel=1e-9)
    json.dumps(second)  # plain JSON types only


def test_every_result_states_its_protocol(digits_env):
    """Sample counts, split, resize filter and feature extractor travel with every number."""
    modes = mixture_modes("ring8")
    points = evaluate(lambda n: modes.repeat(n // 8 + 1, 1)[:n], "ring8", n=400)
    images = evaluate(lambda n: load_dataset("digits", split="test").data[:n], "digits", n=300, split="test", **FAST)
    for result in (points, images):
        p = result["protocol"]
        assert {"n_fake", "n_real", "split", "resize", "features"} <= set(p)
        assert p["n_fake"] == (400 if result is points else 300)
    assert images["protocol"]["split"] == "test" and images["protocol"]["resize"] == "bilinear-antialias to 8x8"
    coverage = images["class_coverage"]["protocol"]
    assert coverage["n_fake"] == 300 and coverage["resize"] and coverage["classifier"].startswith("classifier-digits")


def test_evaluate_at_another_resolution_and_wrong_inputs(digits_env):
    up = load_dataset("digits", resolution=16, split="test").data
    r = evaluate(lambda n: up[:n], "digits", n=300, **FAST)
    assert r["protocol"]["resolution"] == [1, 16, 16] and "to 8x8" in r["protocol"]["resize"]
    with pytest.raises(ConfigError, match="uint8"):
        evaluate(lambda n: torch.zeros(n, 2), "digits", n=10)
    with pytest.raises(ConfigError, match="channels"):
        evaluate(lambda n: up[:n].expand(-1, 3, -1, -1), "digits", n=50, **FAST)


def test_inception_fails_cleanly_when_unavailable(digits_env):
    try:
        import torch_fidelity  # noqa: F401
        pytest.skip("torch-fidelity is installed here")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match=r"ganforge\[inception\]") as e:
        evaluate(lambda n: torch.zeros(n, 1, 8, 8, dtype=torch.uint8), "digits", n=10, features="inception")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown --features"):
        evaluate(lambda n: torch.zeros(n, 1, 8, 8, dtype=torch.uint8), "digits", n=10, features="vgg")


def test_class_accuracy_counts_agreement_per_class(digits_env):
    from ganforge.metrics.image import class_accuracy

    clf = digits_env[0]
    ds = load_dataset("digits", split="test")
    right = class_accuracy(ds.data, ds.labels, clf)
    assert right["overall"] > 0.85 and min(right["per_class"].values()) > 0.6
    wrong = class_accuracy(ds.data, (ds.labels + 1) % 10, clf)
    assert wrong["overall"] < 0.15
    sevens = ds.labels == 7
    some = class_accuracy(ds.data[sevens], ds.labels[sevens], clf)
    assert some["per_class"]["3"] is None and some["per_class"]["7"] == some["overall"]
    with pytest.raises(ConfigError, match="one per image"):
        class_accuracy(ds.data[:5], ds.labels[:4], clf)


def test_evaluate_adds_class_accuracy_for_a_conditional_sampler(digits_env):
    ds = load_dataset("digits", split="test")
    pools = [ds.data[ds.labels == c] for c in range(10)]
    # a perfect "conditional generator": real test digits, sample i asked for class i % 10
    sample = lambda n: torch.stack([pools[i % 10][(i // 10) % len(pools[i % 10])] for i in range(n)])
    result = evaluate(sample, "digits", n=200, labels_fn=lambda n: torch.arange(n) % 10, **FAST)
    assert result["class_accuracy"]["overall"] > 0.85 and len(result["class_accuracy"]["per_class"]) == 10
    assert "class_accuracy" not in evaluate(sample, "digits", n=200, **FAST)
    json.dumps(result)


def test_missing_classifier_names_the_fix(tmp_path, monkeypatch):
    from ganforge.errors import CheckpointError

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="ganforge train-classifier --data digits"):
        evaluate(lambda n: torch.zeros(n, 1, 8, 8, dtype=torch.uint8), "digits", n=10)


def test_eval_command_writes_eval_json(digits_env, tmp_path, monkeypatch, capsys):
    """The CLI against a stand-in for ganforge.train.run.load_run (the run itself is tested elsewhere)."""
    import argparse
    from dataclasses import dataclass

    import ganforge.train.run as run_module
    from ganforge.cli import eval_cmd

    @dataclass
    class Cfg:
        data: str = "grid25"
        data_dir: str | None = None
        resolution: int | None = None

    class FakeRun:
        dir, config, conditional = tmp_path, Cfg(), False

        def sample(self, n, seed=0, drop_stretched=0.0):
            return mixture_modes("grid25")[:20].repeat(n // 20 + 1, 1)[:n]

    monkeypatch.setattr(run_module, "load_run", lambda path, device="cpu", checkpoint=None: FakeRun())
    parser = argparse.ArgumentParser()
    eval_cmd.add_parser(parser.add_subparsers(), "eval")
    args = parser.parse_args(["eval", str(tmp_path)])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "eval.json").read_text())
    assert printed == written and written["modes"] == 20 and written["run"] == str(tmp_path)


def test_package_import_is_light():
    code = ("import sys, ganforge.metrics; "
            "print(sorted(m for m in ('torchmetrics', 'safetensors', 'sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
