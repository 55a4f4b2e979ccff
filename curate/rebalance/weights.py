"""Class weights for the training loss, from the final train split's counts."""
from __future__ import annotations

import statistics


def class_weights(counts: dict[str, int], beta: float) -> dict[str, dict[str, float]]:
    """Per scheme, per class: `inverse` (N / (K n_c)), `effective` (Cui et al. 2019:
    (1 - beta) / (1 - beta^n_c), scaled to sum to K) and `median` (median frequency / frequency)."""
    present = {c: n for c, n in counts.items() if n > 0}
    if not present:
        return {"inverse": {}, "effective": {}, "median": {}}
    total, k = sum(present.values()), len(present)
    inverse = {c: total / (k * n) for c, n in present.items()}
    raw = {c: (1 - beta) / (1 - beta**n) if beta < 1 else 1.0 / n for c, n in present.items()}
    scale = k / sum(raw.values())
    effective = {c: w * scale for c, w in raw.items()}
    median_freq = statistics.median(n / total for n in present.values())
    median = {c: median_freq / (n / total) for c, n in present.items()}
    return {"inverse": inverse, "effective": effective, "median": median}
