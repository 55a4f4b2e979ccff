"""The scan stage (`curate scan`): SRC listed on the workers (`listed`), planned per group of
paths against the previous manifest (`plan`), decoded into `OUT/manifest/` (`stage`)."""
from curate.scan.stage import scan

__all__ = ["scan"]
