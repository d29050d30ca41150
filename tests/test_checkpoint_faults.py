"""Checkpoints under faults: a process killed while writing, the best checkpoint kept by pruning."""

import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from ganforge.checkpoint import best_step, clean_partial, list_checkpoints, load_checkpoint, mark_best, save_checkpoint
from ganforge.errors import CheckpointError

# A child that saves step 1, then is SIGKILLed in the middle of writing step 2's weights or JSON file.
KILL_MID_WRITE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import torch
    import ganforge.checkpoint as ck

    directory, target = Path(sys.argv[1]), sys.argv[2]
    ck.save_checkpoint(directory, 1, {"w": torch.full((10000,), 1.0)}, {"note": 1}, keep=1)
    real = ck.atomic_write

    def dying_write(path, write):
        if not path.name.endswith(target):
            return real(path, write)
        def half_then_die(f):
            f.write(b"x" * 1000)  # part of the file is on disk...
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # ...when the process dies
        return real(path, half_then_die)

    ck.atomic_write = dying_write
    ck.save_checkpoint(directory, 2, {"w": torch.full((10000,), 2.0)}, {"note": 2}, keep=1)
    print("not killed")
""")

# A child that writes checkpoints forever (the value of every weight is the step), killed from outside.
WRITE_FOREVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    from ganforge.checkpoint import save_checkpoint

    directory, step = Path(sys.argv[1]), 0
    print("ready", flush=True)
    while True:
        step += 1
        save_checkpoint(directory, step, {"w": torch.full((500_000,), float(step))}, {"note": step}, keep=2)
""")


def run_child(code, *args):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("target", [".safetensors", ".json"])
def test_sigkill_while_writing_leaves_previous_checkpoint(tmp_path, target):
    r = run_child(KILL_MID_WRITE, tmp_path, target)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert "not killed" not in r.stdout
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the half-written file is really there
    tensors, meta = load_checkpoint(tmp_path)
    assert meta["step"] == 1 and meta["note"] == 1 and torch.equal(tensors["w"], torch.full((10000,), 1.0))
    removed = clean_partial(tmp_path)
    assert removed and sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001.json", "step-00000001.safetensors"]


def test_sigkill_at_random_moments_never_corrupts(tmp_path):
    rng = random.Random(0)
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        child = subprocess.Popen([sys.executable, "-c", WRITE_FOREVER, str(folder)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if not list_checkpoints(folder):
            continue  # killed before the first checkpoint finished: nothing to check
        tensors, meta = load_checkpoint(folder)
        assert torch.equal(tensors["w"], torch.full((500_000,), float(meta["step"])))


def test_best_checkpoint_survives_pruning(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": torch.zeros(1)}, {}, keep=2)
    save_checkpoint(tmp_path, 2, {"w": torch.zeros(1)}, {}, keep=2)
    mark_best(tmp_path, 2, "fd", 12.5)
    for step in (3, 4, 5):
        save_checkpoint(tmp_path, step, {"w": torch.zeros(1)}, {}, keep=2)
    assert list_checkpoints(tmp_path) == [2, 4, 5] and best_step(tmp_path) == 2
    mark_best(tmp_path, 5, "fd", 10.0)
    save_checkpoint(tmp_path, 6, {"w": torch.zeros(1)}, {}, keep=2)
    assert list_checkpoints(tmp_path) == [5, 6]  # the old best is an ordinary checkpoint again
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        mark_best(tmp_path, 3, "fd", 1.0)
