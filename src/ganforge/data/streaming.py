"""Images read from disk while training, for datasets larger than memory.

Three kinds of source, all opened as an `ImageStream` that holds only an index (compact numpy
arrays, so forked DataLoader workers share it instead of copying it):
- a folder of images (recursive; sub-folder names become class labels, as in memory);
- tar shards, webdataset-style: `data.tar`, `shards/train-{000000..000127}.tar` or `shards/*.tar`;
  files sharing a key (`dir/0001.png`, `dir/0001.cls`) form a sample, the label comes from the
  `.cls` file (a class number) or else from the directory name. Uncompressed tars are read by seeking
  straight to each member, so samples come in any order without unpacking;
- a zip file (labels from directory names inside it).

`StreamingBatches` feeds the trainer exactly like `InMemoryBatches` (next(), epochs_done,
state_dict / load_state_dict) and in the same order: the same per-epoch permutation of the samples,
the same slice per rank. DataLoader workers open, decode, crop and resize the images (the same
`decode` as in memory), the batch arrives as uint8 (pinned when training on CUDA) and becomes float
on the device. The index grows with the dataset, the decoded images never do: memory stays flat.

In-memory stays the default; a source is streamed with `--stream`, or automatically when its decoded
size would exceed a quarter of the machine's memory (shared by the processes of one machine).
"""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import os
import re
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from ganforge.data.batches import epoch_order, shard
from ganforge.data.dataset import Dataset, to_float
from ganforge.data.folder import EXTENSIONS, decode
from ganforge.data.names import is_archive_spec
from ganforge.errors import ConfigError, DataError

log = logging.getLogger("ganforge")
DEFAULT_RESOLUTION = 64


# ---------------------------------------------------------------------- naming sources
def expand_shards(spec: str) -> list[Path]:
    """`a-{000..003}.tar` -> a-000.tar ... a-003.tar (zero padding kept), `{x,y}` lists, then glob wildcards."""
    m = re.search(r"\{([^{}]*)\}", spec)
    if m:
        body = m.group(1)
        rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
        items = ([str(i).zfill(len(rng.group(1))) for i in range(int(rng.group(1)), int(rng.group(2)) + 1)]
                 if rng else body.split(","))
        return [p for item in items for p in expand_shards(spec[:m.start()] + item + spec[m.end():])]
    if any(c in spec for c in "*?["):
        return [Path(p) for p in sorted(glob.glob(os.path.expanduser(spec)))]
    return [Path(spec).expanduser()]


