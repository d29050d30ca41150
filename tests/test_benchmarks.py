"""The benchmark scripts run end to end (tiny settings) and print the JSON their docstrings promise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import private_cache_with_classifier

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout[r.stdout.index("{\n"):])  # the summary document follows any per-run lines


def test_quality_points_section_reports_worst_seed_against_targets():
    out = run_script("quality.py", "--seeds", "2", "--points", "grid25", "--points-steps", "20", "--skip", "fashion",
                     "--skip", "precision")
    runs, summary = out["points"]["runs"], out["points"]["summary"]["grid25"]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == 20 for r in runs)
    assert summary["worst"]["hq"] == min(r["hq"] for r in runs)
    assert summary["worst"]["seconds"] == max(r["seconds"] for r in runs)
    assert summary["target"]["modes"] == 25 and summary["all_targets_met"] is False  # 20 steps cannot do it
    dropped = out["points"]["summary_drop_stretched"]["grid25"]  # the same runs, 5% of each sample set dropped
    assert out["points"]["protocol"]["drop_stretched"] == 0.05
    assert dropped["worst"]["hq"] == min(r["drop_stretched"]["hq"] for r in runs)
    assert dropped["worst"]["seconds"] == summary["worst"]["seconds"]


def test_losses_benchmark_reports_every_run():
    out = run_script("losses.py", "--data", "grid25", "--loss", "hinge", "wgan", "--steps", "5")
    assert out["runs"] == 2 and out["all_finite"] is True and out["not_finite"] == []


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory, digits_classifier_dir):
    yield from private_cache_with_classifier(tmp_path_factory, digits_classifier_dir)


def test_quality_precision_section_compares_auto_with_fp32(digits_cache):
    out = run_script("quality.py", "--skip", "points", "--skip", "fashion", "--precision-data", "digits",
                     "--precision-steps", "3", "--n", "200")
    table = out["precision"]
    assert table["data"] == "digits" and table["steps"] == 3
    assert table["fp32"]["resolved"] == "fp32" and table["auto"]["resolved"] in ("bf16", "fp32", "fp16")
    assert table["fd_ratio_auto_to_fp32"] == round(table["auto"]["fd"] / table["fp32"]["fd"], 3)


def load_benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), ROOT / "benchmarks" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fashion_comparison_judges_the_mean_ratio_over_seeds():
    """Training the Fashion-MNIST pairs takes 20 CPU-minutes a seed; how the seeds are summed up is checked here."""
    quality = load_benchmark("quality.py")

    def pair(seed, ratio):
        return {"seed": seed, "protocol": {"n_fake": 10}, "ganforge": {}, "classic": {}, "fd_ratio": ratio}

    out = quality.summarise_fashion([pair(0, 0.25), pair(1, 0.33)])
    assert out["seeds"] == [0, 1] and out["fd_ratio_mean"] == 0.29 and out["fd_ratio_worst"] == 0.33
    assert out["target_met_by_mean"] is True and all("protocol" not in r for r in out["runs"])
    assert quality.summarise_fashion([pair(0, 0.25), pair(1, 0.36)])["target_met_by_mean"] is False


def test_gpu_benchmark_summarises_a_bench_report():
    """benchmarks/gpu.py needs a GPU to run; what it reads from each `ganforge bench` report is checked here."""
    from ganforge import TrainConfig
    from ganforge.bench.measure import bench

    gpu = load_benchmark("gpu.py")
    config = TrainConfig(data="digits", resolution=8, width=8, latent_dim=8, batch=16, precision="fp32", steps=1,
                         device="cpu")
    report = bench(config, steps=2, warmup=1, chunk=1, profile=True)
    row = gpu.summary(report)
    assert row["speedup"] == report["speedup"] and row["cuda_graph"] is False
    assert row["ganforge_ms_per_step"] == report["ganforge"]["ms_per_step"] and row["batch"] == 16
    assert row["eager_profile"]["top_ops"] and row["eager_profile"]["device_busy_share"] is None  # a CPU has no kernels
    failed = {"error": "CUDA out of memory", "args": ["bench"]}
    assert gpu.summary(failed) is failed
