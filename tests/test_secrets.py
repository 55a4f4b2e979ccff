"""No secret reaches OUT, the logs or a Prefect server: storage options are recorded by an allowlist
of keys known to hold none, and every URL that is recorded or logged loses its credentials."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from curate.storage import REDACTED, redacted, safe_url

from conftest import encode, free_port, photo_like, write

BIN = Path(sys.executable).parent
# One secret per form the issue names; each must be found nowhere.
SECRETS = {
    "password in endpoint_url": "pw-in-endpoint-4a1f",
    "Azure connection_string": "AccountKeyZm9vYmFy5c2e",
    "headers.Authorization": "bearer-token-77d0",
    "client_kwargs.auth": "client-auth-91be",
    "password in SRC's URL": "src-url-pw-3c88",
    "query token": "sig-query-0e4d",
}
CONFIG = f"""
[engine]
workers = 1
[storage.options.s3]
endpoint_url = "http://minio:{SECRETS['password in endpoint_url']}@127.0.0.1:9/?X-Amz-Signature=\
{SECRETS['query token']}"
client_kwargs = {{region_name = "eu-west-1", auth = "{SECRETS['client_kwargs.auth']}"}}
[storage.options.az]
connection_string = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRETS['Azure connection_string']};"
[storage.options.gs]
headers = {{Authorization = "Bearer {SECRETS['headers.Authorization']}"}}
"""


@pytest.mark.parametrize("url, shown", [
    ("s3://bucket/photos", "s3://bucket/photos"),
    ("https://user:pw@minio:9000/a?X-Amz-Signature=abc&versionId=1", f"https://{REDACTED}@minio:9000/a"
                                                                     f"?X-Amz-Signature={REDACTED}&versionId={REDACTED}"),
    ("https://token@host/x", f"https://{REDACTED}@host/x"),
    ("ftp://user:pw@host/x", f"ftp://user:{REDACTED}@host/x"),
    ("abfs://container@account.dfs.core.windows.net/p", "abfs://container@account.dfs.core.windows.net/p"),
    ("az://c/p?sv=2022-11-02&sig=abc%3D", f"az://c/p?sv={REDACTED}&sig={REDACTED}"),
    ("see http://a:b@h/x, then s3://b/k", f"see http://{REDACTED}@h/x, then s3://b/k"),
])
def test_urls_lose_their_credentials_and_keep_where_they_point(url, shown):
    assert safe_url(url) == shown


def test_storage_options_are_kept_only_under_keys_known_to_hold_no_secret():
    options = {"s3": {"endpoint_url": "http://u:pw@h:9000", "region_name": "eu-west-1", "session": "s",
                      "client_kwargs": {"region_name": "r", "auth": "a"}, "AWS_SECRET": "x"},
               "az": {"connection_string": "AccountKey=k", "account_name": "acct"}, "gs": "not a table"}
    assert redacted({"options": options})["options"] == {
        "s3": {"endpoint_url": f"http://{REDACTED}@h:9000", "region_name": "eu-west-1", "session": REDACTED,
               "client_kwargs": {"region_name": "r", "auth": REDACTED}, "AWS_SECRET": REDACTED},
        "az": {"connection_string": REDACTED, "account_name": "acct"}, "gs": REDACTED}


@pytest.fixture
def http_src(tmp_path):
    """A photo collection served over HTTP on loopback (a real server process); its URL carries a
    password, which the server ignores and curate must never write down."""
    root = tmp_path / "served"
    for cls in ("cat", "dog"):
        for i in range(3):
            write(root / "photos" / cls / f"{i}.jpg", encode(photo_like(10 * len(cls) + i)))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            assert time.time() < deadline, "http.server did not start"
            time.sleep(0.1)
    password = SECRETS["password in SRC's URL"]
    yield f"http://reader:{password}@127.0.0.1:{port}/photos"
    server.terminate()
    server.wait(10)


def _no_secret_in(text: str, where: str) -> None:
    for form, secret in SECRETS.items():
        assert secret not in text, f"{form} in {where}"


def _no_secret_under(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            _no_secret_in(p.read_bytes().decode("latin-1"), str(p))


def test_no_secret_reaches_out_or_the_log(http_src, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG + '[run]\nstages = ["scan", "validate", "dedup", "rebalance", "shard", "report"]\n')
    out = tmp_path / "out"
    done = subprocess.run([str(BIN / "curate"), "-vv", "run", http_src, "-o", str(out), "--config", str(config)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "report" / "index.html").is_file() and (out / "dataset.json").is_file()
    _no_secret_in(done.stdout + done.stderr, "the command's output and log")
    _no_secret_under(out)
    record = json.loads((out / "runs" / "scan.json").read_text())
    assert record["source"] == safe_url(http_src) and "127.0.0.1" in record["source"]
    # a later stage on its own cannot read SRC back from a record without credentials: one line
    alone = subprocess.run([str(BIN / "curate"), "shard", str(out), "--config", str(config)], capture_output=True,
                           text=True, timeout=300)
    assert alone.returncode == 2 and "credentials" in alone.stderr and "Traceback" not in alone.stderr
    _no_secret_in(alone.stdout + alone.stderr, "a later stage's output")


@pytest.mark.slow
def test_no_secret_reaches_a_prefect_server(http_src, tmp_path, prefect_server):
    env = dict(os.environ, PREFECT_API_URL=prefect_server)
    out = tmp_path / "flow-out"
    # SRC with credentials as a flow parameter would be kept by the server: refused, one line
    refused = subprocess.run([str(BIN / "curate"), "run", http_src, "-o", str(out), "--flow"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "carries credentials" in refused.stderr, refused.stderr[-2000:]
    _no_secret_in(refused.stdout + refused.stderr, "the refusal")
    # ... so it comes from the config file, whose path is the flow run's only parameter
    config = tmp_path / "c.toml"
    config.write_text(CONFIG + f'[run]\nsrc = "{http_src}"\nout = "{out}"\n'
                               'stages = ["scan", "validate", "dedup", "rebalance", "shard"]\n')
    done = subprocess.run([str(BIN / "python"), "-m", "flows.curate_pipeline", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    _no_secret_in(done.stdout + done.stderr, "the flow's output")
    _no_secret_under(out)
    kept = {what: httpx.post(f"{prefect_server}/{what}/filter", json={}).text
            for what in ("flow_runs", "task_runs", "logs", "artifacts")}
    kept["events"] = httpx.post(f"{prefect_server}/events/filter", json={"limit": 200}).text
    assert '"COMPLETED"' in kept["flow_runs"] and "curate-pipeline-summary" in kept["artifacts"]
    for what, text in kept.items():
        _no_secret_in(text, f"the Prefect server's {what}")
