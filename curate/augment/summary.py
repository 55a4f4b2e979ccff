"""What `curate augment` did, and how the CLI shows it (no torch needed to import)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AugmentSummary:
    variants: dict[str, int] = field(default_factory=dict)  # class -> variants in OUT/augmented/
    per_split: dict[str, int] = field(default_factory=dict)  # split -> variants in OUT/augmented/
    shards: int = 0
    made: int = 0  # variants made this run; complete shards of an earlier run are kept
    failed: dict[str, str] = field(default_factory=dict)  # source path -> why it could not be used
    device: str = "cpu"
    batch_size: int = 0
    images_per_s: float = 0.0  # variants made per second of the batch loop
    elapsed_s: float = 0.0


def render(summary: AugmentSummary, out: str) -> None:
    """Print the summary: variants per class and split, device, images/s."""
    from curate.console import console, table

    total = sum(summary.per_split.values())
    if not total:
        console.print("[bold]augment[/bold]: nothing to augment: the plan asks for no variants "
                      "(`rebalance --oversample augment`) and --copies is 0")
        return
    console.print(f"[bold]augment[/bold]: {total} variants in {summary.shards} shards; made {summary.made} this run "
                  f"on {summary.device}, batch {summary.batch_size}, {summary.images_per_s:.1f} images/s "
                  f"({summary.elapsed_s:.1f}s)")
    console.print(table("variants per class", ["class", "variants"], summary.variants.items()))
    console.print("per split: " + ", ".join(f"{split} {n}" for split, n in summary.per_split.items()))
    for path, why in summary.failed.items():
        console.print(f"[yellow]skipped[/yellow] {path}: {why}")
    console.print(f"augmented: {out}/augmented/  index: {out}/index.parquet")