# ---------------------------------------------------------------------- the index
class ImageStream(torch.utils.data.Dataset):
    """Index of an on-disk image dataset; item i is (uint8 image (C, R, R), label or -1), decoded on demand."""

    def __init__(self, name: str, kind: str, resolution: int, locations: dict[str, np.ndarray],
                 labels: np.ndarray | None, classes: list[str] | None, source: str):
        self.name, self.kind, self.resolution, self.source = name, kind, resolution, source
        self.locations = locations  # per kind: folder {path}; zip {member}; tar {shard, offset, size} (+ shards)
        self._labels, self.classes = labels, classes
        self._handles: dict = {}
        self._pid = None
        self.channels = self._probe_channels()

    # Dataset-like metadata (what the trainer and callbacks read)
    def __len__(self) -> int:
        return len(self.locations["key"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    @property
    def is_image(self) -> bool:
        return True

    @property
    def labels(self) -> torch.Tensor | None:
        return torch.from_numpy(self._labels) if self._labels is not None else None

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    @property
    def info(self) -> dict:
        return {"source": self.source, "streamed": True}

    @property
    def decoded_bytes(self) -> int:
        """What the whole dataset would take in memory as uint8."""
        return len(self) * self.channels * self.resolution ** 2

    # reading one sample (runs in DataLoader workers)
    def _read(self, i: int):
        if self._pid != os.getpid():  # file handles are per process: never share one across a fork
            self._handles, self._pid = {}, os.getpid()
        key = self.locations["key"][i]
        if self.kind == "folder":  # file-system bytes, joined without decoding
            return os.path.join(os.fsencode(self.source), key)
        key = key.decode("utf-8", "surrogateescape")
        if self.kind == "zip":
            if "zip" not in self._handles:
                self._handles["zip"] = zipfile.ZipFile(self.source)
            return io.BytesIO(self._handles["zip"].read(key))
        shard_id = int(self.locations["shard"][i])
        f = self._handles.get(shard_id)
        if f is None:
            if len(self._handles) >= 64:  # many shards: keep a bounded number open
                self._handles.pop(next(iter(self._handles))).close()
            f = self._handles[shard_id] = open(self.locations["shards"][shard_id], "rb")
        f.seek(int(self.locations["offset"][i]))
        return io.BytesIO(f.read(int(self.locations["size"][i])))

    def _decode(self, i: int) -> np.ndarray | None:
        try:
            return decode(self._read(i), self.resolution)
        except (OSError, KeyError, zipfile.BadZipFile):
            return None

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        for attempt in range(16):  # an unreadable file is replaced by its next readable neighbour
            j = (i + attempt) % len(self)
            a = self._decode(j)
            if a is not None:
                break
        else:
            raise DataError(f"16 files in a row from index {i} of {self.source} cannot be read as images: check the data")
        if attempt:
            log.warning("%s: item %d unreadable, used item %d instead", self.source, i, j)
        if self.channels == 3 and a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        elif self.channels == 1 and a.ndim == 3:
            a = a.mean(axis=2).round().astype(np.uint8)
        image = torch.from_numpy(np.array(a))  # a writable copy of PIL's read-only buffer
        image = image.permute(2, 0, 1) if image.dim() == 3 else image.unsqueeze(0)
        return image.contiguous(), int(self._labels[j]) if self._labels is not None else -1

    def _probe_channels(self) -> int:
        """RGB if any of up to 16 evenly spread images is colour (the whole set is never decoded up front)."""
        picks = np.linspace(0, len(self) - 1, num=min(16, len(self))).astype(int)
        arrays = [a for a in (self._decode(int(i)) for i in picks) if a is not None]
        if not arrays:
            raise DataError(f"the images in {self.source} cannot be read: check that they are valid image files")
        return 3 if any(a.ndim == 3 for a in arrays) else 1

    def __getstate__(self):
        return {**self.__dict__, "_handles": {}, "_pid": None}

    def to_dataset(self, workers: int = 0) -> Dataset:
        """Decode everything into memory (for sources that fit), through the same workers as streaming."""
        loader = torch.utils.data.DataLoader(self, batch_size=256, num_workers=workers, generator=torch.Generator())
        data = torch.cat([images for images, _ in loader])
        return Dataset(self.name, data, self.labels, self.classes, info={"source": self.source})


def open_source(spec: str, resolution: int | None = None) -> ImageStream:
    """Index a folder, tar shards or a zip file (nothing is decoded but a few probes)."""
    resolution = resolution or DEFAULT_RESOLUTION
    path = Path(spec).expanduser()
    if path.is_dir():
        return _make(path.name or str(path), "folder", resolution, _list_folder(path), {}, None, str(path))
    if spec.endswith(".zip"):
        if not path.is_file():
            raise DataError(f"zip file {spec} does not exist: pass the path of a .zip of images")
        try:
            with zipfile.ZipFile(path) as zf:
                keys = sorted(n for n in zf.namelist() if Path(n).suffix.lower() in EXTENSIONS and not n.endswith("/"))
        except zipfile.BadZipFile:
            raise DataError(f"{spec} is not a valid zip file: re-create it (zip -r data.zip folder/)") from None
        return _make(path.stem, "zip", resolution, keys, {}, None, str(path))
    if re.search(r"\.tar\.(gz|bz2|xz|zst)$|\.tgz$", spec):
        raise DataError(f"{spec} is a compressed tar, which cannot be read in random order: "
                        f"decompress it to a plain .tar (or shards of .tar) first")
    shards = expand_shards(spec)
    missing = [str(s) for s in shards if not s.is_file()]
    if not shards or missing:
        raise DataError(f"tar shard(s) {', '.join(missing[:3]) or spec} not found: pass an existing .tar, "
                        f"a brace range like shards/train-{{000..009}}.tar, or a glob like 'shards/*.tar'")
    return _index_tars(spec, shards, resolution)


def _list_folder(root: Path) -> np.ndarray:
    """Image paths under root as relative file-system bytes, in the in-memory loader's order (sorted by
    path components). os.walk over bytes: no stat, no Path and no decoded string per file, so indexing
    200,000 files stays within a few tens of MB."""
    keys, nested, base = [], False, os.fsencode(root)
    suffixes = tuple(e.encode() for e in EXTENSIONS)
    for folder, _, files in os.walk(base):
        rel = os.path.relpath(folder, base)
        prefix = b"" if rel == b"." else rel.replace(os.sep.encode(), b"/") + b"/"
        nested = nested or bool(prefix)
        keys += [prefix + f for f in files if os.path.splitext(f)[1].lower() in suffixes]
    keys.sort(key=(lambda k: k.replace(b"/", b"\0")) if nested else None)  # NUL first: component order
    return np.array(keys, dtype=np.bytes_)


def _index_tars(spec: str, shards: list[Path], resolution: int) -> ImageStream:
    """Every shard's index joined into flat arrays (a few bytes per image, no Python object per image
    kept). Labels come from .cls files when every image has one."""
    indexes = [_shard_index(path) for path in shards]
    names = np.concatenate([ix["names"] for ix in indexes])
    extra = {"shard": np.repeat(np.arange(len(shards), dtype=np.int32), [len(ix["names"]) for ix in indexes]),
             "offset": np.concatenate([ix["offsets"] for ix in indexes]),
             "size": np.concatenate([ix["sizes"] for ix in indexes]), "shards": [str(s) for s in shards]}
    labels, classes = None, None
    if len(names) and all(len(ix["cls_keys"]) for ix in indexes):
        labels = np.empty(len(names), dtype=np.int64)
        start = 0
        for ix in indexes:
            cls = dict(zip(ix["cls_keys"].tolist(), ix["cls_values"].tolist()))
            found = [cls.get(_sample_key(n)) for n in ix["names"].tolist()]
            if None in found:  # some image has no .cls: no labels at all (directory names may still give some)
                labels = None
                break
            labels[start:start + len(found)] = found
            start += len(found)
        if labels is not None:
            classes = [str(i) for i in range(int(labels.max()) + 1)]
    name = Path(shards[0]).name.split("-")[0].split(".")[0] if len(shards) > 1 else Path(shards[0]).stem
    return _make(name, "tar", resolution, names, extra, labels, spec, classes)


def _sample_key(member_name: bytes) -> bytes:
    """webdataset's grouping: files in one directory that share the part of the name before the first dot."""
    folder, _, base = member_name.rpartition(b"/")
    return folder + b"/" + base.partition(b".")[0]


def _shard_index(path: Path) -> dict[str, np.ndarray]:
    """Where each image of a tar shard starts and how long it is, and the shard's .cls labels.

    Reading every header of a big shard takes a while (about 80 s for 200,000 images), so the index is
    cached as a plain .npz (no pickle) under $GANFORGE_CACHE/tar-index, keyed by the shard's path, size
    and modification time: a changed shard is indexed again."""
    from ganforge.cache import cache_dir

    stat = path.stat()
    tag = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cached = cache_dir() / "tar-index" / f"{hashlib.sha1(tag.encode()).hexdigest()}.npz"
    try:
        with np.load(cached, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        pass  # not cached yet, or unreadable: index the shard
    names, offsets, sizes, cls_keys, cls_values = [], [], [], [], []
    try:
        with tarfile.open(path, "r:") as tf:
            while (member := tf.next()) is not None:
                tf.members = []  # do not keep every TarInfo: the index is the arrays below
                if not member.isfile():
                    continue
                name = member.name.encode("utf-8", "surrogateescape")
                ext = member.name.rpartition("/")[2].partition(".")[2].lower()
                if ext == "cls":
                    cls_keys.append(_sample_key(name))
                    cls_values.append(int(tf.extractfile(member).read().decode().strip()))
                elif "." + ext.rpartition(".")[2] in EXTENSIONS:
                    names.append(name)
                    offsets.append(member.offset_data)
                    sizes.append(member.size)
    except (tarfile.TarError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read tar shard {path} ({e}): check the file or re-create it") from None
    index = {"names": np.array(names, dtype=np.bytes_), "offsets": np.array(offsets, dtype=np.int64),
             "sizes": np.array(sizes, dtype=np.int64), "cls_keys": np.array(cls_keys, dtype=np.bytes_),
             "cls_values": np.array(cls_values, dtype=np.int64)}
    try:  # written whole or not at all; a cache that cannot be written only costs the next run the scan
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **index)
        os.replace(tmp, cached)
    except OSError:
        pass
    return index


def _labels_from_directories(keys) -> tuple[np.ndarray | None, list[str] | None]:
    """Top-level directory names as classes (as for folders in memory), when every file sits in one and
    there are at least two; one pass, no per-file list kept."""
    if len(keys) == 0 or not all((b"/" if isinstance(k, bytes) else "/") in k for k in keys):
        return None, None
    codes, seen = np.empty(len(keys), dtype=np.int64), {}
    for i, k in enumerate(keys):
        first = k.split(b"/" if isinstance(k, bytes) else "/", 1)[0]
        codes[i] = seen.setdefault(first, len(seen))
    if len(seen) < 2:
        return None, None
    names = {(n.decode(errors="replace") if isinstance(n, bytes) else n): code for n, code in seen.items()}
    classes = sorted(names)
    remap = np.empty(len(classes), dtype=np.int64)
    for new, name in enumerate(classes):
        remap[names[name]] = new
    return remap[codes], classes


def _make(name, kind, resolution, keys, extra, labels, source, classes=None) -> ImageStream:
    if len(keys) == 0:
        raise DataError(f"no images (.png, .jpg, .jpeg, .webp, .bmp) found in {source}: point --data at a source that holds some")
    if labels is None:
        labels, classes = _labels_from_directories(keys)
    if not isinstance(keys, np.ndarray):  # fixed-width bytes: one buffer, no object per file
        keys = np.array([k.encode() for k in keys], dtype=np.bytes_)
    locations = {"key": keys, **extra}
    return ImageStream(name, kind, resolution, locations, labels, classes, source)


# ---------------------------------------------------------------------- choosing a path
def memory_budget() -> int:
    """A quarter of physical memory, shared by the processes torchrun starts on this machine."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return total // 4 // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def open_training_data(name: str, *, data_dir: str | None, resolution: int | None, stream: bool):
    """The dataset the trainer uses: in memory when it fits (the default), an `ImageStream` with
    --stream or when the decoded images would exceed `memory_budget()`."""
    from ganforge.data import load_dataset

    on_disk = is_archive_spec(name) or Path(name).expanduser().is_dir()
    if not on_disk:
        if stream:
            raise ConfigError(f"--stream reads image folders, .tar shards and .zip files; '{name}' is held in "
                              f"memory: drop --stream")
        return load_dataset(name, data_dir=data_dir, resolution=resolution)
    source = open_source(name, resolution)
    if not stream and source.decoded_bytes > memory_budget():
        log.info("%s: %d images would take %.1f GB in memory, more than the budget of %.1f GB: streaming them "
                 "from disk", name, len(source), source.decoded_bytes / 1e9, memory_budget() / 1e9)
        stream = True
    if stream:
        return source
    if source.kind == "folder":
        return load_dataset(name, resolution=resolution)  # the in-memory folder path (skips unreadable files)
    return source.to_dataset(default_workers())


# ---------------------------------------------------------------------- batches
class _GlobalBatchSampler:
    """Index lists of this rank's slice of each global batch, epoch after epoch, from a start position."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int):
        self.n, self.batch_size, self.seed, self.rank, self.world_size = n, batch_size, seed, rank, world_size
        self.per_epoch = n // batch_size
        self.start = (0, 0)

    def __iter__(self):
        epoch, index = self.start
        while True:
            order = epoch_order(self.seed, epoch, self.n)
            for i in range(index, self.per_epoch):
                yield shard(order[i * self.batch_size:(i + 1) * self.batch_size], self.rank, self.world_size).tolist()
            epoch, index = epoch + 1, 0


class StreamingBatches:
    """The `InMemoryBatches` interface over an `ImageStream`, decoded by `workers` DataLoader processes."""

    def __init__(self, source: ImageStream, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 rank: int = 0, world_size: int = 1, workers: int = 2, with_labels: bool = False):
        self.device = torch.device(device)
        self.with_labels = with_labels
        batch_size = min(batch_size, len(source) - len(source) % world_size)
        self.batch_size, self.seed = batch_size, seed
        self.sampler = _GlobalBatchSampler(len(source), batch_size, seed, rank, world_size)
        self.per_epoch = self.sampler.per_epoch
        self.loader = torch.utils.data.DataLoader(
            source, batch_sampler=self.sampler, num_workers=workers, pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(seed))  # its own RNG: the training noise stays untouched
        self.epoch, self.index = 0, 0
        self.labels = None  # labels of the last batch (on the device); None without with_labels or labels
        self._iterator = None

    def next(self) -> torch.Tensor:
        """The next batch as float in [-1, 1] on the device."""
        if self._iterator is None:
            self.sampler.start = (self.epoch, self.index)
            self._iterator = iter(self.loader)
        images, labels = next(self._iterator)
        self.index += 1
        if self.index == self.per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        self.labels = labels.to(self.device, non_blocking=True) if self.with_labels and labels[0] >= 0 else None
        return to_float(images.to(self.device, non_blocking=True))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
        self._iterator = None  # restart the workers' queue from the restored position

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.index / self.per_epoch


def default_workers() -> int:
    """DataLoader workers per training process: the machine's cores shared among its processes, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


# ---------------------------------------------------------------------- throughput
def streaming_throughput(data: str, resolution: int = 32, batch: int = 64, workers: int | None = None,
                         batches: int = 200, device: str = "cpu") -> dict:
    """Images per second the streaming pipeline delivers (index, decode, resize, collate, to device),
    without any training: the ceiling streaming puts on training speed. For `ganforge bench`."""
    workers = default_workers() if workers is None else workers
    t0 = time.perf_counter()
    source = open_source(data, resolution)
    indexed = time.perf_counter()
    feed = StreamingBatches(source, batch, seed=0, device=device, workers=workers)
    feed.next()  # workers start and fill their queues
    started = time.perf_counter()
    for _ in range(batches):
        x = feed.next()
    if x.is_cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    del feed
    return {"images": len(source), "resolution": resolution, "batch": batch, "workers": workers,
            "index_s": round(indexed - t0, 2), "first_batch_s": round(started - indexed, 2),
            "img_per_s": round(batches * batch / elapsed, 1)}


__all__ = ["ImageStream", "StreamingBatches", "open_source", "open_training_data", "streaming_throughput",
           "expand_shards"]
