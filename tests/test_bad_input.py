"""Bad input through the command line: each case ends in one line that names the problem and the fix
(exit 2), or is handled (bad image files skipped and counted, mixed images converted)."""

import errno
import os

import pytest
from PIL import Image

from ganforge import load_run
from ganforge.checkpoint import list_checkpoints, load_checkpoint
from ganforge.cli.main import main

TINY = ["--steps", "1", "--resolution", "8", "--width", "8", "--latent-dim", "8", "--batch", "2", "--quiet"]


def ganforge(argv, capsys):
    """Run the CLI in-process; returns (exit code, stderr lines that are not progress logs)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, [line for line in err.splitlines() if line.strip()]


def one_line_error(argv, capsys, *expected):
    code, lines = ganforge(argv, capsys)
    assert code == 2, lines
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, lines
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    one_line_error(["train", "--data", tmp_path / "empty", "--out", tmp_path / "r", *TINY], capsys,
                   "no images", "point --data at")


def bad_files(folder):
    """Zero-byte, truncated, corrupt and non-image files next to three good ones."""
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 50, 0, 0)).save(folder / f"ok{i}.png")
    raw = (folder / "ok0.png").read_bytes()
    (folder / "zero.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (folder / "corrupt.jpg").write_bytes(raw[:16] + os.urandom(64))
    (folder / "text.webp").write_text("not an image")
    (folder / "notes.txt").write_text("ignored: not an image extension")


def test_bad_files_are_skipped_and_counted_in_one_warning(tmp_path, capsys, caplog):
    bad_files(tmp_path / "data")
    code, lines = ganforge(["train", "--data", tmp_path / "data", "--out", tmp_path / "r", *TINY], capsys)
    assert code == 0
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 4 of 7 files" in warnings[0]
    assert load_run(tmp_path / "r").sample(2).shape == (2, 3, 8, 8)


def test_only_bad_files_is_an_error(tmp_path, capsys):
    bad_files(tmp_path / "data")
    for p in (tmp_path / "data").glob("ok*.png"):
        p.unlink()
    message = one_line_error(["train", "--data", tmp_path / "data", "--out", tmp_path / "r", *TINY], capsys)
    assert "be read" in message and "valid image" in message


def test_mixed_sizes_and_colour_modes_are_converted(tmp_path, capsys, caplog):
    d = tmp_path / "mixed"
    d.mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(d / "rgb.png")
    Image.new("RGBA", (20, 50), (0, 255, 0, 128)).save(d / "rgba.png")
    Image.new("L", (16, 16), 100).save(d / "grey.jpg")
    Image.new("P", (33, 33)).save(d / "palette.png")
    Image.new("CMYK", (20, 20)).save(d / "cmyk.jpg")
    Image.new("I;16", (20, 20)).save(d / "deep.png")
    Image.new("1", (9, 9)).save(d / "bits.bmp")
    Image.new("LA", (20, 20)).save(d / "grey-alpha.webp")
    code, _ = ganforge(["train", "--data", d, "--out", tmp_path / "r", *TINY], capsys)
    assert code == 0 and "skipped" not in caplog.text
    from ganforge.data import load_dataset
    ds = load_dataset(str(d), resolution=8)
    assert ds.data.shape == (8, 3, 8, 8)
    assert load_run(tmp_path / "r").sample(2).shape == (2, 3, 8, 8)


@pytest.mark.parametrize("flag,value,valid", [
    ("--data", "cifar-1000", "digits, ring8, grid25, mnist, fashion-mnist"),
    ("--model", "resnet9000", "mlp, dcgan"),
    ("--loss", "vanilla", "minimax, nonsaturating, wgan, wgan-gp, hinge, lsgan"),
    ("--optimizer", "sgd", "adam, rmsprop"),
    ("--on-divergence", "pray", "stop, rollback"),
])
def test_unknown_names_list_the_valid_ones(tmp_path, capsys, flag, value, valid):
    one_line_error(["train", flag, value, "--out", tmp_path / "r", "--steps", "1"], capsys, f"'{value}'", valid)


@pytest.mark.parametrize("flag,value,expected", [
    ("--batch", "0", "--batch must be greater than 0"),
    ("--batch", "-3", "--batch must be greater than 0"),
    ("--lr", "0", "--lr must be greater than 0"),
    ("--lr", "-0.1", "--lr must be greater than 0"),
    ("--lr", "nan", "--lr must be greater than 0"),
    ("--lr-d", "inf", "--lr-d must be greater than 0"),
    ("--steps", "0", "--steps must be greater than 0"),
    ("--resolution", "30", "pass --resolution with one of 8, 10, 12"),
    ("--resolution", "4096", "pass --resolution with one of"),
    ("--resolution", "-8", "--resolution must be greater than 0"),
    ("--max-rollbacks", "-1", "--max-rollbacks must be a whole number >= 0"),
])
def test_invalid_numbers(tmp_path, capsys, flag, value, expected):
    one_line_error(["train", "--steps", "1", flag, value, "--out", tmp_path / "r", "--quiet"], capsys, expected)


def test_sample_and_eval_reject_bad_values(tmp_path, capsys):
    assert ganforge(["train", "--out", tmp_path / "r", *TINY], capsys)[0] == 0
    one_line_error(["sample", tmp_path / "r", "--n", "0"], capsys, "--n must be greater than 0")
    one_line_error(["sample", tmp_path / "r", "--device", "tpu"], capsys, "unknown device 'tpu'", "cpu")
    one_line_error(["sample", tmp_path / "r", "--out", tmp_path / "x.gif"], capsys, ".png or .npy")
    one_line_error(["eval", tmp_path / "r", "--n", "1"], capsys, "--n must be at least 2")
    one_line_error(["sample", tmp_path / "r", "--drop-stretched", "1"], capsys, "--drop-stretched", "[0, 1)")
    one_line_error(["eval", tmp_path / "r", "--drop-stretched", "-0.5"], capsys, "--drop-stretched", "[0, 1)")
    one_line_error(["sample", tmp_path / "r", "--interpolate", "--drop-stretched", "0.1"], capsys,
                   "does not apply to --interpolate")


def test_existing_run_directory(tmp_path, capsys):
    out = ["--out", tmp_path / "r"]
    assert ganforge(["train", *out, *TINY], capsys)[0] == 0
    one_line_error(["train", *out, *TINY], capsys, "already exists", "--resume", "--overwrite")
    assert ganforge(["train", *out, *TINY, "--overwrite"], capsys)[0] == 0
    assert ganforge(["train", "--resume", tmp_path / "r", "--steps", "2", "--quiet"], capsys)[0] == 0
    assert list_checkpoints(tmp_path / "r" / "checkpoints")[-1] == 2
    one_line_error(["train", "--resume", tmp_path / "r", "--lr", "0.1"], capsys, "cannot change lr when resuming")
    one_line_error(["train", "--resume", tmp_path / "nothing"], capsys, "not a run directory")


def test_missing_idx_files(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    (tmp_path / "empty").mkdir()
    one_line_error(["train", "--data", "mnist", "--data-dir", tmp_path / "empty", "--out", tmp_path / "r", *TINY],
                   capsys, "train-images-idx3-ubyte.gz", "not found in", "--data-dir")


def test_unwritable_output_directory(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    one_line_error(["train", "--out", tmp_path / "a-file" / "run", *TINY], capsys,
                   "cannot write to run directory", "choose a writable --out")
    if os.geteuid() != 0:  # root writes anywhere: the permission case only means something for other users
        (tmp_path / "locked").mkdir(mode=0o500)
        one_line_error(["train", "--out", tmp_path / "locked" / "run", *TINY], capsys, "Permission denied")


def test_full_disk_while_writing_a_checkpoint(tmp_path, capsys, monkeypatch):
    import ganforge.checkpoint as ck

    real, calls = ck.atomic_write, []

    def disk_fills_up(path, write):
        calls.append(path)
        if "step-00000004" not in path.name:
            return real(path, write)

        def partial_then_enospc(f):
            f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, partial_then_enospc)

    monkeypatch.setattr(ck, "atomic_write", disk_fills_up)
    run = tmp_path / "r"
    argv = ["train", "--out", run, *TINY, "--steps", "6", "--checkpoint-every", "2", "--log-every", "2"]
    code, lines = ganforge(argv, capsys)
    assert code == 2
    message = lines[-1]
    assert "No space left on device" in message and "at step 4" in message
    assert "the last complete checkpoint is" in message and "step-00000002.json" in message
    assert f"ganforge train --resume {run}" in message
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == ["step-00000002.json", "step-00000002.safetensors"]  # nothing half-written left
    tensors, meta = load_checkpoint(run / "checkpoints")
    assert meta["step"] == 2 and any(k.startswith("G.") for k in tensors)
    monkeypatch.setattr(ck, "atomic_write", real)  # space freed: the run continues
    assert ganforge(["train", "--resume", run, "--quiet"], capsys)[0] == 0
    assert list_checkpoints(run / "checkpoints")[-1] == 6


def test_full_disk_while_writing_samples(tmp_path, capsys, monkeypatch):
    from ganforge import images

    def no_space(images, path, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(images, "save_grid", no_space)
    code, lines = ganforge(["train", "--out", tmp_path / "r", *TINY, "--steps", "4", "--sample-every", "2"], capsys)
    assert code == 2 and "No space left on device" in lines[-1] and "--resume" in lines[-1]


def test_argparse_errors_stay_short(tmp_path, capsys):
    code, lines = ganforge(["train", "--steps", "many"], capsys)
    assert code == 2 and "invalid int value: 'many'" in lines[-1]
    code, lines = ganforge(["train", "--no-such-flag"], capsys)
    assert code == 2 and "unrecognized arguments" in lines[-1]


def test_under_torchrun_rank_zero_alone_reports_a_bad_setting(tmp_path, capsys, monkeypatch):
    # every rank fails alike on a bad setting: one message, from rank 0, not one per process
    monkeypatch.setenv("RANK", "1")
    code, lines = ganforge(["train", "--batch", "0", "--out", tmp_path / "r"], capsys)
    assert code == 2 and lines == []
    # a data error may be one rank's own: that rank names itself
    (tmp_path / "empty").mkdir()
    code, lines = ganforge(["train", "--data", tmp_path / "empty", "--out", tmp_path / "r", *TINY], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("[rank 1] ganforge train: error: no images"), lines
    monkeypatch.setenv("RANK", "0")
    one_line_error(["train", "--batch", "0", "--out", tmp_path / "r"], capsys, "--batch must be greater than 0")
