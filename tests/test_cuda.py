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
