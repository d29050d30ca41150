"""NaN / Inf in losses or weights: stop with a message naming the step and the last good checkpoint,
or roll back to it with lower learning rates, a bounded number of times."""

import math

import pytest
import torch

from conftest import tiny_config
from ganforge import Trainer
from ganforge.checkpoint import list_checkpoints, load_checkpoint
from ganforge.cli.main import main
from ganforge.errors import TrainingStopped
from ganforge.train.callbacks import Callback


class Poison(Callback):
    """Writes NaN into one of G's weights when training reaches `step`, the first `times` times it does."""

    def __init__(self, step, times=1):
        self.step, self.times = step, times

    def on_step(self, trainer):
        if trainer.step == self.step and self.times > 0:
            self.times -= 1
            with torch.no_grad():
                first = next(trainer.G.parameters())  # may be channels_last: index, don't view
                first[(0,) * first.dim()] = float("nan")


def test_nan_weights_stop_with_step_and_last_good_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, steps=9)  # log every 2, checkpoint every 3
    with pytest.raises(TrainingStopped) as e:
        Trainer(cfg, callbacks=[Poison(5)]).fit()
    msg = str(e.value)
    assert "diverged at step 6" in msg and "weights hold NaN" in msg
    assert "step-00000003.json" in msg and "--on-divergence rollback" in msg and "\n" not in msg
    assert list_checkpoints(tmp_path / "run" / "checkpoints") == [3]  # nothing written from bad weights
    tensors, _ = load_checkpoint(tmp_path / "run" / "checkpoints")
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())


def test_inf_loss_is_caught_at_the_log_interval(tmp_path, monkeypatch):
    from ganforge.losses import NonSaturating

    real_d_loss, calls = NonSaturating.d_loss, []

    def exploding(self, real_logits, fake_logits):
        calls.append(1)
        loss = real_d_loss(self, real_logits, fake_logits)
        return loss * float("inf") if len(calls) == 4 else loss

    monkeypatch.setattr(NonSaturating, "d_loss", exploding)
    with pytest.raises(TrainingStopped, match=r"diverged at step 4 \(loss_d is (inf|nan)"):
        Trainer(tiny_config(tmp_path, steps=9)).fit()


def test_rollback_reloads_and_halves_the_learning_rate(tmp_path, caplog):
    cfg = tiny_config(tmp_path, steps=9, on_divergence="rollback", lr=2e-4)
    run = Trainer(cfg, callbacks=[Poison(5)]).fit()
    assert "rolled back to step 3 with learning rates x0.5 (rollback 1 of 3)" in caplog.text
    assert all(torch.isfinite(p).all() for p in run.G.parameters())
    tensors, meta = load_checkpoint(run.dir / "checkpoints")
    assert meta["step"] == 9 and meta["divergence"] == {"rollbacks": 1, "lr_scale": 0.5}
    assert meta["optimizers"]["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    # a resumed run keeps the lowered rate and the count
    trainer = Trainer(cfg.replace(steps=10), resume=True)
    trainer.fit()
    assert trainer.guard.rollbacks == 1 and trainer.opt_d.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_rollback_before_the_first_checkpoint_and_its_limit(tmp_path):
    cfg = tiny_config(tmp_path, steps=9, on_divergence="rollback", max_rollbacks=2, checkpoint_every=100)
    with pytest.raises(TrainingStopped) as e:
        Trainer(cfg, callbacks=[Poison(1, times=3)]).fit()  # diverges three times
    msg = str(e.value)
    assert "diverged at step 2" in msg and "rolled back 2 time(s)" in msg and "step-00000000.json" in msg


def test_cli_huge_learning_rate_stops_cleanly(tmp_path, capsys):
    code = main(["train", "--steps", "20", "--resolution", "8", "--width", "8", "--latent-dim", "8", "--batch", "16",
                 "--lr", "1e30", "--log-every", "5", "--checkpoint-every", "5", "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "diverged at step" in err and "Traceback" not in err, err
    step = int(err.split("diverged at step ")[1].split()[0])
    assert step % 5 == 0 and math.isfinite(step)


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, caplog):
    cfg = tiny_config(tmp_path, steps=4)
    full = Trainer(cfg).fit()
    for p in (full.dir / "checkpoints").iterdir():  # as if killed before the first save
        p.unlink()
    again = Trainer(cfg, resume=True).fit()
    assert "no checkpoint yet: starting it again from step 0" in caplog.text
    assert [r.count('"step"') for r in (again.dir / "metrics.jsonl").read_text().splitlines()] == [1, 1]
    assert all(torch.equal(a, b) for a, b in zip(full.G.state_dict().values(), again.G.state_dict().values()))
