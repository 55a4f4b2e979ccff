"""Object stores (S3, GCS, Azure) behind fsspec: what counts as one, the storage options from the
config, secrets kept out of records, and the store's errors as one line.

Reads the config's `[storage] options` (fsspec options per protocol); writes nothing. Credentials
and endpoints come from each store library's own environment, config files and profiles
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_PROFILE`, ... for s3fs);
`[storage] options` only adds to them. Importing this module imports nothing heavy.
"""
from __future__ import annotations

import json
import os
from typing import Any

from curate.errors import CurateError

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})
SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas", "signature", "session")
REDACTED = "***"


def protocols(fs: Any) -> tuple[str, ...]:
    """The protocol names of an fsspec file system."""
    return tuple(fs.protocol) if isinstance(fs.protocol, (tuple, list)) else (str(fs.protocol),)


def is_object_store(fs: Any) -> bool:
    """Whether `fs` is an object store: objects are written whole by one PUT and there is no rename."""
    return any(p in OBJECT_STORES for p in protocols(fs))


def is_object_url(url: str) -> bool:
    return url.partition("://")[0].lower() in OBJECT_STORES if "://" in url else False


def apply(options: dict[str, Any]) -> None:
    """Make `options` ({protocol: {option: value}}) the fsspec defaults for those protocols, here and
    in the processes started from here (decoder children, local Dask workers), which read
    `FSSPEC_<PROTOCOL>` when they import fsspec. Workers of a remote cluster need the same options
    in their own environment (as they need their own credentials). Masked values (`REDACTED`, as a
    flow's task receives the config) are skipped: the flow's process applied the real ones."""
    if not options:
        return
    import fsspec.config

    for protocol, values in options.items():
        fsspec.config.conf.setdefault(protocol, {}).update(_unmasked(values))
        os.environ[f"FSSPEC_{protocol.upper()}"] = json.dumps(fsspec.config.conf[protocol])


def _unmasked(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the masked ones, at any depth (a masked value, from a record, is no value)."""
    return {k: _unmasked(v) if isinstance(v, dict) else v for k, v in values.items() if v != REDACTED}


def redacted(obj: Any) -> Any:
    """`obj` (nested dicts and lists) with the value of every key that names a secret replaced."""
    if isinstance(obj, dict):
        return {k: REDACTED if any(w in str(k).lower() for w in SECRET_WORDS) and v not in ("", None)
                else redacted(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redacted(v) for v in obj]
    return obj


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def user_error(exc: BaseException, url: str = "") -> CurateError | None:
    """One line for an error that came from an object store (no credentials, an unreachable
    endpoint, a missing bucket, access denied), or None when `exc` did not come from one."""
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    modules = {type(e).__module__.partition(".")[0] for e in chain}
    where = f" for {url}" if url else ""
    if "NoCredentialsError" in names or "PartialCredentialsError" in names:
        return CurateError(f"no credentials{where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                           "AWS_PROFILE (or the store's own credentials)")
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionClosedError",
                "ServerDisconnectedError", "ReadTimeoutError"}:
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        return CurateError(f"cannot reach the object store{where}" + (f" at {endpoint}" if endpoint else "")
                           + f": {_first_line(chain)}")
    if not modules & {"botocore", "aiobotocore", "s3fs", "gcsfs", "adlfs", "aiohttp", "google", "azure"}:
        return None
    text = " ".join(str(e) for e in chain)
    if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return CurateError(f"the bucket{where} does not exist: create it first (curate never creates buckets)")
    if any(isinstance(e, PermissionError) for e in chain) or "AccessDenied" in text or "Forbidden" in text:
        return CurateError(f"access denied{where}: {_first_line(chain)}")
    return CurateError(f"object store error{where}: {type(chain[-1]).__name__}: {_first_line(chain)}")


def _first_line(chain: list[BaseException]) -> str:
    for e in chain:
        text = str(e).strip()
        if text:
            return text.splitlines()[0][:300]
    return type(chain[0]).__name__
