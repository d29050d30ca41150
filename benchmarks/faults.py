"""Faults injected into ganforge and bad input given to it: what happened and the message the user saw.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/faults.py [--json] [--root /tmp/ganforge-faults]

Each process-level fault (SIGKILL, SIGINT, SIGTERM, a kill in the middle of a checkpoint write) runs a
real `ganforge train` subprocess on a tiny digits config; the bad-input cases call the CLI in this
process. Prints a markdown table (fault | what happened | message), or one JSON list with --json.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TINY = ["--resolution", "8", "--width", "16", "--latent-dim", "8", "--batch", "32", "--sample-every", "1000", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------- helpers
def cli(argv: list, cwd: Path) -> tuple[int, str]:
    """The CLI in this process: (exit code, last stderr/log line). Any exception is reported as a traceback."""
    from ganforge.cli.main import main

    err = io.StringIO()
    handler = logging.StreamHandler(err)
    logging.getLogger().addHandler(handler)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as e:
                code = e.code
            except BaseException as e:  # noqa: BLE001 - reported, not hidden
                return -1, f"TRACEBACK {e!r}"
    finally:
        os.chdir(old)
        logging.getLogger().removeHandler(handler)
    lines = [line for line in err.getvalue().splitlines() if line.strip() and not line.startswith(("training ", "step "))]
    return code, (lines[-1] if lines else "")


def start(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ganforge", "train", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_at(child: subprocess.Popen, step: int, sig: int) -> tuple[int, str]:
    for line in child.stderr:
        if line.startswith(f"step {step}/"):
            child.send_signal(sig)
            break
    rest = child.stderr.read().strip().splitlines()
    child.wait()
    return child.returncode, (rest[-1] if rest else "")


def same_weights(a: Path, b: Path) -> bool:
    import torch

    from ganforge.checkpoint import load_checkpoint

    ta, ma = load_checkpoint(a / "checkpoints")
    tb, mb = load_checkpoint(b / "checkpoints")
    return ma["step"] == mb["step"] and sorted(ta) == sorted(tb) and all(torch.equal(ta[k], tb[k]) for k in ta)


# ---------------------------------------------------------------------------- process-level faults
def process_faults(root: Path) -> list[dict]:
    rows = []
    args = ["--steps", "30", "--log-every", "1", "--checkpoint-every", "5", *TINY]
    start([*args, "--out", "full"], root).wait()
    # SIGKILL, resume
    child = start([*args, "--out", "killed"], root)
    code, _ = signal_at(child, 12, signal.SIGKILL)
    resumed = start(["--resume", "killed", "--quiet"], root)
    resumed.wait()
    rows.append({"fault": "SIGKILL at step 12 of 30, then `--resume`",
                 "happened": f"exit {code}; resumed from step 10, exit {resumed.returncode}; final weights, moments "
                             f"and RNGs bit-identical to an uninterrupted run: {same_weights(root / 'full', root / 'killed')}",
                 "message": "(none: killed)"})
    for sig, step in ((signal.SIGINT, 7), (signal.SIGTERM, 18)):
        name = signal.Signals(sig).name
        child = start([*args, "--out", name], root)
        code, message = signal_at(child, step, sig)
        resumed = start(["--resume", name, "--quiet"], root)
        resumed.wait()
        rows.append({"fault": f"{name} at step {step}, then `--resume`",
                     "happened": f"checkpoint saved, exit {code}; resumed, exit {resumed.returncode}; bit-identical: "
                                 f"{same_weights(root / 'full', root / name)}",
                     "message": message})
    # SIGKILL while a checkpoint is being written
    script = textwrap.dedent("""
        import os, signal, sys, torch
        from pathlib import Path
        import ganforge.checkpoint as ck
        d = Path(sys.argv[1])
        ck.save_checkpoint(d, 1, {"w": torch.ones(1000)}, {})
        real = ck.atomic_write
        def dying(path, write):
            def half(f):
                f.write(b"x" * 500); f.flush(); os.kill(os.getpid(), signal.SIGKILL)
            return real(path, half)
        ck.atomic_write = dying
        ck.save_checkpoint(d, 2, {"w": torch.full((1000,), 2.0)}, {})
    """)
    r = subprocess.run([sys.executable, "-c", script, str(root / "ck")], env=ENV, capture_output=True)
    from ganforge.checkpoint import load_checkpoint

    tensors, meta = load_checkpoint(root / "ck")
    rows.append({"fault": "SIGKILL in the middle of writing a checkpoint",
                 "happened": f"exit {r.returncode}; newest complete checkpoint is step {meta['step']}, intact: "
                             f"{bool((tensors['w'] == 1).all())}; the half-written temp file is ignored (and removed "
                             f"on resume)",
                 "message": "(none: killed)"})
    return rows


# ---------------------------------------------------------------------------- in-process faults and bad input
def input_faults(root: Path) -> list[dict]:
    from PIL import Image

    import ganforge.checkpoint as ck

    rows = []

    def case(fault, argv, happened=None):
        code, message = cli(argv, root)
        rows.append({"fault": fault, "happened": happened or f"exit {code}", "message": message})
        return code

    one = ["--steps", "1", *TINY]
    # divergence
    case("NaN: --lr 1e30 (default --on-divergence stop)",
         ["train", "--steps", "30", "--lr", "1e30", "--log-every", "5", "--checkpoint-every", "5", *TINY, "--out", "nan"])
    case("NaN: --lr 1e30 --on-divergence rollback --max-rollbacks 2",
         ["train", "--steps", "30", "--lr", "1e30", "--log-every", "5", "--checkpoint-every", "5", *TINY,
          "--on-divergence", "rollback", "--max-rollbacks", "2", "--out", "nan-rb"])
    # full disk
    real = ck.atomic_write

    def enospc(path, write):
        if "step-00000004" not in path.name:
            return real(path, write)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    ck.atomic_write = enospc
    try:
        code, message = cli(["train", "--steps", "6", "--checkpoint-every", "2", *TINY, "--out", "full-disk"], root)
    finally:
        ck.atomic_write = real
    steps = ck.list_checkpoints(root / "full-disk" / "checkpoints")
    rows.append({"fault": "disk full (ENOSPC) while writing the step-4 checkpoint",
                 "happened": f"exit {code}; checkpoints left: {steps} (the previous one intact)", "message": message})
    # a checkpoint that does not fit the model
    cli(["train", *one, "--out", "small"], root)
    cfg = (root / "small" / "config.yaml").read_text().replace("width: 16", "width: 32")
    (root / "small" / "config.yaml").write_text(cfg)
    case("checkpoint loaded into a model of another width", ["sample", "small"])

    # pickles
    marker = root / "PWNED"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (root / "evil.pt").write_bytes(pickle.dumps(Payload()))
    cli(["train", *one, "--out", "ok"], root)
    for argv in (["sample", "evil.pt"], ["train", "--resume", "evil.pt"], ["eval", "ok", "--features", "evil.pt"]):
        case(f"malicious pickle: `ganforge {' '.join(argv)}`", argv)
    rows[-1]["happened"] += f"; payload ran: {marker.exists()}"
    # bad data
    (root / "empty").mkdir()
    case("empty image folder", ["train", "--data", "empty", *one, "--out", "r-empty"])
    bad = root / "bad-files"
    bad.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 60, 0, 0)).save(bad / f"ok{i}.png")
    raw = (bad / "ok0.png").read_bytes()
    (bad / "zero.png").write_bytes(b"")
    (bad / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (bad / "corrupt.jpg").write_bytes(raw[:16] + os.urandom(64))
    (bad / "text.webp").write_text("not an image")
    case("3 good + zero-byte, truncated, corrupt, non-image files", ["train", "--data", bad, *one, "--out", "r-bad"])
    for p in bad.glob("ok*.png"):
        p.unlink()
    case("only unreadable files", ["train", "--data", bad, *one, "--out", "r-allbad"])
    mixed = root / "mixed"
    mixed.mkdir()
    for mode, size, name in (("RGB", (40, 30), "a.png"), ("RGBA", (20, 50), "b.png"), ("L", (16, 16), "c.jpg"),
                             ("P", (33, 33), "d.png"), ("CMYK", (20, 20), "e.jpg"), ("I;16", (20, 20), "f.png"),
                             ("1", (9, 9), "g.bmp"), ("LA", (20, 20), "h.webp")):
        Image.new(mode, size).save(mixed / name)
    code = case("8 images of mixed sizes and modes (RGB, RGBA, L, P, CMYK, I;16, 1, LA)",
                ["train", "--data", mixed, *one, "--out", "r-mixed"])
    rows[-1]["happened"] = f"exit {code}; all converted to 3x8x8"
    (root / "nothing").mkdir()
    for fault, argv in [
        ("unknown dataset", ["train", "--data", "cifar-1000", *one]),
        ("unknown model", ["train", "--model", "resnet9000", *one]),
        ("unknown loss", ["train", "--loss", "vanilla", *one]),
        ("--batch 0", ["train", *one, "--batch", "0"]),
        ("--lr -1", ["train", *one, "--lr", "-1"]),
        ("--lr nan", ["train", *one, "--lr", "nan"]),
        ("--resolution 30 (unsupported)", ["train", "--steps", "1", "--resolution", "30"]),
        ("--resolution 4096", ["train", "--steps", "1", "--resolution", "4096"]),
        ("--latent-dim 100000000 (out of memory)", ["train", *one, "--latent-dim", "100000000", "--out", "r-oom"]),
        ("existing run directory", ["train", *one, "--out", "small"]),
        ("--resume a folder that is not a run", ["train", "--resume", "nothing"]),
        ("changing --lr on --resume", ["train", "--resume", "small", "--lr", "0.1"]),
        ("missing IDX files (--data mnist --data-dir EMPTY)", ["train", "--data", "mnist", "--data-dir", "empty", *one]),
        ("unwritable output directory (a file as parent)", ["train", *one, "--out", "evil.pt/run"]),
        ("unknown device", ["sample", "small", "--device", "tpu"]),
        ("argparse: --steps many", ["train", "--steps", "many"]),
    ]:
        case(fault, argv)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    parser.add_argument("--root", default=None, help="work folder (default: a temporary one, deleted after)")
    args = parser.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="ganforge-faults-"))
    if root.exists() and args.root:
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    os.environ.pop("GANFORGE_DATA", None)
    import ganforge.plots

    ganforge.plots.plot_curves = lambda rows, path: None  # not under test; matplotlib would dominate the time
    try:
        rows = process_faults(root) + input_faults(root)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| fault | what happened | message |\n|---|---|---|")
    for r in rows:
        cells = [str(r[k]).replace("|", "\\|").replace(str(root) + "/", "") for k in ("fault", "happened", "message")]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
