"""Data-parallel training (torchrun + DDP) gives the run one process gives on the same global batches.

The equivalence run uses the mlp model: it has no BatchNorm, whose batch statistics would be per rank
(SyncBatchNorm, --sync-bn, needs GPUs), so the gradients averaged over ranks are exactly the
gradient of the global batch and the weights agree to float rounding.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganforge import ConfigError, TrainConfig, Trainer
from ganforge.checkpoint import load_checkpoint
from ganforge.data.batches import InMemoryBatches
from ganforge.train.distributed import Distributed, ShardedNoise

SRC = Path(__file__).resolve().parents[1] / "src"
SETTINGS = dict(data="digits", model="mlp", resolution=8, width=32, latent_dim=8, batch=32, log_every=3,
                device="cpu",  # gloo between CPU processes, also on a machine with a GPU
                sample_every=6, checkpoint_every=6, keep_checkpoints=5, quiet=True,
                precision="fp32",  # bf16 rounding differs between a batch of 32 and two of 16
                augment="none")  # DiffAugment draws from a per-rank generator, so ranks augment differently


def torchrun(nproc: int, out: Path, steps: int) -> subprocess.CompletedProcess:
    flags = [f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ganforge", "train", *flags, f"--steps={steps}", f"--out={out}"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def assert_same_state(a: dict, b: dict):
    assert set(a) == set(b)
    for name in a:
        if name.startswith(("G.", "D.", "opt_")):
            assert torch.allclose(a[name].float(), b[name].float(), rtol=1e-4, atol=1e-6), name


def test_two_processes_equal_one_process_and_resume_with_another_world_size(tmp_path):
    two = tmp_path / "two"
    r = torchrun(2, two, steps=6)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("done:") == 1  # rank 0 alone reports
    one = Trainer(TrainConfig(**SETTINGS, steps=12, out=str(tmp_path / "one"))).fit()

    # after 6 steps: the 2-process run (16 images per rank) equals one process on the 32-image batches
    two_state, two_meta = load_checkpoint(two / "checkpoints")
    one_state, _ = load_checkpoint(one.dir / "checkpoints" / "step-00000006.json")
    assert two_meta["step"] == 6
    assert_same_state(two_state, one_state)
    assert torch.equal(two_state["rng.torch"], one_state["rng.torch"])  # the ranks' RNG kept in step
    # rank 0 alone wrote the log; its statistics are the means over both ranks, equal to one process's
    two_rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    one_rows = [json.loads(line) for line in (one.dir / "metrics.jsonl").read_text().splitlines()][:2]
    assert [row["step"] for row in two_rows] == [3, 6]
    for a, b in zip(two_rows, one_rows):
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "d_acc", "epoch"):
            assert a[key] == pytest.approx(b[key], abs=1e-4), key

    # resumed by ONE process to step 12: the same weights as the run that was one process all along
    resumed = Trainer(TrainConfig(**SETTINGS, steps=12, out=str(two)), resume=True).fit()
    assert_same_state(load_checkpoint(resumed.dir / "checkpoints")[0], load_checkpoint(one.dir / "checkpoints")[0])


def test_ranks_draw_disjoint_slices_of_the_same_global_batches():
    data = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1)
    whole = InMemoryBatches(data, 8, seed=3)
    ranks = [InMemoryBatches(data, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(12):  # across epoch boundaries
        expected = whole.next_indices()
        parts = [b.next_indices() for b in ranks]
        assert torch.equal(torch.cat(parts), expected)
        assert not set(parts[0].tolist()) & set(parts[1].tolist())
    assert ranks[0].state_dict() == whole.state_dict()  # positions count global batches


def test_sharded_noise_rows_are_one_process_noise():
    torch.manual_seed(0)
    full = torch.randn(6, 4)
    parts = []
    for rank in range(3):
        torch.manual_seed(0)
        parts.append(ShardedNoise(4, rank, 3)(2, full))
    assert torch.equal(torch.cat(parts), full)


def test_global_batch_must_split_over_processes_and_sync_bn_needs_gpus(tmp_path):
    with pytest.raises(ConfigError, match="multiple of 4"):
        Distributed(rank=0, world_size=4).per_rank_batch(30)
    assert Distributed(rank=1, world_size=4).per_rank_batch(32) == 8
    if not torch.cuda.is_available():
        from ganforge.models import build

        G, D = build("dcgan", (1, 16, 16), latent_dim=8, width=8, d_norm="batch")
        with pytest.raises(ConfigError, match="--sync-bn"):
            Distributed().wrap(G, D, sync_bn=True)
        with pytest.raises(ConfigError, match="--sync-bn"):
            Trainer(TrainConfig(sync_bn=True, out=str(tmp_path / "run"))).fit()
        assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_more_processes_than_gpus_is_one_clear_error(monkeypatch):
    """torchrun --nproc_per_node=2 on a one-GPU machine: rank 1 would ask for cuda:1."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=r"started 2 processes on this machine, which has 1 GPU\(s\): "
                                          r"use --nproc_per_node=1, or train on CPUs with --device cpu"):
        Distributed.from_env(torch.device("cuda"))
