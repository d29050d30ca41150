"""Property-based: whatever flags and whatever files a user throws at `ganforge`, no Python traceback
reaches them. Every run ends with exit 0, or 2 and a one-line message (argparse's own errors included)."""

import os
import string
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ganforge.cli.main import main
from ganforge.config import TrainConfig

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

junk = st.one_of(st.text(string.ascii_letters + string.digits + "-_.,:+ ", max_size=10),
                 st.sampled_from(["", "-", "--", "1e309", "-inf", "nan", "0x10", "1_000", "½", "None", "true"]))
small_int = st.integers(-4, 3).map(str)
number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10**12, 10**12).map(str))


@pytest.fixture(autouse=True)
def _no_curve_plots(monkeypatch):
    """The loss-curve figure takes most of a one-step run (matplotlib); it is not what is fuzzed here."""
    import ganforge.plots

    monkeypatch.setattr(ganforge.plots, "plot_curves", lambda rows, path: None)


def choices(*valid):
    return st.one_of(st.sampled_from(valid), junk)


# Values per flag: anything goes, but sizes stay small enough that a valid combination trains in a second.
VALUES = {
    "resolution": st.one_of(st.sampled_from(["8", "10", "7", "30", "0", "-8", "4096"]), junk),
    "latent_dim": st.one_of(st.integers(-2, 12).map(str), junk),
    "width": st.one_of(st.integers(-2, 12).map(str), junk),
    "batch": st.one_of(st.integers(-2, 16).map(str), junk),
    "steps": small_int, "d_steps": small_int, "g_steps": small_int, "log_every": small_int,
    "sample_every": small_int, "checkpoint_every": small_int, "keep_checkpoints": small_int,
    "max_rollbacks": small_int, "workers": st.one_of(st.sampled_from(["-1", "0"]), junk),
    "epochs": st.one_of(st.floats(-1, 0.005).map(repr), junk),
    "lr": st.one_of(number, junk), "lr_d": st.one_of(number, junk),
    "seed": st.one_of(st.integers(-2**70, 2**70).map(str), junk),
    "data": choices("digits", "grid25", "ring8", "mnist", "fashion-mnist", "FOLDER"),
    "data_dir": choices("EMPTY", "FOLDER"),
    "model": choices("mlp", "dcgan", "custom"), "loss": choices("minimax", "nonsaturating", "wgan", "wgan-gp", "hinge",
                                                                 "lsgan", "ragan"),
    "optimizer": choices("adam", "rmsprop"), "d_norm": choices("batch", "layer", "none"),
    "precision": choices("fp32", "bf16", "fp16"), "device": choices("auto", "cpu", "cuda", "cuda:0", "meta"),
    "on_divergence": choices("stop", "rollback"),
}
FIELDS = {f.name: f for f in fields(TrainConfig) if f.name != "out"}


def flag_values(name):
    if FIELDS[name].type in ("bool", bool):
        return st.just([])
    strategy = VALUES.get(name, st.one_of(small_int, junk, st.floats(-1, 1).map(repr)))  # settings added later
    if FIELDS[name].metadata.get("nargs") == 2:
        return st.lists(strategy, min_size=1, max_size=3)
    return strategy.map(lambda v: [v])


@st.composite
def train_flags(draw):
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=6, unique=True))
    flags = []
    for name in names:
        flags += ["--" + name.replace("_", "-"), *draw(flag_values(name))]
    return flags


def run_cli(argv):
    """The CLI in-process; anything but a clean exit code is a traceback the user would have seen."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code
    except BaseException as e:  # noqa: BLE001 - the property under test
        raise AssertionError(f"traceback for {argv}: {e!r}") from e


def folder_with_images(root: Path, blobs: list[bytes], good: int) -> Path:
    folder = root / "images"
    folder.mkdir()
    for i in range(good):
        Image.new("RGB", (12, 9), (i * 40 % 256, 90, 200)).save(folder / f"good{i}.png")
    for i, blob in enumerate(blobs):
        (folder / f"blob{i}{['.png', '.jpg', '.webp', '.bmp'][i % 4]}").write_bytes(blob)
    return folder


@settings(SETTINGS, max_examples=40)
@given(flags=train_flags())
def test_train_flags_never_traceback(flags):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "EMPTY").mkdir()
        folder = folder_with_images(root, [b"junk"], good=2)
        flags = [{"FOLDER": str(folder), "EMPTY": str(root / "EMPTY")}.get(f, f) for f in flags]
        base = ["train", "--steps", "1", "--width", "8", "--latent-dim", "8", "--resolution", "8", "--batch", "8",
                "--workers", "0", "--quiet", "--out", str(root / "run")]
        code = run_cli(base + flags)
        assert code in (0, 2), (flags, code)


PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"


@settings(SETTINGS, max_examples=15)
@given(blobs=st.lists(st.one_of(st.binary(max_size=300), st.binary(max_size=200).map(lambda b: PNG_MAGIC + b),
                                st.binary(max_size=200).map(lambda b: JPEG_MAGIC + b)), min_size=1, max_size=5),
       good=st.integers(0, 2), stream=st.booleans())
def test_dataset_files_never_traceback(blobs, good, stream):
    with tempfile.TemporaryDirectory() as tmp:
        folder = folder_with_images(Path(tmp), blobs, good)
        argv = ["train", "--data", str(folder), "--steps", "1", "--width", "8", "--latent-dim", "8", "--resolution",
                "8", "--batch", "2", "--workers", "0", "--quiet", "--out", os.path.join(tmp, "run")]
        code = run_cli(argv + (["--stream"] if stream else []))
        assert code == 2 if good == 0 else code == 0, (code, good)


@SETTINGS
@given(command=st.sampled_from(["sample", "eval"]), run=st.one_of(junk, st.sampled_from(["RUN", "RUN/checkpoints"])),
       extra=st.lists(st.sampled_from(["--n", "--seed", "--device", "--out", "--features", "--split", "--interpolate",
                                      "--drop-stretched"])
                      .flatmap(lambda f: st.tuples(st.just(f), st.one_of(small_int, junk))), max_size=3))
def test_sample_and_eval_flags_never_traceback(trained_run, command, run, extra):
    argv = [command, run.replace("RUN", str(trained_run))]
    for flag, value in extra:
        if flag == "--interpolate" and command == "sample":
            argv.append(flag)
        elif flag == "--out":
            argv += [flag, os.path.join(tempfile.gettempdir(), f"ganforge-fuzz-{value}.png")]
        elif flag != "--interpolate":
            argv += [flag, value]
    assert run_cli(argv) in (0, 2), argv
