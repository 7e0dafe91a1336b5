"""The swap network for inference without torch: an ONNX graph written from the safetensors weights,
run on the CPU by OpenVINO (`OpenVinoNetwork`, fp32 or bf16) or ONNX Runtime (`OnnxNetwork`, fp32).

torch's import costs a swap ~1.3 CPU s before its first batch (most of the model process's start).
OpenVINO imports and compiles this graph in ~0.45 CPU s and runs it faster than torch's oneDNN: `lite`,
8 crops through the encoder and both decoders on one thread, 2.9 ms a crop at bf16 against torch's
4.8, 5.4 at fp32 against torch's and ONNX Runtime's 7.6 (bench/results/swap.md, section 1s). ONNX
Runtime imports in ~0.2 s and, with the decoders' last layer rewritten (`space_to_depth_conv`), runs
at about torch's fp32 speed; it stays for machines without OpenVINO (bench/results/swap.md, 1i).

The graph is the `renderer.model` network layer by layer (the same convolutions, LeakyReLU 0.1, pixel
shuffle as DepthToSpace CRD, the dense layers as Gemm), built here in memory from the weights the
card names: no exported file, nothing unpickled, no `onnx` package (the few protobuf messages a
graph needs are written by `_Proto` below). Its input is the
aligned crops as they are cut, (B, S, S, 3) uint8, and each decoder's output comes back (B, S, S, C)
float32 in [0, 1], so the conversions `model_process.decode_batches` does around torch run inside the
graph. At fp32, outputs match torch's within float32 rounding (2e-6, tests/test_onnx_network.py); a
swap's frames are torch's but for the few values that rounding moves across an 8-bit step (3 at
most). At bf16 they are as far from torch's fp32 as torch's own bf16 is (a few 8-bit steps).

`available(engine)` says whether a runtime is installed; `OnnxNetwork.load` / `OpenVinoNetwork.load`
read the weights.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import numpy as np

from renderer.errors import ModelError
from renderer.model_config import WEIGHTS_NAME, ModelConfig

OPSET = 17
FLOAT, UINT8, INT64 = 1, 2, 7  # TensorProto.DataType


ENGINES = ("openvino", "onnxruntime")  # the runtimes that run this module's graph


def import_openvino() -> Any:
    """The `openvino` module, imported without its usage telemetry. `import openvino` runs
    `openvino.tools.ovc`, which sends a Google Analytics event on every import through the
    openvino-telemetry package (a dependency of the wheel, on unless a consent file says no), counts
    imports in ~/intel/, and sends from a process it forks off a thread: here that fork hung, and a
    swap's model process outlived its render. With `openvino_telemetry` unimportable while the package
    loads, OpenVINO falls back to its own no-op stub: nothing is sent or written
    (tests/test_onnx_network.py)."""
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = "openvino_telemetry" not in sys.modules
    if blocked:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import an ImportError
    try:
        import openvino
    finally:
        if blocked and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]
    return openvino


def available(engine: str = "onnxruntime") -> bool:
    """Whether `engine` ("openvino" or "onnxruntime") can be imported here (without importing it:
    that is the network classes' job)."""
    import importlib.util

    return importlib.util.find_spec(engine) is not None


# ---------------------------------------------------------------- protobuf, the few messages ONNX needs

class _Proto:
    """Protobuf wire format for ONNX's ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto
    and ValueInfoProto (field numbers from onnx.proto3, ONNX's published schema)."""

    @staticmethod
    def varint(n: int) -> bytes:
        n &= (1 << 64) - 1  # negative int64s are ten-byte two's complement
        out = bytearray()
        while True:
            low, n = n & 0x7F, n >> 7
            out.append(low | (0x80 if n else 0))
            if not n:
                return bytes(out)

    @classmethod
    def integer(cls, field: int, value: int) -> bytes:
        return cls.varint(field << 3) + cls.varint(int(value))

    @classmethod
    def chunk(cls, field: int, data: bytes | str) -> bytes:
        raw = data.encode() if isinstance(data, str) else data
        return cls.varint(field << 3 | 2) + cls.varint(len(raw)) + raw

    @classmethod
    def tensor(cls, name: str, array: np.ndarray) -> bytes:
        array = np.ascontiguousarray(array)
        kind = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64}[array.dtype]
        return (b"".join(cls.integer(1, d) for d in array.shape) + cls.integer(2, kind) + cls.chunk(8, name)
                + cls.chunk(9, array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()))

    @classmethod
    def attribute(cls, name: str, value: float | int | str | list[int]) -> bytes:
        if isinstance(value, str):  # STRING = 3
            return cls.chunk(1, name) + cls.chunk(4, value) + cls.integer(20, 3)
        if isinstance(value, float):  # FLOAT = 1
            return cls.chunk(1, name) + cls.varint(2 << 3 | 5) + struct.pack("<f", value) + cls.integer(20, 1)
        if isinstance(value, int):  # INT = 2
            return cls.chunk(1, name) + cls.integer(3, value) + cls.integer(20, 2)
        return cls.chunk(1, name) + b"".join(cls.integer(8, v) for v in value) + cls.integer(20, 7)  # INTS

    @classmethod
    def node(cls, op: str, inputs: Iterable[str], output: str, **attributes: float | int | str | list[int]) -> bytes:
        return (b"".join(cls.chunk(1, i) for i in inputs) + cls.chunk(2, output) + cls.chunk(3, output)
                + cls.chunk(4, op) + b"".join(cls.chunk(5, cls.attribute(k, v)) for k, v in attributes.items()))

    @classmethod
    def value_info(cls, name: str, kind: int, shape: tuple[int, ...]) -> bytes:
        dims = b"".join(cls.chunk(1, cls.integer(1, d)) for d in shape)
        tensor_type = cls.integer(1, kind) + cls.chunk(2, dims)
        return cls.chunk(1, name) + cls.chunk(2, cls.chunk(1, tensor_type))


