"""Which kept images get how many variants, and each variant's identity, order and seed.

From the plan: a kept image gets its `augment_copies` (`rebalance --oversample augment`). With
`augment.copies = N`: every kept image of `augment.classes` (all classes when empty) in the
rebalanced splits (`rebalance.apply_to`, train by default: variants of evaluation images would
skew evaluation) gets N. Variant k of source S is `S-aug<k>`, its seed a hash of (augment.seed, that
id), so it never depends on which other images are augmented or in what order.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from curate.config import Config
from curate.errors import ConfigError
from curate.seeds import seeded_key
from curate.shards.layout import interleave


def check_classes(cfg: Config) -> None:
    """`augment.classes` only means something with `augment.copies`."""
    if cfg.augment.classes and not cfg.augment.copies:
        raise ConfigError("augment.classes needs augment.copies: give --copies N with --classes "
                          f"{','.join(map(str, cfg.augment.classes))}")


def select(samples: pd.DataFrame, classes: list[str], cfg: Config) -> pd.DataFrame:
    """Kept plan rows (one per copy, from `kept_samples`) -> one row per source, with `n_variants` > 0."""
    a = cfg.augment
    sources = samples[samples["copy_index"] == 0]
    if a.copies:
        unknown = sorted(set(a.classes) - set(classes))
        if unknown:
            raise ConfigError(f"augment.classes: no class {unknown[0]!r} in the plan; classes: {', '.join(classes)}")
        chosen = sources["label_name"].isin(a.classes) if a.classes else pd.Series(True, index=sources.index)
        n = np.where(chosen & sources["split"].isin(cfg.rebalance.apply_to), a.copies, 0)
    else:
        n = sources["augment_copies"].to_numpy()
    return sources.assign(n_variants=n.astype(np.int64)).loc[lambda d: d["n_variants"] > 0]


def variant_seed(seed: int, sample_id: str) -> int:
    """A variant's seed: 63 bits of a hash of (augment.seed, the variant's id), so it fits int64."""
    return seeded_key(seed, sample_id) >> 1


def expand(sources: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One split's sources -> one row per variant, class-interleaved (every run of the order has about
    the split's class mix), a source's variants next to each other (decoded once per batch).

    Adds source_sample_id, sample_id (`<source>-aug<k>`), copy_index (k) and augment_seed.
    """
    order = interleave(sources.assign(copy_index=0), seed)
    rows = order.loc[order.index.repeat(order["n_variants"])].copy()
    k = rows.groupby(level=0).cumcount().astype("int32")
    rows["source_sample_id"] = rows["sample_id"]
    rows["copy_index"] = k
    rows["sample_id"] = rows["source_sample_id"] + "-aug" + k.astype(str)
    rows["augment_seed"] = [variant_seed(seed, s) for s in rows["sample_id"]]
    return rows.reset_index(drop=True)
