"""Streaming from disk (folders, tar shards, zip) gives the batches the in-memory path gives."""

import io
import os
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from ganforge import ConfigError, Trainer
from ganforge.data import load_dataset
from ganforge.data.batches import InMemoryBatches
from ganforge.data.streaming import StreamingBatches, expand_shards, open_source, open_training_data
from ganforge.errors import DataError

N = 30


def png(i: int, rgb: bool) -> bytes:
    rng = np.random.default_rng(i)
    a = rng.integers(0, 256, size=(12, 12, 3) if rgb else (12, 12), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same 30 images (two classes) as a folder, two tar shards with .cls labels, and a zip."""
    root = tmp_path_factory.mktemp("stream")
    folder = root / "folder"
    items = [(f"{'cat' if i % 3 else 'dog'}/{i:04d}", png(i, rgb=i != 5)) for i in range(N)]
    for name, blob in items:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(blob)
    for shard in range(2):
        with tarfile.open(root / f"train-{shard:03d}.tar", "w") as tf:
            for name, blob in items[shard::2]:
                for suffix, data in ((".png", blob), (".cls", str(int(name.startswith("dog"))).encode())):
                    info = tarfile.TarInfo(name + suffix)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(root / "data.zip", "w") as zf:
        for name, blob in items:
            zf.writestr(f"{name}.png", blob)
    return root


def test_streamed_folder_gives_the_in_memory_batches_on_every_rank(sources):
    memory = load_dataset(str(sources / "folder"), resolution=8)
    stream = open_source(str(sources / "folder"), 8)
    assert stream.shape == memory.shape == (3, 8, 8) and len(stream) == N
    assert stream.classes == memory.classes and torch.equal(stream.labels, memory.labels)
    for rank in range(2):
        expected = InMemoryBatches(memory.data, 8, seed=1, rank=rank, world_size=2)
        streamed = StreamingBatches(stream, 8, seed=1, rank=rank, world_size=2, workers=2)
        for _ in range(9):  # past two epoch boundaries (3 batches per epoch)
            assert torch.equal(streamed.next(), expected.next())
        assert streamed.epochs_done == pytest.approx(expected.epochs_done % 3 + 3 * (expected.epochs_done // 3))


def test_resume_restarts_the_stream_at_the_saved_position(sources):
    stream = open_source(str(sources / "folder"), 8)
    a = StreamingBatches(stream, 4, seed=0, workers=1)
    for _ in range(5):
        a.next()
    state = a.state_dict()
    continued = [a.next() for _ in range(4)]
    b = StreamingBatches(stream, 4, seed=0, workers=0)
    b.load_state_dict(state)
    assert all(torch.equal(x, b.next()) for x in continued)


def test_tar_shards_and_zip_hold_the_same_images_and_labels(sources):
    folder = open_source(str(sources / "folder"), 8)
    by_key = {k.decode().removesuffix(".png"): folder[i] for i, k in enumerate(folder.locations["key"])}
    tar = open_source(str(sources / "train-{000..001}.tar"), 8)
    zipped = open_source(str(sources / "data.zip"), 8)
    assert len(tar) == len(zipped) == N
    assert tar.classes == ["0", "1"] and zipped.classes == ["cat", "dog"]
    for stream in (tar, zipped):
        for i, key in enumerate(stream.locations["key"]):
            image, label = stream[i]
            expected_image, folder_label = by_key[key.decode().removesuffix(".png")]
            assert torch.equal(image, expected_image)
            assert label == folder_label  # cat=0/dog=1 in both schemes
    assert len(open_source(str(sources / "train-*.tar"), 8)) == N
    # not streaming: a tar or zip is decoded into memory
    memory = load_dataset(str(sources / "data.zip"), resolution=8)
    assert memory.data.shape == (N, 3, 8, 8) and memory.labels is not None


def test_brace_expansion():
    assert [p.name for p in expand_shards("s/a-{008..011}.tar")] == ["a-008.tar", "a-009.tar", "a-010.tar", "a-011.tar"]
    assert [p.name for p in expand_shards("{x,y}-{1..2}.tar")] == ["x-1.tar", "x-2.tar", "y-1.tar", "y-2.tar"]


def test_streamed_training_equals_in_memory_training(sources, tmp_path):
    settings = dict(data=str(sources / "folder"), batch=8, steps=4, log_every=2)
    memory = Trainer(tiny_config(tmp_path / "memory", **settings)).fit()
    streamed = Trainer(tiny_config(tmp_path / "stream", stream=True, workers=1, **settings)).fit()
    for name, value in memory.G.state_dict().items():
        assert torch.equal(value, streamed.G.state_dict()[name]), name


def test_streaming_mistakes_are_named(sources, tmp_path):
    with pytest.raises(ConfigError, match="drop --stream"):
        open_training_data("digits", data_dir=None, resolution=8, stream=True)
    (tmp_path / "x.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match="decompress"):
        open_source(str(tmp_path / "x.tar.gz"))
    with pytest.raises(DataError, match="not found"):
        open_source(str(sources / "train-{000..004}.tar"))
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        open_source(str(tmp_path / "bad.zip"))


def test_streamed_labels_come_only_for_conditional_runs(sources, tmp_path):
    stream = open_source(str(sources / "folder"), 8)
    memory = load_dataset(str(sources / "folder"), resolution=8)
    streamed = StreamingBatches(stream, 8, seed=1, workers=0, with_labels=True)
    expected = InMemoryBatches(memory.data, 8, seed=1, labels=memory.labels)
    for _ in range(4):
        streamed.next(), expected.next()
        assert streamed.labels is not None and torch.equal(streamed.labels, expected.labels)
    plain = StreamingBatches(stream, 8, seed=1, workers=0)
    plain.next()
    assert plain.labels is None
    run = Trainer(tiny_config(tmp_path, data=str(sources / "folder"), stream=True, workers=0, conditional=True,
                              batch=8, steps=2)).fit()
    assert run.classes == stream.classes and run.sample(2, labels=1).shape == (2, 3, 8, 8)


def test_tar_index_is_cached_and_redone_when_a_shard_changes(sources, tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    spec = str(sources / "train-{000..001}.tar")
    first = open_source(spec, 8)
    assert len(list((tmp_path / "cache" / "tar-index").glob("*.npz"))) == 2  # one per shard

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached shard was read again")

    monkeypatch.setattr("ganforge.data.streaming.tarfile.open", no_reading)
    again = open_source(spec, 8)
    assert len(again) == len(first) and again.classes == first.classes
    for key in ("key", "shard", "offset", "size"):
        assert np.array_equal(again.locations[key], first.locations[key]), key
    assert np.array_equal(again.labels, first.labels)
    assert torch.equal(again[3][0], first[3][0])

    # a shard that changed on disk (here: a new modification time) is indexed again
    shard = sources / "train-001.tar"
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="read again"):
        open_source(spec, 8)
