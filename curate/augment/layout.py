"""Which variant goes into which shard of `OUT/augmented/<split>/`, and which shards a rerun keeps.

A source's shard is a seeded hash of its sample_id modulo the shard count, and all its variants
go there (it is decoded once per batch, and adding or removing a few sources changes only their
shards). Within a shard, sources are interleaved across classes and each is followed by its
variants. Each shard carries a fingerprint of everything that decides its bytes (its variants,
the class list, ops, size, format, quality, seed, batch size, device kind, row group size) in
its sidecar: a rerun rewrites only shards that are missing or whose fingerprint changed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import xxhash

from curate.augment.ops import resolve_ops
from curate.augment.variants import expand
from curate.config import Config, parse_size
from curate.shards.layout import assign, row_group_size, shard_count
from curate.shards.writer import remove_shards_from
from curate.workspace import Workspace

# encoded bytes per output pixel, to size shards before anything is encoded
BYTES_PER_PIXEL = {"jpeg": 0.5, "png": 2.0}


@dataclass(frozen=True)
class ShardJob:
    """One shard: its path under OUT, its variants in order, and the fingerprint of what it holds."""

    rel: str
    variants: pd.DataFrame
    row_group_size: int
    layout: str


def fingerprint(cfg: Config, device_kind: str, classes: list[str], variants: pd.DataFrame, rg: int) -> str:
    """A digest of everything that decides a shard's bytes."""
    a = cfg.augment
    h = xxhash.xxh3_128()
    settings = {"ops": [op.config() for op in resolve_ops(a.ops, a.size)], "size": a.size, "format": a.format,
                "quality": a.quality, "seed": a.seed, "batch_size": a.batch_size, "device": device_kind,
                "row_group": rg, "classes": classes}
    h.update(json.dumps(settings, sort_keys=True).encode() + b"\n")
    for s, p in zip(variants["sample_id"], variants["path"]):
        h.update(f"{s}/{p}\n".encode())
    return h.hexdigest()


def plan_split(ws: Workspace, split: str, sources: pd.DataFrame, cfg: Config, device_kind: str,
               classes: list[str]) -> list[ShardJob]:
    """Every shard of one split's variants; removes shards beyond the new count."""
    a = cfg.augment
    per_variant = a.size * a.size * BYTES_PER_PIXEL[a.format]
    total = int(sources["n_variants"].sum())
    n = shard_count(int(per_variant * total), total, parse_size(cfg.shard.shard_size), cfg.shard.min_shards)
    rg = row_group_size(per_variant)
    shard_of = assign(sources.assign(copy_index=0), n, a.seed)
    folder = f"augmented/{split}"
    ws.clean_temporaries(folder)
    remove_shards_from(ws, folder, n)
    jobs = []
    for i in range(n):
        variants = expand(sources[shard_of == i], a.seed)
        jobs.append(ShardJob(f"{folder}/shard-{i:05d}.parquet", variants, rg,
                             fingerprint(cfg, device_kind, classes, variants, rg)))
    return jobs
