"""A configured op list: a `Sampler` that draws each variant's parameters, and a `Pipeline` that
applies drawn parameters to a batch on the device.

Parameters are drawn on the CPU, one variant at a time, from torch's generator seeded with that
variant's seed, so a variant's parameters depend on its seed alone: not on its batch, the batch
size or the device. The drawn parameters of a batch are stacked and applied in one pass per op.
"""
from __future__ import annotations

from typing import Any

import torch

from curate.augment.ops import ResolvedOp

Params = dict[str, torch.Tensor]  # one Kornia op's parameters, batch first

# Kornia bookkeeping entries that describe the whole batch rather than one sample
_BATCH_SHAPE = "forward_input_shape"
_SHARED = ("order",)  # color_jitter's order: fixed by the op, so the same for every variant


class Sampler:
    """Draws, stacks and describes per-variant parameters (CPU only; picklable, for worker processes)."""

    def __init__(self, ops: list[ResolvedOp], size: int) -> None:
        self.ops, self.size = ops, size
        self._modules = [op.build(size) for op in ops]

    def sample(self, seeds: list[int]) -> list[list[Params]]:
        """Per variant, per op: the parameters drawn with the variant's seed.

        Kornia draws from torch's global CPU generator; it is restored afterwards. Call this from
        one thread of a process at a time.
        """
        shape = (1, 3, self.size, self.size)
        drawn = []
        with torch.random.fork_rng(devices=[]):
            for seed in seeds:
                torch.manual_seed(seed)
                drawn.append([m.forward_parameters(shape) for m in self._modules])
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


class Pipeline:
    """The ops of `augment.ops`, applied in order to size x size RGB images on `device`."""

    def __init__(self, ops: list[ResolvedOp], size: int, device: torch.device) -> None:
        self.sampler = Sampler(ops, size)
        self.device = device
        self._modules = [op.build(size).to(device) for op in ops]

    @torch.inference_mode()
    def apply(self, images: torch.Tensor, params: list[Params]) -> torch.Tensor:
        """uint8 (B, size, size, 3) on any device -> augmented uint8 (B, size, size, 3) on the CPU."""
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        for module, p in zip(self._modules, params):
            x = module(x, params={k: v.to(self.device) for k, v in p.items()})
        return x.mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()
