"""The batch loop, with decoding and encoding overlapped with the transform.

Three kinds of work run at once: a thread pool reads and decodes sources and encodes results
(Pillow and fsspec release the GIL), one thread prepares the next batches (draws each variant's
parameters, stacks the pixels), and the calling thread runs the transform on the device. At most
`depth` batches are prepared ahead and `depth` batches wait to be encoded, which bounds memory.
A source used by several consecutive variants is decoded once.
"""
from __future__ import annotations

import json
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from curate.augment.pipeline import Params, Pipeline

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


@dataclass
class _Prepared:
    ok: list[int]  # positions in the batch whose source loaded
    errors: dict[str, str]  # source -> why it could not be used
    images: torch.Tensor | None
    params: list[Params]
    ops: list[str]


def _prepare(pipeline: Pipeline, batch: Sequence[Job], loaded: list[Future]) -> _Prepared:
    pixels = [f.result() for f in loaded]
    ok = [i for i, (p, _) in enumerate(pixels) if p is not None]
    errors = {batch[i].source: err for i, (p, err) in enumerate(pixels) if p is None and err}
    if not ok:
        return _Prepared(ok, errors, None, [], [])
    drawn = pipeline.sample([batch[i].seed for i in ok])
    images = torch.from_numpy(np.stack([pixels[i][0] for i in ok]))
    if pipeline.device.type == "cuda":
        images = images.pin_memory()
    ops = [json.dumps(pipeline.describe(d)) for d in drawn]
    return _Prepared(ok, errors, images, pipeline.collate(drawn), ops)


def run_batches(batches: Sequence[Sequence[Job]], pipeline: Pipeline, load: Callable[[str], Loaded],
                encode: Callable[[np.ndarray], bytes], threads: int, depth: int = 2,
                ) -> Iterator[tuple[list[Output | None], dict[str, str]]]:
    """For each batch, in order: one Output per job (None where its source could not be used) and
    the sources that failed, with why."""
    last_use = {job.source: i for i, batch in enumerate(batches) for job in batch}
    io_pool, prep_pool = ThreadPoolExecutor(threads, "augment-io"), ThreadPoolExecutor(1, "augment-prep")
    decoding: dict[str, Future] = {}
    prepared: deque[Future] = deque()
    encoding: deque[tuple[int, _Prepared, list[Future]]] = deque()

    def submit_prepare(i: int) -> None:
        loaded = []
        for job in batches[i]:
            if job.source not in decoding:
                decoding[job.source] = io_pool.submit(load, job.source)
            loaded.append(decoding[job.source])
        for job in batches[i]:
            if last_use[job.source] == i:
                decoding.pop(job.source, None)
        prepared.append(prep_pool.submit(_prepare, pipeline, batches[i], loaded))

    def finish(n_jobs: int, prep: _Prepared, futures: list[Future]) -> tuple[list[Output | None], dict[str, str]]:
        outputs: list[Output | None] = [None] * n_jobs
        for i, f, ops in zip(prep.ok, futures, prep.ops):
            outputs[i] = Output(f.result(), ops)
        return outputs, prep.errors

    try:
        ahead = 0
        for i, batch in enumerate(batches):
            while ahead < len(batches) and ahead <= i + depth:
                submit_prepare(ahead)
                ahead += 1
            prep = prepared.popleft().result()
            futures = []
            if prep.images is not None:
                augmented = pipeline.apply(prep.images, prep.params).numpy()
                futures = [io_pool.submit(encode, augmented[j]) for j in range(len(prep.ok))]
            encoding.append((len(batch), prep, futures))
            while len(encoding) > depth:
                yield finish(*encoding.popleft())
        while encoding:
            yield finish(*encoding.popleft())
    finally:  # on an error or an early close: drop queued work, then wait for what is running
        io_pool.shutdown(wait=False, cancel_futures=True)
        prep_pool.shutdown(wait=True, cancel_futures=True)
        io_pool.shutdown(wait=True)
