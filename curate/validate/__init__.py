"""Validate: score every manifest row with registered checks and record the ones that fire.

Importing this package registers every check, of every level, in `curate.validate.checks.CHECKS`.
"""
from curate.validate import collection, embedding  # noqa: F401  (they register their checks)
