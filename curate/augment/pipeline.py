"""A configured op list as something that samples per-variant parameters and applies them in batches.

Parameters are drawn on the CPU, one variant at a time, from torch's generator seeded with that
variant's seed, so a variant's parameters depend on its seed alone: not on its batch, the batch
size or the device. The drawn parameters of a batch are then stacked and applied in one pass on
the device.
"""
from __future__ import annotations

from typing import Any

import torch

from curate.augment.ops import ResolvedOp

Params = dict[str, torch.Tensor]  # one Kornia op's parameters, batch first

# Kornia bookkeeping entries that describe the whole batch rather than one sample
_BATCH_SHAPE = "forward_input_shape"
_SHARED = ("order",)  # color_jitter's order: fixed by the op, so the same for every variant


class Pipeline:
    """The ops of `augment.ops`, applied in order to size x size RGB images."""

    def __init__(self, ops: list[ResolvedOp], size: int, device: torch.device) -> None:
        self.ops, self.size, self.device = ops, size, device
        self._samplers = [op.build(size) for op in ops]  # draw parameters, on the CPU
        self._appliers = [op.build(size).to(device) for op in ops]

    def sample(self, seeds: list[int]) -> list[list[Params]]:
        """Per variant, per op: the parameters drawn with the variant's seed.

        torch's global CPU generator is used (Kornia draws from it) and restored afterwards; call
        this from one thread at a time.
        """
        shape = (1, 3, self.size, self.size)
        drawn = []
        with torch.random.fork_rng(devices=[]):
            for seed in seeds:
                torch.manual_seed(seed)
                drawn.append([s.forward_parameters(shape) for s in self._samplers])
        return drawn

    def collate(self, drawn: list[list[Params]]) -> list[Params]:
        """Stack per-variant parameters into one batch per op."""
        n = len(drawn)
        batch = []
        for j in range(len(self.ops)):
            stacked: Params = {}
            for key, first in drawn[0][j].items():
                if key == _BATCH_SHAPE:
                    stacked[key] = torch.tensor([n, 3, self.size, self.size])
                elif key in _SHARED:
                    stacked[key] = first
                else:
                    stacked[key] = torch.cat([d[j][key] for d in drawn])
            batch.append(stacked)
        return batch

    def describe(self, drawn: list[Params]) -> list[dict[str, Any]]:
        """One variant's ops as provenance: name, whether it applied, and the values it drew."""
        out = []
        for op, params in zip(self.ops, drawn):
            applied = bool(params["batch_prob"][0] > 0.5)
            entry: dict[str, Any] = {"name": op.spec.name, "applied": applied}
            if applied:
                entry.update({key: params[key][0].tolist() for key in op.spec.records})
            out.append(entry)
        return out

    @torch.inference_mode()
    def apply(self, images: torch.Tensor, params: list[Params]) -> torch.Tensor:
        """uint8 (B, size, size, 3) on any device -> augmented uint8 (B, size, size, 3) on the CPU."""
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        for module, p in zip(self._appliers, params):
            x = module(x, params={k: v.to(self.device) for k, v in p.items()})
        return x.mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()
