"""Object stores (S3, GCS, Azure) behind fsspec: what counts as one, the storage options from the
config, secrets kept out of records and logs, and the store's errors as one line.

Reads the config's `[storage] options` (fsspec options per protocol); writes nothing. Credentials
and endpoints come from each store library's own environment, config files and profiles
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_PROFILE`, ... for s3fs);
`[storage] options` only adds to them. Importing this module imports nothing heavy.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from curate.errors import CurateError

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})
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
        _merge(fsspec.config.conf.setdefault(protocol, {}), _unmasked(values))
        os.environ[f"FSSPEC_{protocol.upper()}"] = json.dumps(fsspec.config.conf[protocol])


def _unmasked(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the masked ones, at any depth (a masked value, from a record, is no value;
    a URL with masked credentials is one too)."""
    return {k: _unmasked(v) if isinstance(v, dict) else v for k, v in values.items()
            if not (isinstance(v, str) and REDACTED in v)}


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    """Set `values` in `into`, tables merged key by key (a record's `client_kwargs` without its masked
    `auth` keeps the real one)."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


# Storage option keys (at any depth) whose values hold no secret, so records keep them: settings of
# s3fs/botocore, gcsfs and adlfs that say where and how to connect, never with what credentials.
# Every other value is masked; URLs among the kept ones lose their credentials (`safe_url`).
SAFE_OPTIONS = frozenset({
    "anon", "endpoint_url", "region_name", "client_kwargs", "config_kwargs", "use_ssl", "verify", "requester_pays",
    "default_block_size", "default_fill_cache", "default_cache_type", "version_aware", "cache_regions",
    "use_listings_cache", "listings_expiry_time", "max_concurrency", "fixed_upload_size", "skip_instance_cache",
    "signature_version", "s3", "addressing_style", "use_accelerate_endpoint", "payload_signing_enabled",
    "retries", "max_attempts", "mode", "connect_timeout", "read_timeout", "max_pool_connections",
    "project", "consistency", "default_location", "access", "account_name", "blocksize", "timeout",
})
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*@)?(?P<rest>[^?#\s]*)"
                  r"(?P<query>\?[^#\s]*)?")


def safe_url(text: str) -> str:
    """`text` with the credentials of every URL in it masked: the password of `user:password@` (all
    of the userinfo of an http(s) URL, where a lone user is often a token) and the value of every
    query parameter (tokens, signatures, SAS). Names stay, so the URL still says where it points."""
    def strip(m: re.Match[str]) -> str:
        userinfo, http = m["userinfo"] or "", m["scheme"].lower().startswith("http")
        if userinfo and (":" in userinfo or http):
            userinfo = f"{REDACTED}@" if http else f"{userinfo.partition(':')[0]}:{REDACTED}@"
        query = m["query"] or ""
        if len(query) > 1:
            query = "?" + "&".join(f"{part.partition('=')[0]}={REDACTED}" if "=" in part else part
                                   for part in query[1:].split("&"))
        return f"{m['scheme']}{userinfo}{m['rest']}{query}"

    return _URL.sub(strip, text)


def refuse_credentials(url: str, what: str) -> None:
    """Fail with one line when `url` carries credentials (`safe_url` would mask some): for a value
    that is kept where curate cannot mask it, such as a flow run's parameters on a Prefect server."""
    if (shown := safe_url(url)) != url:
        raise CurateError(f"{what} {shown} carries credentials, and a Prefect server keeps a flow run's "
                          "parameters: set it as [run] src/out in the config file, or give the store its "
                          "credentials through its environment")


def scrubbed(obj: Any) -> Any:
    """`obj` (nested dicts and lists) with every string passed through `safe_url`."""
    if isinstance(obj, dict):
        return {k: scrubbed(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrubbed(v) for v in obj]
    return safe_url(obj) if isinstance(obj, str) else obj


def redacted(storage_section: dict[str, Any]) -> dict[str, Any]:
    """The `[storage]` section as records keep it: under each protocol's options, a value is kept
    only under a key in SAFE_OPTIONS (at any depth, URLs in it without credentials); every other
    value is masked, whatever its key is called."""
    def masked(values: Any) -> Any:
        if isinstance(values, dict):
            return {k: masked(v) if k in SAFE_OPTIONS else REDACTED for k, v in values.items()}
        if isinstance(values, list):
            return [masked(v) for v in values]
        return scrubbed(values)

    options = storage_section.get("options", {})
    return {**storage_section, "options": {protocol: masked(values) if isinstance(values, dict) else REDACTED
                                           for protocol, values in options.items()}}


def scrub_log_records() -> None:
    """From now on, mask the credentials of every URL in the message of every log record made in
    this process (`safe_url`), whichever logger makes it and whichever handler writes it: the
    terminal, a log file, Prefect's API handler. Idempotent."""
    make = logging.getLogRecordFactory()
    if getattr(make, "scrubs_urls", False):
        return

    def scrubbing(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the message: logging reports it later
            return record
        if (clean := safe_url(message)) != message:
            record.msg, record.args = clean, None
        return record

    scrubbing.scrubs_urls = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(scrubbing)


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
