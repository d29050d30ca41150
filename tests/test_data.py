import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import load_dataset
from ganforge.data.batches import InMemoryBatches
from ganforge.data.dataset import to_float, to_uint8
from ganforge.data.toy2d import mixture_modes
from ganforge.errors import DataError


def test_digits_is_offline_and_labelled():
    ds = load_dataset("digits")
    assert ds.data.shape == (1797, 1, 8, 8) and ds.data.dtype == torch.uint8
    assert ds.data.max() == 255 and ds.labels.unique().tolist() == list(range(10))
    assert load_dataset("digits", resolution=16).data.shape == (1797, 1, 16, 16)


@pytest.mark.parametrize("name,modes,std,radius", [("ring8", 8, 0.01, 1.0), ("grid25", 25, 0.05, None)])
def test_mixtures_follow_pacgan(name, modes, std, radius):
    ds = load_dataset(name)
    centres = mixture_modes(name)
    assert centres.shape == (modes, 2) and ds.mode_std == std
    if radius:
        assert torch.allclose(centres.norm(dim=1), torch.full((modes,), radius))
    else:
        assert sorted(set(centres[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    d = torch.cdist(ds.data[:5000], centres).min(dim=1).values
    assert (d < 3 * std * 1.25).float().mean() > 0.98  # nearly all within ~3 std of a mode
    counts = torch.cdist(ds.data, centres).argmin(1).bincount(minlength=modes).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.1  # modes equally likely


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_from_data_dir(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 9]))
    ds = load_dataset("mnist", data_dir=str(tmp_path))
    assert torch.equal(ds.data[:, 0], torch.from_numpy(images.astype(np.uint8)))
    assert ds.labels.tolist() == [0, 1, 2, 3, 9]


def test_idx_from_environment(tmp_path, monkeypatch):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2]))
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path))
    assert len(load_dataset("mnist", split="test")) == 2


def test_missing_idx_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir") as e:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert "\n" not in str(e.value)


def test_truncated_idx_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    raw = gzip.open(tmp_path / "train-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[:-100])
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3))
    with pytest.raises(DataError, match="truncated"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))


def test_image_folder_labels_modes_and_bad_files(tmp_path, caplog):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (40, 30), colour).save(tmp_path / cls / "a.png")
        Image.new("L", (20, 20), 128).save(tmp_path / cls / "b.jpg")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "dogs" / "empty.jpg").write_bytes(b"")
    ds = load_dataset(str(tmp_path), resolution=16)
    assert ds.data.shape == (4, 3, 16, 16) and ds.data.dtype == torch.uint8
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.data[0, :, 8, 8].tolist() == [255, 0, 0]  # RGB kept
    assert ds.data[1, :, 8, 8].tolist() == [128, 128, 128]  # grey converted to RGB
    assert "skipped 2 of 6" in caplog.text


def test_grayscale_folder_stays_one_channel(tmp_path):
    for i in range(3):
        Image.new("L", (32, 32), i * 50).save(tmp_path / f"{i}.png")
    ds = load_dataset(str(tmp_path), resolution=8)
    assert ds.data.shape == (3, 1, 8, 8) and ds.labels is None


def test_empty_and_unreadable_folders(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_dataset(str(tmp_path))
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could be read"):
        load_dataset(str(tmp_path))


def test_unknown_dataset_lists_choices():
    with pytest.raises(DataError, match="fashion-mnist"):
        load_dataset("cifar-1000")


def test_float_uint8_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    f = to_float(x)
    assert f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8(f), x)


def test_batches_cover_each_epoch_once_and_resume_exactly():
    data = torch.arange(10, dtype=torch.float32).view(10, 1).expand(10, 2).contiguous()
    b = InMemoryBatches(data, 3, seed=5)
    epoch0 = torch.cat([b.next()[:, 0] for _ in range(3)])
    assert len(set(epoch0.tolist())) == 9  # 3 batches of 3, no repeats, last partial batch dropped
    b.next()
    state = b.state_dict()
    rest = [b.next() for _ in range(5)]
    c = InMemoryBatches(data, 3, seed=5)
    c.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(rest, [c.next() for _ in range(5)]))
    assert b.epoch == 2
