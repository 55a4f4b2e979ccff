"""The batch loop, with decoding and encoding overlapped with the transform.

Worker processes (a torch DataLoader) prepare batches ahead: read and decode each source of a
batch once, draw every variant's parameters, stack the pixels (pinned for a GPU). The calling
process runs the transform on the device, and a thread pool encodes the results (Pillow
releases the GIL) while the next batch is transformed. At most `depth` batches per worker are
prepared ahead and `depth` batches wait to be encoded, which bounds memory. With no workers
(a `memory://` source, which worker processes cannot see) batches are prepared in-process.
"""
from __future__ import annotations

import json
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from curate.augment.pipeline import Params, Pipeline, Sampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One variant to make: its source (a key `load` understands) and its seed."""

    source: str
    seed: int


@dataclass(frozen=True)
class Output:
    """One made variant: its encoded bytes and its ops with the drawn parameters (JSON)."""

    data: bytes
    ops: str


Loaded = tuple[np.ndarray | None, str | None]  # pixels, or None and why the source could not be used


@dataclass(frozen=True)
class Prepared:
    """A batch ready for the device: the jobs whose source loaded, their pixels and parameters."""

    ok: list[int]  # positions in the batch whose source loaded
    errors: dict[str, str]  # source -> why it could not be used
    images: torch.Tensor | None  # uint8 (len(ok), size, size, 3)
    params: list[Params]
    ops: list[str]  # per ok job: its ops with the drawn parameters, JSON

    def pin_memory(self) -> Prepared:  # called by the DataLoader when the device is a GPU
        return self if self.images is None else replace(self, images=self.images.pin_memory())


class BatchSource(Dataset):
    """Item i = batch i prepared: sources decoded once, every variant's parameters drawn."""

    def __init__(self, batches: Sequence[Sequence[Job]], load: Callable[[str], Loaded], sampler: Sampler) -> None:
        self.batches, self.load, self.sampler = batches, load, sampler

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Prepared:
        batch = self.batches[i]
        loaded: dict[str, Loaded] = {}
        for job in batch:
            if job.source not in loaded:
                loaded[job.source] = self.load(job.source)
        ok = [k for k, job in enumerate(batch) if loaded[job.source][0] is not None]
        errors = {s: err for s, (pixels, err) in loaded.items() if pixels is None and err}
        if not ok:
            return Prepared(ok, errors, None, [], [])
        drawn = self.sampler.sample([batch[k].seed for k in ok])
        images = torch.from_numpy(np.stack([pixels for k in ok if (pixels := loaded[batch[k].source][0]) is not None]))
        ops = [json.dumps(self.sampler.describe(d)) for d in drawn]
        return Prepared(ok, errors, images, self.sampler.collate(drawn), ops)


def run_batches(batches: Sequence[Sequence[Job]], pipeline: Pipeline, load: Callable[[str], Loaded],
                encode: Callable[[np.ndarray], bytes], workers: int, threads: int, depth: int = 2,
                ) -> Iterator[tuple[list[Output | None], dict[str, str]]]:
    """For each batch, in order: one Output per job (None where its source could not be used) and
    the sources that failed, with why."""
    if not batches:
        return
    loader = DataLoader(BatchSource(batches, load, pipeline.sampler), batch_size=None, num_workers=workers,
                        pin_memory=pipeline.device.type == "cuda", prefetch_factor=depth if workers else None)
    pool = ThreadPoolExecutor(threads, "augment-encode")
    encoding: deque[tuple[int, Prepared, list[Future]]] = deque()

    def finish(n_jobs: int, prep: Prepared, futures: list[Future]) -> tuple[list[Output | None], dict[str, str]]:
        outputs: list[Output | None] = [None] * n_jobs
        for k, f, ops in zip(prep.ok, futures, prep.ops):
            outputs[k] = Output(f.result(), ops)
        return outputs, prep.errors

    try:
        for batch, prep in zip(batches, loader):
            futures = []
            if prep.images is not None:
                augmented = pipeline.apply(prep.images, prep.params).numpy()
                futures = [pool.submit(encode, augmented[k]) for k in range(len(prep.ok))]
            encoding.append((len(batch), prep, futures))
            while len(encoding) > depth:
                yield finish(*encoding.popleft())
        while encoding:
            yield finish(*encoding.popleft())
    finally:  # on an error or an early close: drop queued encodes, wait for running ones
        pool.shutdown(wait=True, cancel_futures=True)
