"""The swap network in a process of its own: torch's import and every batch run beside the render.

In one process the render's Python threads (tracking, compositing) and torch take turns with the
GIL: torch's import alone is ~2 s of it, during which the tracker, and so the encoder, barely move
(bench/results/swap.md, section 1f). `ModelProcess` starts `python -m renderer.model_process`,
which imports torch and loads the network on the other core while the parent probes, loads dlib
and tracks; batches then go over its stdin/stdout.

Also the network's two jobs, shared by the in-process `SwapModel` and this child:
`load_network` (weights, checked against the card the caller read) and `decode_batches`.

Protocol (never pickle): a message is a 4-byte little-endian header length, a UTF-8 JSON header,
then the raw C-order bytes of the arrays the header lists (`"arrays": [[dtype, [shape]], ...]`).
Parent -> child: first {"op": "load", "model", "device", "upscaler", "weights_sha256", "batch",
"precision", "runtime"};
then {"op": "decode", "decoders": "ba", "threads"} + (N, S, S, 3) uint8 crops, or
{"op": "upscale", "threads"} + (N, S, S, 3) float32. Child -> parent: {"ok": true, "busy": seconds computing it, ...} + arrays,
or {"error": "ModelError" | "InputError", "message"}. At end of input (the parent closed the
pipe, or died) the child exits.
"""

from __future__ import annotations

import collections
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from renderer.errors import InputError, ModelError

if TYPE_CHECKING:  # numpy is imported where arrays are made or read: the CLI spawns the child before numpy loads
    import numpy as np

_ERRORS: dict[str, type[Exception]] = {"ModelError": ModelError, "InputError": InputError}


# ---------------------------------------------------------------- the network's jobs (torch)

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")


def native_bf16(device: Any) -> bool:
    """Whether `device` (a torch.device, or "cpu") computes bfloat16 natively: CUDA that supports it, or
    a CPU with AMX-BF16 or AVX512-BF16 (Linux: /proc/cpuinfo). Elsewhere bf16 is emulated, slower than fp32."""
    kind = device if isinstance(device, str) else device.type
    if kind == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    if kind != "cpu":
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def gpu_likely() -> bool:
    """Whether torch's `pick_device` could find a GPU here, told without importing torch: an Apple
    machine (MPS), or a CUDA or ROCm build of torch beside a GPU driver's device node."""
    import importlib.util
    import platform

    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    try:
        version = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return True  # unknown build: let torch decide
    builds_gpu = any(line.split("=", 1)[1].strip() not in ("None", "")
                     for line in version.splitlines() if line.startswith(("cuda", "hip")) and "=" in line)
    return builds_gpu and any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd"))


def runtime_of(network: Any) -> str:
    """"openvino" or "onnxruntime" for an `onnx_network` graph network, "torch" for the SwapAutoencoder."""
    from renderer.onnx_network import OnnxNetwork

    return network.engine if isinstance(network, OnnxNetwork) else "torch"


def resolve_runtime(runtime: str, device: str | None, precision: str, upscaler: bool) -> str:
    """"torch", "openvino" or "onnxruntime": what runs the swap network. auto is OpenVINO
    (`renderer.onnx_network`: no torch import, ~1 CPU s less at the start, a batch ~0.6x torch's
    time at bf16) wherever the network runs on the CPU without B's face upscaler, at either
    precision; ONNX Runtime there at fp32 when OpenVINO is not installed; torch elsewhere (a GPU,
    the upscaler, neither installed). InputError for an unknown name, or for a runtime asked where
    it cannot run."""
    from renderer import onnx_network

    if runtime not in RUNTIMES:
        raise InputError(f"runtime={runtime!r} is not allowed (allowed: {', '.join(RUNTIMES)})")
    cpu = device == "cpu" or (device is None and not gpu_likely())
    fp32 = precision == "fp32" or (precision == "auto" and not native_bf16("cpu"))
    bf16_native = precision != "bf16" or native_bf16("cpu")  # OpenVINO does not emulate bf16 as torch does
    fits = {"openvino": cpu and bf16_native and not upscaler, "onnxruntime": cpu and fp32 and not upscaler}
    if runtime in fits and not (fits[runtime] and onnx_network.available(runtime)):
        limits = {"openvino": "the network on the CPU (bf16 where the CPU computes it) without B's face upscaler",
                  "onnxruntime": "the network fp32 on the CPU without B's face upscaler"}
        why = (f"it is not installed (pip install {runtime})" if not onnx_network.available(runtime) else
               f"it runs {limits[runtime]} only (asked: device {device or 'auto'}, precision {precision}, "
               f"upscaler {'on' if upscaler else 'off'})")
        raise InputError(f"runtime {runtime} cannot run this swap: {why}; use runtime torch or auto")
    if runtime == "auto":
        return next((r for r in onnx_network.ENGINES if fits[r] and onnx_network.available(r)), "torch")
    return runtime


