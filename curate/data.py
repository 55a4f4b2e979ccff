"""PyTorch datasets over curate's shards: random access and streaming.

`ShardDataset(OUT, split)` is map-style: item i is found through OUT/index.parquet (shard, row
group, row). `ShardIterableDataset(OUT, split)` streams: row groups are divided across
distributed ranks and DataLoader workers, read one at a time, and mixed in a shuffle buffer; call
`set_epoch(e)` so each epoch has its own seeded order. Both decode to uint8 CHW tensors and
return (image, label); `transform` (if given) receives the tensor.
"""
from __future__ import annotations

import io
import os
import random
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from curate.schema import INDEX
from curate.workspace import Workspace


def decode(data: bytes) -> torch.Tensor:
    """Image bytes -> uint8 tensor (3, H, W), EXIF orientation applied, RGB."""
    with Image.open(io.BytesIO(data)) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


def _index(out: str, split: str, roots: tuple[str, ...]) -> Any:
    ws = Workspace(out)
    with ws.fs.open(ws.path("index.parquet"), "rb") as f:
        table = pq.read_table(f, schema=INDEX.with_metadata(None))
    table = table.filter(pc.equal(table["split"], split))
    keep = [any(s.startswith(r + "/") for r in roots) for s in table["shard"].to_pylist()]
    return table.filter(keep)


class ShardDataset(Dataset):
    """Map-style access to one split's samples (training shards; augmented too if asked).

    An item reads its whole row group (Parquet's unit of reading); each instance keeps the last
    `cached_row_groups` of them. A shuffled epoch over many row groups therefore re-reads a row
    group for most items: stream with `ShardIterableDataset` for training, and use this class for
    random access and inspection.
    """

    def __init__(self, out: str, split: str = "train", transform: Callable | None = None,
                 include_augmented: bool = False, cached_row_groups: int = 8) -> None:
        self.out, self.transform, self.cached_row_groups = out, transform, cached_row_groups
        self._cache: OrderedDict[tuple[str, int], Any] = OrderedDict()
        table = _index(out, split, ("shards", "augmented") if include_augmented else ("shards",))
        self.shards = table["shard"].to_pylist()
        self.row_groups = table["row_group"].to_numpy()
        self.rows = table["row"].to_numpy()

    def __len__(self) -> int:
        return len(self.shards)

    def _row_group(self, shard: str, row_group: int) -> Any:
        key = (shard, row_group)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        ws = Workspace(self.out)
        with ws.fs.open(ws.path(shard), "rb") as f:
            table = pq.ParquetFile(f).read_row_group(row_group, columns=["image", "label"])
        self._cache[key] = table
        if len(self._cache) > self.cached_row_groups:
            self._cache.popitem(last=False)
        return table

    def __getitem__(self, i: int) -> tuple[Any, int]:
        rg = self._row_group(self.shards[i], int(self.row_groups[i]))
        row = int(self.rows[i])
        image = decode(rg["image"][row]["bytes"].as_py())
        label = rg["label"][row].as_py()
        return (self.transform(image) if self.transform else image), label


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardIterableDataset(IterableDataset):
    """Streams one split's shards, split across ranks and workers, through a shuffle buffer."""

    def __init__(self, out: str, split: str = "train", transform: Callable | None = None, shuffle_buffer: int = 1000,
                 seed: int = 0, include_augmented: bool = False) -> None:
        self.out, self.transform, self.buffer, self.seed, self.epoch = out, transform, shuffle_buffer, seed, 0
        table = _index(out, split, ("shards", "augmented") if include_augmented else ("shards",))
        # the unit of work is a row group, so even a split of one shard feeds every worker
        self.units = sorted(set(zip(table["shard"].to_pylist(), table["row_group"].to_pylist())))
        self.length = table.num_rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_units(self) -> list[tuple[str, int]]:
        """This rank's and worker's (shard, row group) units for the current epoch."""
        rank, world = _rank_and_world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order = list(self.units)
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order[rank * workers + worker:: world * workers]

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        units = self.my_units()
        rng = random.Random(f"{self.seed}/{self.epoch}/{units[:1]}")
        ws = Workspace(self.out)
        buffer: list[tuple[bytes, int]] = []
        for shard, group in units:
            with ws.fs.open(ws.path(shard), "rb") as f:
                t = pq.ParquetFile(f).read_row_group(group, columns=["image", "label"])
            images = t["image"].combine_chunks().field("bytes").to_pylist()
            for data, label in zip(images, t["label"].to_pylist()):
                buffer.append((data, label))
                if len(buffer) >= self.buffer:
                    yield self._item(buffer.pop(rng.randrange(len(buffer))))
        rng.shuffle(buffer)
        for item in buffer:
            yield self._item(item)

    def _item(self, item: tuple[bytes, int]) -> tuple[Any, int]:
        image = decode(item[0])
        return (self.transform(image) if self.transform else image), item[1]
