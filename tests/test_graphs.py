"""CUDA graph replay of the step (train/graphs.py). CI has no GPU, so the recording is replaced by one
that behaves like a CUDA graph on the CPU: recording runs nothing, and a replay runs the recorded
function on the recorded input buffers. What is tested is the logic around it: warm-up, the inputs
copied in at every replay, the output kept from being overwritten, a failed recording, the reset, and
which settings allow graphs at all."""

import pytest
import torch

from ganforge import TrainConfig
from ganforge.errors import ConfigError
from ganforge.losses import get_loss
from ganforge.train import graphs, speed
from ganforge.train.step import STATS

from test_speed import make_step

CPU = torch.device("cpu")


class HostRecorder:
    """A CUDA graph's semantics on the CPU."""

    def __init__(self):
        self.recordings = 0

    def warm(self, fn):
        return fn()

    def record(self, fn):
        self.recordings += 1
        out = torch.full((len(STATS),), float("nan"))
        return (lambda: out.copy_(fn())), out


def batches(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [[torch.rand(16, 1, 8, 8, generator=g) * 2 - 1] for _ in range(n)]


def test_replayed_steps_train_exactly_like_eager_steps():
    """Each replay must read that step's batch: replaying the recorded batch again would train on it
    over and over and end with other weights."""
    eager, graphed = make_step(), make_step()
    recorder = HostRecorder()
    step = graphs.StepGraph(speed.FastStep(graphed, device=CPU).eager, warmup=2, recorder=recorder)
    for i, real in enumerate(batches(8, seed=3)):
        torch.manual_seed(i)
        a = eager(real)
        torch.manual_seed(i)
        b = step(real, [None])
        torch.testing.assert_close(a, b)
    assert recorder.recordings == 1 and step.recorded
    for p, q in zip([*eager.G.parameters(), *eager.D.parameters()], [*graphed.G.parameters(), *graphed.D.parameters()]):
        torch.testing.assert_close(p, q)


def test_a_returned_statistic_is_not_overwritten_by_the_next_replay():
    step = graphs.StepGraph(make_step(), warmup=0, recorder=HostRecorder())
    first = step(batches(1, seed=0)[0], [None])
    kept = first.clone()
    step(batches(1, seed=1)[0], [None])
    assert torch.equal(first, kept)


def test_other_shapes_run_eagerly_and_reset_records_again():
    recorder = HostRecorder()
    step = graphs.StepGraph(make_step(), warmup=1, recorder=recorder)
    for real in batches(3, seed=0):
        step(real, [None])
    assert recorder.recordings == 1
    stats = step([torch.rand(8, 1, 8, 8) * 2 - 1], [None])  # half a batch: not what was recorded
    assert torch.isfinite(stats).all() and recorder.recordings == 1
    step.reset()
    assert not step.recorded
    for real in batches(2, seed=1):
        step(real, [None])
    assert recorder.recordings == 2


def test_settings_that_block_graphs_are_named():
    cuda = torch.device("cuda")
    plain = TrainConfig(precision="bf16")
    assert graphs.blockers(plain, cuda, get_loss("nonsaturating"), distributed=False) == []
    assert graphs.blockers(plain, cuda, get_loss("hinge"), distributed=False) == []
    cases = [(plain, CPU, get_loss("nonsaturating"), False, "GPU"),
             (plain, cuda, get_loss("nonsaturating"), True, "torchrun"),
             (TrainConfig(precision="fp16"), cuda, get_loss("nonsaturating"), False, "fp16"),
             (TrainConfig(lr_decay=0.5), cuda, get_loss("nonsaturating"), False, "--lr-decay"),
             (TrainConfig(augment="translation"), cuda, get_loss("nonsaturating"), False, "--augment"),
             (plain, cuda, get_loss("nonsaturating", r1=1.0, r1_every=16), False, "penalty"),
             (plain, cuda, get_loss("wgan-gp"), False, "penalty")]
    for config, device, loss, distributed, word in cases:
        reasons = graphs.blockers(config, device, loss, distributed)
        assert len(reasons) == 1 and word in reasons[0], (word, reasons)


def test_cuda_graphs_on_without_a_gpu_is_one_clear_error(tmp_path):
    from ganforge import Trainer
    from conftest import tiny_config

    with pytest.raises(ConfigError, match="--cuda-graphs on cannot be used here: CUDA graphs need a GPU"):
        Trainer(tiny_config(tmp_path / "r", steps=1, cuda_graphs="on", device="cpu", augment="none")).fit()
    with pytest.raises(ConfigError, match="unknown cuda graphs 'yes'"):
        TrainConfig(cuda_graphs="yes").validate()
    run = Trainer(tiny_config(tmp_path / "auto", steps=2, device="cpu")).fit()  # auto: no graphs on a CPU, no error
    assert run.config.cuda_graphs == "auto"


def test_capturable_optimizers_only_when_graphs_are_used():
    assert speed.optimizer_kwargs("adam", CPU) == {"fused": True}
    assert speed.optimizer_kwargs("adam", torch.device("cuda"), capturable=True) == {"fused": True, "capturable": True}
    assert speed.optimizer_kwargs("rmsprop", torch.device("cuda"), capturable=True) == {"foreach": True, "capturable": True}


def test_a_step_that_cannot_be_recorded_stops_with_one_line_naming_the_fix():
    """A failed recording leaves PyTorch's CUDA random generator broken for the whole process, so the
    step must not go on op by op (every later noise draw would raise a cryptic error)."""
    class Refusing(HostRecorder):
        def record(self, fn):
            self.recordings += 1
            raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    eager, graphed = make_step(), make_step()
    recorder = Refusing()
    step = graphs.StepGraph(graphed, warmup=2, recorder=recorder)
    data = batches(3, seed=5)
    for i, real in enumerate(data[:2]):  # the warm-up steps train op by op, like the eager step
        torch.manual_seed(i)
        a = eager(real)
        torch.manual_seed(i)
        torch.testing.assert_close(a, step(real, [None]))
    with pytest.raises(ConfigError, match=r"could not be recorded as a CUDA graph \(operation not permitted "
                                          r"when stream is capturing\): train with --cuda-graphs off$"):
        step(data[2], [None])
    assert recorder.recordings == 1 and not step.recorded
