"""Offline augmentation with Kornia: `curate augment OUT` (see `curate.augment.stage`)."""