class GraphBuilder:
    """The nodes and weights of one graph as they are added; `model()` is the serialised ModelProto."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[bytes] = []
        self.initializers: dict[str, bytes] = {}

    def weight(self, name: str, rows: int | None = None) -> str:
        """`name` as an initializer; ValueError when its first dimension is not `rows` (the card's config)."""
        self.check(name, rows)
        if name not in self.initializers:
            self.initializers[name] = _Proto.tensor(name, self.weights[name].astype(np.float32, copy=False))
        return name

    def check(self, name: str, rows: int | None) -> np.ndarray:
        """Weight `name` (KeyError when missing); ValueError when its first dimension is not `rows`."""
        value = self.weights[name]
        if rows is not None and value.shape[0] != rows:
            raise ValueError(f"{name} has {value.shape[0]} rows, the config needs {rows}")
        return value

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers[name] = _Proto.tensor(name, value)
        return name

    def op(self, op: str, inputs: list[str], output: str, **attributes: float | int | str | list[int]) -> str:
        self.nodes.append(_Proto.node(op, inputs, output, **attributes))
        return output

    def conv(self, x: str, prefix: str, k: int, stride: int, groups: int = 1, cout: int | None = None) -> str:
        inputs = [x, self.weight(prefix + ".weight", cout)] + ([self.weight(prefix + ".bias")] if prefix + ".bias" in self.weights else [])
        return self.op("Conv", inputs, prefix, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
                       group=groups)

    def model(self, inputs: list[tuple[str, int, tuple[int, ...]]], outputs: list[tuple[str, int, tuple[int, ...]]]) -> bytes:
        graph = (b"".join(_Proto.chunk(1, n) for n in self.nodes) + _Proto.chunk(2, "doppel-swap")
                 + b"".join(_Proto.chunk(5, t) for t in self.initializers.values())
                 + b"".join(_Proto.chunk(11, _Proto.value_info(*i)) for i in inputs)
                 + b"".join(_Proto.chunk(12, _Proto.value_info(*o)) for o in outputs))
        opset = _Proto.chunk(1, "") + _Proto.integer(2, OPSET)
        return _Proto.integer(1, 8) + _Proto.chunk(2, "doppel") + _Proto.chunk(7, graph) + _Proto.chunk(8, opset)


# ---------------------------------------------------------------- the network as a graph

def space_to_depth_conv(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A stride-1 "same" k x k convolution (k odd; weight (O, C, k, k)) rewritten for its input's 2x2
    space-to-depth (SpaceToDepth, blocksize 2: channel (qy * 2 + qx) * C + c at half size) and an
    output read back by DepthToSpace (DCR, blocksize 2: channel (py * 2 + px) * O + o): (weight
    (4 O, 4 C, t, t), bias (4 O,), pads). The same sums of the same products; only their order of
    addition differs (float32 rounding).

    Why: ONNX Runtime's blocked convolutions pad output channels to 16, so the decoders' last layer
    (24 -> 3 or 4 channels, 5 x 5, at full size) did 4-5 times its work: 8 ms of a 52 ms batch
    per decoder on one thread. Rewritten it has 12 or 16 channels out at a quarter of the pixels."""
    o, c, k, _ = weight.shape
    half = k // 2
    lo, hi = (-half) // 2, (1 + half) // 2  # the half-size offsets a tap can reach
    taps = hi - lo + 1
    out = np.zeros((4 * o, 4 * c, taps, taps), np.float32)
    for py in range(2):
        for px in range(2):
            for dy in range(k):
                for dx in range(k):
                    ry, rx = py + dy - half, px + dx - half  # full-size offset from the output pixel
                    qy, qx = ry % 2, rx % 2  # the input pixel's place in its 2x2 block, and the block's offset:
                    by, bx = (ry - qy) // 2, (rx - qx) // 2
                    out[(py * 2 + px) * o:(py * 2 + px + 1) * o, (qy * 2 + qx) * c:(qy * 2 + qx + 1) * c,
                        by - lo, bx - lo] += weight[:, :, dy, dx]
    return out, np.tile(bias.astype(np.float32), 4), [-lo, -lo, hi, hi]


def swap_graph(cfg: ModelConfig, weights: dict[str, np.ndarray], decoders: str, batch: int) -> bytes:
    """The ONNX ModelProto of `renderer.model.SwapAutoencoder` with config `cfg` and its state dict
    `weights`: input "crops" (batch, S, S, 3) uint8; one output per decoder in `decoders` ("b", "ba"),
    named "out_<decoder>", (batch, S, S, out_channels) float32 in [0, 1]."""
    g = GraphBuilder(weights)
    s = cfg.input_size

    def block(x: str, prefix: str, cin: int, cout: int, k: int, stride: int, separable: bool) -> str:  # renderer.model.conv
        if not separable or cin < 8:
            return g.conv(x, prefix, k, stride, cout=cout)
        return g.conv(g.conv(x, prefix + ".0", k, stride, groups=cin, cout=cin), prefix + ".1", 1, 1, cout=cout)

    def upscale(x: str, prefix: str, cin: int, cout: int, separable: bool) -> str:  # renderer.model.Upscale
        y = g.op("LeakyRelu", [block(x, prefix + ".conv", cin, 4 * cout, 3, 1, separable)], prefix + ".act", alpha=0.1)
        return g.op("DepthToSpace", [y], prefix + ".shuffle", blocksize=2, mode="CRD")

    x = g.op("Cast", ["crops"], "crops.float", to=FLOAT)
    x = g.op("Div", [x, g.constant("255", np.array(255.0, np.float32))], "crops.unit")  # as torch: x / 255
    x = g.op("Transpose", [x], "encoder.input", perm=[0, 3, 1, 2])
    cin = 3
    for i, width in enumerate(cfg.encoder_widths):  # renderer.model.Encoder
        x = g.op("LeakyRelu", [block(x, f"encoder.convs.{2 * i}", cin, width, 5, 2, cfg.separable)], f"encoder.convs.{2 * i + 1}",
                 alpha=0.1)
        cin = width
    x = g.op("Flatten", [x], "encoder.flat", axis=1)
    for dense, rows in (("encoder.dense1", cfg.bottleneck), ("encoder.dense2", cfg.latent_channels * 16)):
        x = g.op("Gemm", [x, g.weight(dense + ".weight", rows), g.weight(dense + ".bias")], dense, transB=1)
    x = g.op("Reshape", [x, g.constant("latent.shape", np.array([-1, cfg.latent_channels, 4, 4], np.int64))],
             "encoder.latent")
    z = upscale(x, "encoder.upscale", cfg.latent_channels, cfg.encoder_upscale, cfg.separable)
    outputs = []
    for d in decoders:  # renderer.model.Decoder
        y, cin = z, cfg.encoder_upscale
        for j, width in enumerate(cfg.decoder_widths):
            y, cin = upscale(y, f"decoder_{d}.ups.{j}", cin, width, False), width
        out = f"decoder_{d}.out"
        w, b, pads = space_to_depth_conv(g.check(out + ".weight", cfg.out_channels), g.check(out + ".bias", None))
        y = g.op("SpaceToDepth", [y], out + ".s2d", blocksize=2)
        y = g.op("Conv", [y, g.constant(out + ".s2d.weight", w), g.constant(out + ".s2d.bias", b)], out + ".conv",
                 kernel_shape=list(w.shape[2:]), strides=[1, 1], pads=pads)
        y = g.op("DepthToSpace", [y], out, blocksize=2, mode="DCR")
        y = g.op("Sigmoid", [y], f"decoder_{d}.sigmoid")
        outputs.append((g.op("Transpose", [y], f"out_{d}", perm=[0, 2, 3, 1]), FLOAT, (batch, s, s, cfg.out_channels)))
    return g.model([("crops", UINT8, (batch, s, s, 3))], outputs)


class OnnxNetwork:
    """A loaded swap network on ONNX Runtime's CPU provider. `run(crops, decoders, threads)` is one
    batch; a session per (decoders, threads, batch size) is built on first use (~0.1 s for `lite`)."""

    engine = "onnxruntime"
    precisions: tuple[str, ...] = ("fp32",)

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray], precision: str = "fp32") -> None:
        if precision not in self.precisions:
            raise ValueError(f"precision {precision!r} on {self.engine} (allowed: {', '.join(self.precisions)})")
        self.config = cfg
        self.precision = precision
        self._weights = weights
        self._sessions: dict[tuple[str, int | None, int], Any] = {}
        self._import_engine()

    def _import_engine(self) -> None:
        import onnxruntime

        self._ort = onnxruntime

    @classmethod
    def load(cls, files: Path, weights_sha256: str | None, cfg: ModelConfig, precision: str = "fp32") -> Self:
        """The network of the save folder `files` (`checkpoint.model_files`) at `precision`; ModelError
        for missing, corrupt or mismatched weights, as `renderer.model.load_model` says them."""
        from safetensors import SafetensorError
        from safetensors.numpy import load as st_load

        path = files / WEIGHTS_NAME
        try:
            blob = path.read_bytes()
        except OSError as err:
            raise ModelError(f"model {files}: {WEIGHTS_NAME} is missing or unreadable ({err})") from err
        if weights_sha256 and hashlib.sha256(blob).hexdigest() != weights_sha256:
            raise ModelError(f"model {files}: {WEIGHTS_NAME} does not match the SHA-256 recorded in model.yaml "
                             f"(corrupt or replaced weights; re-save or retrain)")
        try:
            weights = st_load(blob)
        except (SafetensorError, ValueError) as err:
            raise ModelError(f"model {files}: {WEIGHTS_NAME} is not a readable safetensors file ({err})") from err
        try:
            swap_graph(cfg, weights, "ab", 1)  # every tensor the config needs is there, as wide (cheap: no session)
        except (KeyError, ValueError) as err:
            what = f"missing {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
            raise ModelError(f"model {files}: weights do not fit the config in model.yaml (arch {cfg.arch}): "
                             f"{what}") from err
        return cls(cfg, weights, precision)

    def session(self, decoders: str, threads: int | None, batch: int) -> Any:
        key = (decoders, threads, batch)
        if key not in self._sessions:
            options = self._ort.SessionOptions()
            options.inter_op_num_threads = 1
            if threads is not None:
                options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting beside the render
            try:
                self._sessions[key] = self._ort.InferenceSession(
                    swap_graph(self.config, self._weights, decoders, batch), options,
                    providers=["CPUExecutionProvider"])
            except Exception as err:  # ONNX Runtime's own classes (Fail, InvalidGraph, ...) derive from Exception only
                raise ModelError(f"the model's weights do not fit the config in model.yaml (arch {self.config.arch}): "
                                 f"ONNX Runtime refused the network ({str(err).splitlines()[0][:300]})") from err
        return self._sessions[key]

    def run(self, crops: np.ndarray, decoders: str, threads: int | None) -> list[np.ndarray]:
        """(B, S, S, 3) uint8 -> per decoder (B, S, S, out_channels) float32 in [0, 1]."""
        return self.session(decoders, threads, len(crops)).run([f"out_{d}" for d in decoders], {"crops": crops})


class OpenVinoNetwork(OnnxNetwork):
    """A loaded swap network on OpenVINO's CPU plugin, at `precision` "fp32" or "bf16" (OpenVINO's
    inference precision hint; bf16 where the CPU computes it natively, `model_process.native_bf16`).
    A compiled model per (decoders, threads, batch size) is built on first use (~0.15 s for `lite`).
    Each face's output is the same bits whatever batch it came in (tests/test_onnx_network.py), so
    a farm's chunks and a one-piece render agree."""

    engine = "openvino"
    precisions = ("fp32", "bf16")

    def _import_engine(self) -> None:
        self._ov = import_openvino()
        self._core = self._ov.Core()

    def session(self, decoders: str, threads: int | None, batch: int) -> Any:
        key = (decoders, threads, batch)
        if key not in self._sessions:
            properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                                          "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                                          "ENABLE_CPU_PINNING": False}  # it shares the cores with the render's threads
            if threads is not None:
                properties["INFERENCE_NUM_THREADS"] = threads
            try:
                graph = self._core.read_model(model=swap_graph(self.config, self._weights, decoders, batch),
                                              weights=self._ov.Tensor(np.empty(0, np.uint8)))
                compiled = self._core.compile_model(graph, "CPU", properties)
            except RuntimeError as err:  # OpenVINO's errors are RuntimeErrors with the plugin's text
                raise ModelError(f"the model's weights do not fit the config in model.yaml (arch {self.config.arch}): "
                                 f"OpenVINO refused the network ({str(err).splitlines()[0][:300]})") from err
            self._sessions[key] = (compiled.create_infer_request(), [compiled.output(f"out_{d}") for d in decoders])
        return self._sessions[key]

    def run(self, crops: np.ndarray, decoders: str, threads: int | None) -> list[np.ndarray]:
        """(B, S, S, 3) uint8 -> per decoder (B, S, S, out_channels) float32 in [0, 1] (`infer` returns
        arrays of their own, not views of the request's buffers)."""
        request, outputs = self.session(decoders, threads, len(crops))
        results = request.infer({"crops": crops})
        return [results[out] for out in outputs]