def resolve_precision(precision: str, device: Any) -> str:
    """"fp32" or "bf16": `precision` ("auto", "fp32", "bf16") on `device`; auto is bf16 where native."""
    if precision not in ("auto", "fp32", "bf16"):
        raise InputError(f"precision={precision!r} is not allowed (allowed: auto, fp32, bf16)")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def load_network(model_dir: Path, device: str | None, card: Any, upscaler: bool,
                 precision: str = "fp32", runtime: str = "auto") -> tuple[Any, Any, Any, str]:
    """(the network, its device, B's upscaler or None, the precision it runs at), on `runtime`
    (`resolve_runtime`): an `onnx_network` graph network (OpenVINO or ONNX Runtime) and "cpu" (no
    torch import), or the eval-mode
    SwapAutoencoder and its torch.device. At bf16 the network's weights are bfloat16, channels-last
    (oneDNN's AMX kernels; about half fp32's time on such a CPU, bench/results/precision.md), but for the decoders' output layers;
    the upscaler stays fp32. ModelError
    when the folder now holds another save than the one `card` was read from."""
    from renderer.checkpoint import model_files

    resolved = resolve_runtime(runtime, device, precision, upscaler)
    if resolved != "torch":
        from renderer.onnx_network import OnnxNetwork, OpenVinoNetwork

        graph_precision = resolve_precision(precision, "cpu")
        network_class = OpenVinoNetwork if resolved == "openvino" else OnnxNetwork
        network = network_class.load(model_files(model_dir), card.weights_sha256, card.config, graph_precision)
        return network, "cpu", None, graph_precision
    import torch

    from renderer.model import load_model, pick_device

    dev = pick_device(device)
    network, loaded = load_model(model_dir, dev)
    if (loaded.weights_sha256, loaded.config) != (card.weights_sha256, card.config):
        raise ModelError(f"model {model_dir} was replaced while it loaded (a new save?); run again")
    precision = resolve_precision(precision, dev)
    if precision == "bf16":
        network = network.to(torch.bfloat16).to(memory_format=torch.channels_last)
        for decoder in (network.decoder_a, network.decoder_b):  # the output layer stays float32 (~6 % of
            decoder.out.float()  # the decoder's work): the face's values are not rounded to 8 bits
    up = None
    if upscaler:
        from renderer.upscale import load_upscaler

        assert card.upscaler is not None
        up = load_upscaler(model_files(model_dir), card.upscaler, card.weights_sha256, dev)
    return network, dev, up, precision


def set_threads(threads: int | None) -> int | None:
    """Set torch's thread count for the calling thread; the count before, when it changed (else None)."""
    import torch

    if threads is None or torch.get_num_threads() == threads:
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


