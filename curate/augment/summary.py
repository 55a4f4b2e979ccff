"""What `curate augment` did, and its view (no torch needed to import)."""
from __future__ import annotations

from dataclasses import dataclass, field

from curate.view import Block, Table, View


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

    def view(self, out: str) -> View:
        """Variants per class and split, device, images/s."""
        total = sum(self.per_split.values())
        if not total:
            return View("augment", "nothing to augment: the plan asks for no variants "
                                   "(`rebalance --oversample augment`) and --copies is 0")
        blocks: list[Block] = [Table.of("variants per class", ["class", "variants"], self.variants.items()),
                               "per split: " + ", ".join(f"{split} {n}" for split, n in self.per_split.items())]
        blocks += [f"skipped {path}: {why}" for path, why in self.failed.items()]
        return View("augment", f"{total} variants in {self.shards} shards; made {self.made} this run on {self.device}, "
                               f"batch {self.batch_size}, {self.images_per_s:.1f} images/s ({self.elapsed_s:.1f}s)",
                    blocks, {"augmented": f"{out}/augmented/", "index": f"{out}/index.parquet"})
