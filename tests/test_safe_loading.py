"""No ganforge loader or command ever unpickles: a malicious payload is refused and never runs."""

import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from ganforge import Trainer
from ganforge.cli.main import main

MARKER = "PWNED-by-pickle"


class Payload:
    """Unpickling this creates a marker file: proof that the payload ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    payload = Payload(folder.parent / MARKER)
    files = []
    for suffix in (".pt", ".pth", ".pkl"):
        files.append(folder / f"model{suffix}")
        files[-1].write_bytes(pickle.dumps({"G": payload}))
    torch.save({"G": payload}, folder / "torch-format.pt")  # the zip format torch.load reads
    files.append(folder / "torch-format.pt")
    return files


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("safe")
    run = Trainer(tiny_config(root, steps=2, checkpoint_every=2)).fit()
    return run.dir


def ganforge(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_pickles_are_refused_by_every_command(tmp_path, capsys):
    for evil in evil_files(tmp_path / "evil"):
        for argv in (["sample", str(evil), "--out", str(tmp_path / "s.png")], ["eval", str(evil)],
                     ["train", "--resume", str(evil)], ["train", "--config", str(evil)]):
            code, err = ganforge(argv, capsys)
            assert code == 2 and "pickle" in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / MARKER).exists()


def test_pickle_in_a_run_directory_is_never_loaded(tmp_path, trained, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ck = run / "checkpoints"
    newest = sorted(ck.glob("step-*.json"))[-1]
    meta = json.loads(newest.read_text())
    # 1. the weights file replaced by a pickle under the safetensors name
    weights = ck / meta["weights"]
    weights.write_bytes(pickle.dumps(Payload(tmp_path / MARKER)))
    meta["weights_bytes"] = weights.stat().st_size
    newest.write_text(json.dumps(meta))
    for argv in (["sample", str(run), "--out", str(tmp_path / "s.png")], ["eval", str(run), "--n", "10"],
                 ["train", "--resume", str(run), "--steps", "4", "--quiet"]):
        code, err = ganforge(argv, capsys)
        assert code == 2 and "cannot read the weights" in err, (argv, err)
    # 2. the JSON pointing at a pickle file
    evil = evil_files(ck)[0]
    newest.write_text(json.dumps({**meta, "weights": evil.name, "weights_bytes": evil.stat().st_size}))
    code, err = ganforge(["sample", str(run), "--out", str(tmp_path / "s.png")], capsys)
    assert code == 2 and "not a .safetensors file" in err
    # 3. only pickles left in the checkpoints folder
    for p in ck.glob("step-*"):
        p.unlink()
    code, err = ganforge(["sample", str(run), "--out", str(tmp_path / "s.png")], capsys)
    assert code == 2 and "no complete checkpoint" in err
    assert not (tmp_path / MARKER).exists()


def test_eval_refuses_pickled_feature_extractor(tmp_path, trained, capsys):
    evil = evil_files(tmp_path / "evil")[0]
    code, err = ganforge(["eval", str(trained), "--features", str(evil)], capsys)
    assert code == 2 and "pickle" in err
    assert not (tmp_path / MARKER).exists()


def test_loading_into_another_shape_names_the_mismatch(tmp_path, trained, capsys):
    import shutil
    import yaml

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "width": 16}))
    code, err = ganforge(["sample", str(run), "--out", str(tmp_path / "s.png")], capsys)
    assert code == 2 and re.search(r"does not fit the G model: \S+ is \(.*\) in the checkpoint but \(.*\) in the model", err)


def test_the_source_never_unpickles():
    src = Path(__file__).resolve().parents[1] / "src" / "ganforge"
    risky = re.compile(r"torch\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*True|import dill|joblib\.load")
    hits = [f"{p}:{i}" for p in src.rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if risky.search(line)]
    assert not hits, hits