def decode_batches(network: Any, device: Any, crops: np.ndarray, decoders: str, batch: int,
                   learns_mask: bool, threads: int | None = None) -> list[np.ndarray]:
    """(N, S, S, 3) uint8 crops through the encoder once and each decoder named in `decoders`
    ("a", "b", "ba", ...), in fixed-shape batches of `batch` rows (zero-padded, so a face's output
    does not depend on the faces beside it). Per decoder: (N, S, S, 3) float32 RGB in [0, 1], then
    (N, S, S) float32 learned mask when `learns_mask`. `threads`: a graph network's intra-op
    threads (None: ONNX Runtime's own); torch's are the calling thread's (`set_threads`)."""
    import numpy as np

    n, size = len(crops), crops.shape[1]
    if runtime_of(network) != "torch":
        outs_onnx = [np.empty((n, size, size, 4 if learns_mask else 3), np.float32) for _ in decoders]
        for lo in range(0, n, batch):
            part = crops[lo:lo + batch]
            padded = np.zeros((batch, size, size, 3), np.uint8)
            padded[: len(part)] = part
            for out, y in zip(outs_onnx, network.run(padded, decoders, threads)):
                out[lo:lo + len(part)] = y[: len(part)]
        if not learns_mask:
            return outs_onnx
        return [np.ascontiguousarray(a) for out in outs_onnx for a in (out[..., :3], out[..., 3])]
    import torch

    dtype = next(network.parameters()).dtype  # float32, or bfloat16 (channels-last weights)
    layout = torch.channels_last if dtype == torch.bfloat16 else torch.contiguous_format
    outs = [(np.empty((n, size, size, 3), np.float32),
             np.empty((n, size, size), np.float32) if learns_mask else None) for _ in decoders]
    nets = {"a": network.decoder_a, "b": network.decoder_b}
    with torch.inference_mode():
        for lo in range(0, n, batch):
            part = crops[lo:lo + batch]
            padded = np.zeros((batch, size, size, 3), np.uint8)
            padded[: len(part)] = part
            x = torch.from_numpy(padded).to(device).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S)
            if dtype != torch.float32:
                x = x.to(dtype).contiguous(memory_format=layout)
            z = network.encoder(x)  # (B, C, 8, 8)
            for (rgb, mask), name in zip(outs, decoders):
                y = nets[name](z).float().cpu()  # (B, 3|4, S, S) in [0, 1]
                rgb[lo:lo + len(part)] = y[: len(part), :3].permute(0, 2, 3, 1).numpy()
                if mask is not None:
                    mask[lo:lo + len(part)] = y[: len(part), 3].numpy()
    return [a for pair in outs for a in pair if a is not None]


# ---------------------------------------------------------------- messages

def write_message(stream: IO[bytes], header: dict[str, Any], arrays: tuple[np.ndarray, ...] = ()) -> None:
    import numpy as np

    header = {**header, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}
    head = json.dumps(header).encode()
    stream.write(struct.pack("<I", len(head)) + head)
    for a in arrays:
        stream.write(np.ascontiguousarray(a).data)
    stream.flush()


def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    data = stream.read(n)
    if len(data) == n:
        return data
    if not data:
        return None
    raise ModelError(f"model process: a message was cut short ({len(data)} of {n} bytes)")


def read_message(stream: IO[bytes]) -> tuple[dict[str, Any], list[np.ndarray]] | None:
    """(header, arrays), or None at end of input (before a message starts)."""
    import numpy as np

    size = _read_exactly(stream, 4)
    if size is None:
        return None
    head = _read_exactly(stream, struct.unpack("<I", size)[0])
    if head is None:
        raise ModelError("model process: a message header was cut short")
    header = json.loads(head)
    arrays = []
    for dtype, shape in header.pop("arrays"):
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        data = _read_exactly(stream, nbytes) if nbytes else b""
        if data is None:
            raise ModelError("model process: a message's arrays were cut short")
        arrays.append(np.frombuffer(data, dt).reshape(shape))
    return header, arrays


# ---------------------------------------------------------------- the parent's side

