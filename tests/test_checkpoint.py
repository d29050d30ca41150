import os
import pickle

import pytest
import torch

from ganforge.checkpoint import (flatten_optimizer, list_checkpoints, load_checkpoint, load_module, load_optimizer,
                                 save_checkpoint)
from ganforge.errors import CheckpointError


def test_round_trip_and_keep_last(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"w": torch.full((3,), float(step))}, {"note": step}, keep=2)
    assert list_checkpoints(tmp_path) == [3, 4]
    tensors, meta = load_checkpoint(tmp_path)
    assert meta["step"] == 4 and meta["note"] == 4 and tensors["w"].tolist() == [4.0] * 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_half_written_checkpoint_is_ignored(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": torch.ones(2)}, {})
    (tmp_path / "step-00000002.safetensors").write_bytes(b"partial")  # crash before its JSON was written
    assert load_checkpoint(tmp_path)[1]["step"] == 1


def test_truncated_weights_are_detected(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": torch.ones(100)}, {})
    path = tmp_path / "step-00000001.safetensors"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl"])
def test_pickle_is_refused_and_never_executed(tmp_path, suffix, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / f"model{suffix}"
    evil.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()


def test_shape_mismatch_names_the_tensor(tmp_path):
    small, big = torch.nn.Linear(3, 2), torch.nn.Linear(4, 2)
    save_checkpoint(tmp_path, 1, {f"G.{k}": v for k, v in small.state_dict().items()}, {})
    tensors, _ = load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"weight is \(2, 3\).*\(2, 4\)"):
        load_module("G", big, tensors)


def test_optimizer_state_round_trip():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, meta = flatten_optimizer("opt", opt)
    other = torch.optim.Adam(model.parameters(), lr=0.5)
    load_optimizer("opt", other, tensors, meta)
    assert other.param_groups[0]["lr"] == 0.1
    for a, b in zip(opt.state.values(), other.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
