"""A real training process killed (SIGKILL) or stopped (SIGINT, SIGTERM) at random steps and resumed
ends bit-identical to one that was never interrupted: weights, optimiser moments, RNGs, data order."""

import json
import os
import random
import signal
import subprocess
import sys

import torch

from ganforge.checkpoint import load_checkpoint

STEPS = 40
ARGS = ["--steps", str(STEPS), "--resolution", "8", "--width", "16", "--latent-dim", "8", "--batch", "32",
        "--log-every", "1", "--checkpoint-every", "4", "--sample-every", "1000", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "ganforge", "train", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_at(child, step, sig):
    """Wait until the child logs `step`, then send `sig`. Returns (exit code, stderr)."""
    lines = []
    for line in child.stderr:
        lines.append(line)
        if line.startswith(f"step {step}/"):
            child.send_signal(sig)
            break
    rest = child.stderr.read()
    child.wait(timeout=120)
    return child.returncode, "".join(lines) + rest


def final_state(run_dir):
    tensors, meta = load_checkpoint(run_dir / "checkpoints")
    for volatile in ("time", "weights"):
        meta.pop(volatile, None)
    return tensors, meta


def test_killed_and_resumed_runs_are_bit_identical(tmp_path):
    full = start(*ARGS, "--out", "full", cwd=tmp_path)
    assert full.wait(timeout=300) == 0, full.stderr.read()

    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    plan = [(rng.randint(5, 12), signal.SIGKILL), (rng.randint(14, 22), signal.SIGINT),
            (rng.randint(24, 32), signal.SIGTERM)]
    print("interruptions:", plan)
    child = start(*ARGS, "--out", "part", cwd=tmp_path)
    for step, sig in plan:
        code, err = interrupt_at(child, step, sig)
        assert "Traceback" not in err, err
        if code == 0:  # it finished before the signal landed (a loaded machine): nothing left to resume
            break
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert code == 128 + sig, err
            message = err.strip().splitlines()[-1]
            assert f"stopped by {signal.Signals(sig).name} at step" in message
            assert "continue with: ganforge train --resume part" in message
            stopped = int(message.split(" at step ")[1].split(";")[0])
            assert stopped >= step and (tmp_path / f"part/checkpoints/step-{stopped:08d}.json").is_file()
        child = start("--resume", "part", "--quiet", cwd=tmp_path)
    else:
        assert child.wait(timeout=300) == 0, child.stderr.read()

    a, meta_a = final_state(tmp_path / "full")
    b, meta_b = final_state(tmp_path / "part")
    assert meta_a["step"] == meta_b["step"] == STEPS
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name  # bit-identical weights, moments and RNG states
    assert meta_a == meta_b  # optimiser hyper-parameters, data position, numpy / python RNGs, counters
    rows = [json.loads(line) for line in (tmp_path / "part/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # no step logged twice after a kill
    full_rows = [json.loads(line) for line in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    assert [r["loss_d"] for r in rows] == [r["loss_d"] for r in full_rows]