class ModelProcess:
    """A child process holding one swap network (see the module doc); `start` returns at once.

    `ready()` waits for the load and raises its ModelError / InputError. `decode` (a ticket for
    `result`: the child computes while the caller goes on) and `upscale` are `decode_batches` and
    `renderer.upscale.upscale_crops` run there. `close()` ends it.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._model_dir: Path | None = None  # set by `load`
        self._ready: dict[str, Any] | None = None
        self._failed: Exception | None = None  # the load's error, raised again on every later call
        self._sent: collections.deque[int] = collections.deque()  # tickets sent, answers not yet read
        self._answers: dict[int, list[np.ndarray]] = {}  # answers read, not yet taken
        self._tickets = 0
        self.busy_seconds = 0.0  # the child's time computing the answers read so far

    @classmethod
    def spawn(cls, runtime: str = "auto", precision: str = "auto", device: str | None = None) -> ModelProcess:
        """A child that starts importing its runtime now and loads a model once told which (`load`):
        the CLI spawns it before it imports the command's own modules, or numpy. It imports the
        runtime that `runtime`, `precision` and `device` resolve to (`resolve_runtime`; the settings
        the load will most likely give; values it refuses count as auto); a load that needs the
        other runtime imports that one too."""
        root = str(Path(__file__).resolve().parents[1])  # the folder holding `renderer`
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        return cls(subprocess.Popen([sys.executable, "-m", "renderer.model_process", runtime, precision, device or ""],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True))

    @classmethod
    def start(cls, model_dir: Path, device: str | None, card: Any, upscaler: bool, batch: int,
              precision: str = "fp32", runtime: str = "auto") -> ModelProcess:
        """`spawn` and `load` in one."""
        return cls.spawn().load(model_dir, device, card, upscaler, batch, precision, runtime)

    @property
    def loading(self) -> bool:
        """Whether `load` was called (a spawned child that never got a model holds nothing)."""
        return self._model_dir is not None

    def load(self, model_dir: Path, device: str | None, card: Any, upscaler: bool, batch: int,
             precision: str = "fp32", runtime: str = "auto") -> ModelProcess:
        """Tell the child which model to load (once); `ready` waits for it. Returns self."""
        if self._model_dir is not None:
            raise ModelError(f"this model process already loads {self._model_dir}")
        self._model_dir = Path(model_dir)
        assert self._proc.stdin is not None
        try:
            write_message(self._proc.stdin, {"op": "load", "model": str(model_dir), "device": device,
                                             "upscaler": upscaler, "weights_sha256": card.weights_sha256,
                                             "batch": batch, "precision": precision, "runtime": runtime})
        except BrokenPipeError:
            pass  # it died: `ready` says so
        return self

    def _reply(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        assert self._proc.stdout is not None
        try:
            msg = read_message(self._proc.stdout)
        except ModelError:
            msg = None
        if msg is None:
            code = self._proc.wait()
            raise ModelError(f"the model process for {self._model_dir or 'a model'} ended (exit status {code}) "
                             f"before it answered; its error, if any, is above")
        header, arrays = msg
        if "error" in header:
            raise _ERRORS.get(header["error"], ModelError)(header["message"])
        return header, arrays

    @property
    def answered(self) -> bool:
        """Whether the load's answer has been read (`ready` would not wait)."""
        return self._ready is not None

    def ready(self) -> dict[str, Any]:
        """The load's answer ({"device": str, "loaded_at": monotonic seconds}); waits for it."""
        if self._failed is not None:
            raise self._failed
        if self._ready is None:
            try:
                self._ready = self._reply()[0]
            except (ModelError, InputError) as err:
                self._failed = err
                raise
        return self._ready

    def submit(self, header: dict[str, Any], array: np.ndarray) -> int:
        """Send one request; returns its ticket for `result`, at once: the child works on it while
        the caller goes on. Every earlier answer is read (and kept) first, so the two sides are
        never both writing a message bigger than a pipe holds (no deadlock)."""
        self.ready()
        while self._sent:
            self._read_answer()
        assert self._proc.stdin is not None
        try:
            write_message(self._proc.stdin, header, (array,))
        except BrokenPipeError:
            pass  # it died: `result` says so
        self._sent.append(self._tickets)
        self._tickets += 1
        return self._tickets - 1

    def result(self, ticket: int) -> list[np.ndarray]:
        """The arrays answering request `ticket` (waits for them)."""
        while ticket not in self._answers:
            if not self._sent:
                raise ModelError(f"model process: no request {ticket} is waiting for its answer")
            self._read_answer()
        return self._answers.pop(ticket)

    def _read_answer(self) -> None:
        """Read the oldest request's answer and keep it; count the seconds the child worked on it."""
        ticket = self._sent.popleft()
        header, arrays = self._reply()
        self.busy_seconds += float(header.get("busy", 0.0))
        self._answers[ticket] = arrays

    def decode(self, crops: np.ndarray, decoders: str, threads: int | None) -> int:
        """Ticket of `decode_batches(crops, decoders)` run there."""
        return self.submit({"op": "decode", "decoders": decoders, "threads": threads}, crops)

    def upscale(self, crops: np.ndarray, threads: int | None) -> np.ndarray:
        return self.result(self.submit({"op": "upscale", "threads": threads}, crops))[0]

    def peak_rss_mib(self) -> float | None:
        """The child's peak resident memory so far (MiB), None once it has ended or where unknown."""
        from renderer.pipeline import peak_rss_mib

        return peak_rss_mib(self._proc.pid) if self._proc.poll() is None else None

    def close(self) -> None:
        """End the child and reap it: one that never got a model, or whose load was never awaited
        (an early error), is killed (it writes nothing); a loaded one sees its input end and exits
        (killed if it has not within 10 s)."""
        if self._proc.poll() is None and (self._ready is None or self._sent):
            self._proc.kill()
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


