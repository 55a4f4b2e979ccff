"""`curate embed` with the network cut off: each model kind whose library is installed runs in a
new network namespace (`unshare -n`: no route anywhere, loopback down), under an audit hook that
logs every name lookup and outbound socket. A model with its weights on disk embeds, and no model
reaches for the network; `timm:`/`open_clip:` without cached weights fail with one line."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curate.config import from_dict
from curate.embed import models
from curate.pipeline import run_stage
from curate.tables import read_embeddings
from curate.workspace import Workspace

from conftest import encode, photo_like, write

# An audit hook that appends each network event to $NET_LOG, added before the CLI or a model loads.
LOG_NETWORK = """
import os, sys
from curate.embed.models import NETWORK_EVENTS
def log(event, args):
    if event in NETWORK_EVENTS:
        with open(os.environ["NET_LOG"], "a") as f:
            f.write(f"{event} {args[1:] if event in ('socket.connect', 'socket.sendto') else args}\\n")
sys.addaudithook(log)
"""
CURATE = LOG_NETWORK + "from curate.cli import main\nmain(prog_name='curate')\n"


@functools.cache
def netns() -> list[str] | None:
    """The command prefix that runs a command in a new network namespace, or None where neither
    root's nor a user namespace's `unshare -n` is allowed."""
    for prefix in (["unshare", "-n"], ["unshare", "-r", "-n"]):
        if shutil.which("unshare") and subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return None


pytestmark = pytest.mark.skipif(netns() is None, reason="cannot make a network namespace here (unshare -n)")


def offline(args: list[str], tmp: Path, code: str = CURATE, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run `curate ARGS` (or the Python `code`) with no network, an empty Hugging Face and torch
    hub cache unless `env` names one; returns the process and the network events it logged."""
    log = tmp / "net.log"
    base = {k: v for k, v in os.environ.items() if k not in models.HUB_OFFLINE}  # curate sets them itself
    env = {"HF_HOME": str(tmp / "hf"), "TORCH_HOME": str(tmp / "torch"), **env, "NET_LOG": str(log)}
    run = subprocess.run([*netns(), sys.executable, "-c", code, *args], env={**base, **env},
                         capture_output=True, text=True, timeout=300)
    return run, log.read_text() if log.exists() else ""


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Path:
    """OUT scanned from four small photos (one manifest part: embed runs in-process)."""
    root = tmp_path_factory.mktemp("offline")
    for i in range(4):
        write(root / "src" / "a" / f"{i}.jpg", encode(photo_like(i)))
    run_stage("scan", str(root / "src"), str(root / "out"), from_dict({"engine": {"workers": 1}}))
    return root / "out"


def pooling(tmp: Path, kind: str) -> str:
    """A tiny model file (4x4 average pooling: 48 features) as TorchScript or ONNX; its model name."""
    import torch

    module = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()))
    if kind == "torchscript":
        module.save(str(tmp / "pool.pt"))
        return f"torchscript:{tmp / 'pool.pt'}"
    torch.onnx.export(module, (torch.zeros(1, 3, 32, 32),), str(tmp / "pool.onnx"), input_names=["pixels"],
                      dynamic_axes={"pixels": {0: "batch"}}, dynamo=False)
    return f"onnx:{tmp / 'pool.onnx'}"


