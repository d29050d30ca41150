"""On a GPU only (skipped without one; CI has none): the step replayed as a CUDA graph trains exactly
like the step launched op by op, and a graphed run resumed from its checkpoint ends bit-identical to
one that was never interrupted. fp32 and deterministic cuDNN kernels, so "exactly" means equal bits."""

import pytest
import torch

from conftest import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def deterministic():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = True, False, False, False
    yield
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


def gpu_config(path, **overrides):
    return tiny_config(path, **{"device": "cuda", "precision": "fp32", "steps": 12, "sample_every": 1000,
                                "checkpoint_every": 6, "augment": "none", **overrides})


def weights(trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in [*trainer.G.parameters(), *trainer.D.parameters()]])


def test_graphed_steps_train_exactly_like_op_by_op_steps(tmp_path, deterministic):
    from ganforge import Trainer

    trained, recorded = {}, {}
    for mode in ("off", "on"):
        trainer = Trainer(gpu_config(tmp_path / mode, cuda_graphs=mode))
        trainer.fit()
        trained[mode], recorded[mode] = weights(trainer), bool(trainer.gan_step.graph and trainer.gan_step.graph.recorded)
    assert recorded == {"off": False, "on": True}
    assert torch.equal(trained["off"], trained["on"])


def test_a_graphed_run_resumes_exactly(tmp_path, deterministic):
    from ganforge import Trainer

    full = Trainer(gpu_config(tmp_path / "full", cuda_graphs="on"))
    full.fit()
    Trainer(gpu_config(tmp_path / "part", cuda_graphs="on", steps=6)).fit()
    resumed = Trainer(gpu_config(tmp_path / "part", cuda_graphs="on"), resume=True)
    resumed.fit()
    assert resumed.gan_step.graph.recorded
    assert torch.equal(weights(full), weights(resumed))


def test_a_streamed_run_records_its_step_while_the_loader_pins_memory(tmp_path):
    """The DataLoader's pin-memory thread keeps working while the main thread records the step."""
    import numpy as np
    from PIL import Image

    from ganforge import Trainer

    rng = np.random.default_rng(0)
    for i in range(40):
        (tmp_path / "images").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(12, 12), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
    trainer = Trainer(gpu_config(tmp_path / "run", data=str(tmp_path / "images"), stream=True, workers=1,
                                 cuda_graphs="on", steps=8))
    trainer.fit()
    assert trainer.gan_step.graph.recorded


def test_a_step_that_cannot_be_recorded_is_one_clear_error():
    """In a process of its own: a failed recording leaves PyTorch's CUDA random generator unusable."""
    import subprocess
    import sys

    script = """
import torch
from ganforge.errors import ConfigError
from ganforge.train.graphs import StepGraph
def step(real_batches, labels):  # .item() waits for the GPU, which a recording cannot do
    return real_batches[0] * real_batches[0].sum().item()
graphed, x = StepGraph(step, warmup=1), torch.ones(4, device="cuda")
graphed([x], [None])
try:
    graphed([x], [None])
except ConfigError as e:
    print(e)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("train with --cuda-graphs off"), done.stdout
