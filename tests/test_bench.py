"""The classic reference loop and the bench's measurements."""

import pytest
import torch

from ganforge.errors import ConfigError


def test_classic_loop_trains_ganforge_dcgan_with_sigmoid_bce():
    from ganforge.bench.classic import ClassicLoop
    from ganforge.data import load_dataset
    from ganforge.models.dcgan import DCGANGenerator

    data = load_dataset("digits", resolution=8).data
    loop = ClassicLoop(data, batch=16, latent_dim=8, width=8, seed=0)
    assert isinstance(loop.D[-1], torch.nn.Sigmoid)
    g0 = [p.detach().clone() for p in loop.G.parameters()]
    d0 = [p.detach().clone() for p in loop.D.parameters()]
    last = loop.step()
    assert 0 < last["d_real"] < 1 and 0 < last["d_fake"] < 1  # probabilities, not logits
    assert all(isinstance(v, float) for v in last.values())
    assert not all(torch.equal(a, b) for a, b in zip(g0, loop.G.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, loop.D.parameters()))
    assert isinstance(loop.G, DCGANGenerator)


def test_classic_loop_walks_through_epochs():
    from ganforge.bench.classic import ClassicLoop
    from ganforge.data import load_dataset

    data = load_dataset("digits", resolution=8).data[:40]
    loop = ClassicLoop(data, batch=16, latent_dim=8, width=8)
    for _ in range(5):  # 2 batches per epoch
        loop.step()
    assert loop.epoch == 2


def test_classic_train_returns_a_generator_like_ganforge():
    from ganforge.bench.classic import classic_train

    G, stats = classic_train("digits", 8, 16, steps=3, latent_dim=8, width=8)
    assert stats.steps == 3 and stats.images == 48 and stats.img_per_s > 0
    assert not G.training
    with torch.no_grad():
        out = G(torch.randn(5, 8))
    assert out.shape == (5, 1, 8, 8) and out.min() >= -1 and out.max() <= 1


def test_classic_train_needs_a_length():
    from ganforge.bench.classic import classic_train

    with pytest.raises(ConfigError):
        classic_train("digits", 8, 16)


def test_bench_reports_both_loops_with_consistent_figures():
    from ganforge import TrainConfig
    from ganforge.bench.measure import bench

    config = TrainConfig(data="digits", resolution=8, width=8, latent_dim=8, batch=16, precision="fp32", steps=1,
                         device="cpu")
    r = bench(config, steps=2, warmup=1, chunk=1, profile=True)
    g, c = r["ganforge"], r["classic"]
    assert g["precision"] == "fp32" and g["channels_last"] and g["optimizer"] == "Adam (fused)"
    for loop in (g, c):
        assert loop["img_per_s"] > 0 and loop["gflop_per_step"] > 0 and loop["peak_memory_mb"] > 0
        # achieved FLOP/s is FLOPs per step times steps per second
        expected = loop["gflop_per_step"] * 1e9 * loop["img_per_s"] / 16 / 1e12
        assert abs(loop["achieved_tflop_per_s"] - expected) <= 1e-3 + 0.05 * expected
    assert r["speedup"] == round(g["img_per_s"] / c["img_per_s"], 2)
    ops = g["profile_eager"]["top_ops"]
    assert ops and all(0 <= op["share"] <= 1 for op in ops) and not g["cuda_graph"]
    # ganforge draws G's fakes twice (once without a graph for D, once for G); classic reuses them but
    # also back-propagates into D's weights in the G phase: the FLOP counts are of one order
    assert 0.5 < g["gflop_per_step"] / c["gflop_per_step"] < 2


def test_bench_on_a_fraction_of_the_data():
    from ganforge import TrainConfig
    from ganforge.bench.measure import bench

    config = TrainConfig(data="digits", resolution=8, width=8, latent_dim=8, batch=16, precision="fp32", steps=1,
                         device="cpu")
    r = bench(config, steps=1, warmup=0, fraction=0.1, classic=False, profile=False)
    assert r["images"] == 179 and "classic" not in r


def test_bench_command_rejects_bad_fraction(capsys):
    from ganforge.cli.main import main

    assert main(["bench", "--fraction", "0"]) == 2
    assert "--fraction" in capsys.readouterr().err


def test_bench_streams_a_folder_and_reports_loading(tmp_path):
    """--stream: the training step reads through DataLoader workers; the report says how fast they deliver."""
    import numpy as np
    from PIL import Image

    from ganforge import TrainConfig
    from ganforge.bench.measure import bench

    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    config = TrainConfig(data=str(tmp_path), resolution=8, width=8, latent_dim=8, batch=8, precision="fp32", steps=1,
                         device="cpu", stream=True, workers=1)
    r = bench(config, steps=2, warmup=1, chunk=1, profile=False)
    assert r["streamed"] and r["images"] == 40 and r["shape"] == [3, 8, 8] and "classic" not in r
    assert r["loading"]["source"] == "StreamingBatches" and r["loading"]["img_per_s"] > 0
    assert r["ganforge"]["img_per_s"] > 0


def test_gpu_peak_is_the_spec_of_the_rate_the_convolutions_run_at(monkeypatch):
    from ganforge.bench import measure

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    cuda = torch.device("cuda")
    assert measure.peak_flops("bf16", cuda) == (989e12, "NVIDIA H200 dense bf16 spec")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert measure.peak_flops("fp32", cuda)[0] == 494e12  # cuDNN runs fp32 convolutions on TF32 tensor cores
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert measure.peak_flops("fp32", cuda)[0] == 67e12