def cached_timm(tmp: Path, name: str) -> str:
    """`name`'s weights (freshly initialised) in a Hugging Face cache under `tmp`, laid out as a
    download leaves them; returns that HF_HOME."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    config = timm.models.get_pretrained_cfg(name)
    snapshot = tmp / "hf" / "hub" / f"models--{config.hf_hub_id.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(timm.create_model(name).state_dict(), str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    return str(tmp / "hf")


@pytest.mark.parametrize("kind, dim", [("efficientnet-lite0", 1280), ("torchscript", 48), ("onnx", 48),
                                       ("timm", 64)])
def test_each_installed_model_kind_embeds_with_the_network_cut_off(scanned, tmp_path, kind, dim):
    out = tmp_path / "out"
    shutil.copytree(scanned, out)
    env, args = {}, ["--model", kind]
    if kind in ("torchscript", "onnx"):
        (tmp_path / "curate.toml").write_text("[embed]\nsize = 32\n")
        args = ["--model", pooling(tmp_path, kind), "--config", str(tmp_path / "curate.toml")]
    if kind == "timm":  # a tiny test network of timm's, its weights in the local cache only
        env["HF_HOME"] = cached_timm(tmp_path, "test_vit.r160_in1k")
        args = ["--model", "timm:test_vit.r160_in1k"]
    run, network = offline(["embed", str(out), *args], tmp_path, **env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert network == ""
    got = read_embeddings(Workspace(str(out)))
    assert got.vectors.shape == (4, dim) and got.model == models.identify(args[1])
    assert np.allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-2)


@pytest.mark.parametrize("model, library", [
    ("timm:test_vit.r160_in1k", "timm"), ("open_clip:ViT-B-32:laion2b_s34b_b79k", "open_clip"),
    ("open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip")])
def test_a_library_model_without_cached_weights_fails_in_one_line_without_reaching_the_network(
        scanned, tmp_path, model, library):
    pytest.importorskip(library)
    out = tmp_path / "out"
    shutil.copytree(scanned, out)
    run, network = offline(["embed", str(out), "--model", model], tmp_path)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert run.returncode == 2 and "Traceback" not in run.stdout + run.stderr, run.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(f"error: embed.model={model}: not loaded (")
    assert f"put its weights in the Hugging Face cache ({tmp_path / 'hf' / 'hub'})" in errors[0]
    assert network == ""
    assert not (out / "embeddings").exists()


def test_a_timm_model_without_pretrained_weights_is_refused_not_run_with_random_ones(scanned, tmp_path):
    pytest.importorskip("timm")
    out = tmp_path / "out"
    shutil.copytree(scanned, out)
    run, network = offline(["embed", str(out), "--model", "timm:test_mambaout"], tmp_path)
    assert run.returncode == 2, run.stderr[-3000:]
    # timm refuses it (since 0.9); curate says so in its one line
    assert "error: embed.model=timm:test_mambaout: not loaded (No pretrained weights exist for" in run.stderr
    assert network == "" and not (out / "embeddings").exists()


# huggingface_hub imported before a model loads (as `datasets` or a library model's own import
# does); then a download and a connection tried while loading, from another thread, and after.
HUB_FIRST = LOG_NETWORK + """
import socket, threading, urllib.request
import huggingface_hub.constants, huggingface_hub.errors
from curate.embed import models
def attempt(fetch):
    try:
        fetch()
    except models.NetworkRefused:
        return "refused"
    except huggingface_hub.errors.LocalEntryNotFoundError:
        return "offline"
    except OSError:
        return "unreachable"
    return "connected"
def remote():
    with socket.socket() as s:
        s.settimeout(5)
        s.connect(("192.0.2.1", 443))
print(huggingface_hub.constants.HF_HUB_OFFLINE)
with models._offline():
    url = attempt(lambda: urllib.request.urlopen("https://example.com/weights.pth", timeout=5))
    here = attempt(remote)
    beside = []
    thread = threading.Thread(target=lambda: beside.append(attempt(remote)))
    thread.start()
    thread.join()
hub = attempt(lambda: huggingface_hub.hf_hub_download("timm/test_vit.r160_in1k", "model.safetensors"))
print(url, here, beside[0], attempt(remote), hub, huggingface_hub.constants.HF_HUB_OFFLINE)
"""


def test_the_hub_goes_offline_though_imported_first_and_a_loading_thread_cannot_reach_the_network(tmp_path):
    pytest.importorskip("huggingface_hub")
    run, network = offline([], tmp_path, code=HUB_FIRST)
    assert run.returncode == 0, run.stderr[-3000:]
    # while loading, a URL download and a connection are refused by curate; another thread, and this
    # one after, only meet the missing network; the Hub, imported online, answers from its (empty)
    # cache without a look-up
    assert run.stdout.split() == ["False", "refused", "refused", "unreachable", "unreachable", "offline", "True"]
    assert [line.split()[0] for line in network.splitlines()] == [
        "socket.getaddrinfo", "socket.connect", "socket.connect", "socket.connect"]