# ---------------------------------------------------------------- the child's side

def serve(inp: IO[bytes], out: IO[bytes], runtime: str = "auto", precision: str = "auto",
          device: str | None = None) -> int:
    """The child's loop: the runtime the swap most likely uses (`runtime`, `precision`, `device`
    resolved as `resolve_runtime` does; auto's pick where it refuses them) imported at once, before
    the parent says which model (it may not know yet; torch is the slow part of start-up), then the
    load message, then one answer per request until end of input."""
    try:
        preload = resolve_runtime(runtime, device, precision, False)
    except InputError:  # the command refuses such values itself
        preload = resolve_runtime("auto", None, "auto", False)
    if preload == "torch":
        import renderer.model  # noqa: F401
    elif preload == "openvino":
        from renderer.onnx_network import import_openvino

        import_openvino()
    else:
        import onnxruntime  # noqa: F401

    first = read_message(inp)
    if first is None:
        return 0
    load = first[0]
    try:
        from renderer.modelcard import load_model_card

        model_dir = Path(load["model"])
        card = load_model_card(model_dir)
        if card.weights_sha256 != load["weights_sha256"]:
            raise ModelError(f"model {model_dir} was replaced while it loaded (a new save?); run again")
        network, device, upscaler, precision = load_network(model_dir, load["device"], card, bool(load["upscaler"]),
                                                            load.get("precision", "fp32"), load.get("runtime", "auto"))
    except (ModelError, InputError) as err:
        write_message(out, {"error": type(err).__name__, "message": str(err)})
        return 1
    write_message(out, {"ok": True, "device": str(device), "precision": precision, "loaded_at": time.monotonic(),
                        "runtime": runtime_of(network)})
    learns_mask, batch = bool(card.config.learn_mask), int(load["batch"])
    while (msg := read_message(inp)) is not None:
        header, (array,) = msg
        t0 = time.perf_counter()
        threads = header.get("threads")
        if runtime_of(network) == "torch":  # torch's threads are the calling thread's
            set_threads(threads)
        if header["op"] == "decode":
            outs = decode_batches(network, device, array, header["decoders"], batch, learns_mask, threads)
        else:
            from renderer.upscale import upscale_crops

            outs = [upscale_crops(upscaler, array, batch)]
        write_message(out, {"ok": True, "busy": time.perf_counter() - t0}, tuple(outs))
    return 0


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr; stdout carries only messages
    runtime, precision, device = sys.argv[1:4] if len(sys.argv) >= 4 else ("auto", "auto", "")  # from `spawn`
    code = serve(sys.stdin.buffer, out, runtime, precision, device or None)
    # Every answer is written and flushed, and the child holds no file of its own: it leaves without
    # the interpreter's teardown of torch, which kept the parent's close() (and so the end of every
    # swap) waiting ~0.3 s (bench/results/swap.md, 1h).
    for stream in (out, sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
