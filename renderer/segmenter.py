"""The occluder segmenter of `occlusion: learned` (issue 17 item 1): a small U-Net that marks, in an
aligned face crop, the pixels where something stands in front of the face.

Why a network of its own. The first `learned` mode read the swap decoder's learned-mask channel,
trained with pasted occluders: after 40 CPU minutes it still drew the face outline (an occluder has
to pass through the swap model's 256-wide bottleneck, and the few occluded pixels weigh little in
its loss; bench/results/occlusion.md). The rebuild error of `occlusion: reconstruction` cannot tell
an occluder over an eye from an eye the decoder misses on a new pose (bench/results/quality.md). The
segmenter is DeepFaceLab's XSeg idea trained from nothing downloaded: a fully convolutional net that
sees the crop at full resolution, with skip connections, trained only to say "occluder or not" on
the model's own facesets with occluders pasted over them (`renderer.train_segmenter`).

Network (input S x S, S the swap model's input size, a multiple of 8; widths w0..w3):

    e0 = act(conv3(x, w0))                              S
    e1 = act(conv3(act(conv3/2(e0, w1)), w1))           S/2     conv3/2: 3x3, stride 2
    e2 = act(conv3(act(conv3/2(e1, w2)), w2))           S/4
    e3 = act(conv3(act(conv3/2(e2, w3)), w3))           S/8
    d2 = act(conv3([shuffle(act(conv3(e3, 4 w2))), e2], w2))    back to S/4, and so on to S
    p  = sigmoid(conv3(d0, 1))                          occluder probability, (S, S)

act is LeakyReLU 0.1, shuffle a 2x pixel shuffle; (16, 32, 48, 64) wide it has ~0.3 M weights and
costs ~0.1 GMAC a 64 px crop.

At swap time it runs here, in the render's own process, on ONNX Runtime's CPU provider (one thread,
no torch import): the graph is written from the safetensors weights by `segmenter_graph` with
`renderer.onnx_network.GraphBuilder`, as the swap network's is. It replaces the source decoder's pass
that `reconstruction` needs. On disk: MODEL_DIR/segmenter.safetensors beside the swap model, in the
same atomic generation as a model card with a `segmenter:` section (`SegmenterCard`: which of the
model's own facesets it learned from and their SHA-256s, the texture photos, iterations, losses,
its IoU on held-out synthetic occluders). By default it learns from the model's own facesets, which
the card's rights cover; other facesets need a `rights` statement of their own, kept in the section. Retraining the swap model drops it with the upscaler and the error prior.

Convention: crops (N, S, S, 3) uint8 RGB as they are cut; output (N, S, S) float32 in [0, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from renderer.errors import InputError, ModelError

SEGMENTER_NAME = "segmenter.safetensors"
# Training iterations by default (`doppel train-segmenter`). 6000 rather than 3000: occluder IoU 0.964 vs
# 0.925 on held-out footage, 0.946 vs 0.860 on kphotoalbum (bench/results/quality.md,
# occlusion_segmenter.md); ~20 min on one CPU thread.
DEFAULT_ITERATIONS = 6000
# Crops per ONNX Runtime run. One: a face's map never depends on the faces beside it, nothing is padded, and
# it costs no more a face than batches of 8 (3.7 ms a 64 px crop on one thread either way, measured here).
BATCH = 1


@dataclass(frozen=True)
class SegmenterConfig:
    """size: the crop side it reads (the swap model's input size); widths: channels at S, S/2, S/4, S/8."""

    size: int = 64
    widths: tuple[int, int, int, int] = (16, 32, 48, 64)

    def validate(self) -> None:
        if not isinstance(self.size, int) or self.size % 8 or not 32 <= self.size <= 512:
            raise InputError(f"segmenter size {self.size!r} is not allowed (allowed: a multiple of 8 from 32 to 512)")
        if len(self.widths) != 4 or not all(isinstance(w, int) and 4 <= w <= 256 for w in self.widths):
            raise InputError(f"segmenter widths {self.widths!r} are not allowed (allowed: four integers from 4 to 256)")

    def layers(self) -> list[tuple[str, int, int, int]]:
        """(name, in channels, out channels, stride) of every 3x3 convolution, in order: the weights'
        names are `<name>.weight` / `<name>.bias` in torch's state dict and in the file."""
        w0, w1, w2, w3 = self.widths
        out = [("e0", 3, w0, 1)]
        for i, (cin, cout) in enumerate(((w0, w1), (w1, w2), (w2, w3)), start=1):
            out += [(f"e{i}.down", cin, cout, 2), (f"e{i}.conv", cout, cout, 1)]
        for i, (cin, cout) in zip((2, 1, 0), ((w3, w2), (w2, w1), (w1, w0))):
            out += [(f"d{i}.up", cin, 4 * cout, 1), (f"d{i}.conv", 2 * cout, cout, 1)]
        return out + [("head", w0, 1, 1)]


@dataclass(frozen=True)
class SegmenterCard:
    """The model card's `segmenter:` section."""

    config: SegmenterConfig
    facesets: tuple[str, ...]  # paths of the model's facesets it learned from
    facesets_sha256: tuple[str, ...]  # SHA-256 of each one's faceset.json (all listed on the card)
    faces: int
    photos: tuple[str, ...]  # names of the face-free photos its occluder textures were cut from
    iterations: int
    loss_first: float
    loss_last: float
    loss: str  # what was minimised
    synthetic_iou: float  # IoU (prob > 0.5 vs truth, inside the face) on held-out synthetic occluders
    rights: str  # "" when every faceset is one the model card lists; else whose faces, under what rights
    weights_sha256: str  # of segmenter.safetensors
    train_seconds: float = 0.0
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["config"] = {"size": self.config.size, "widths": list(self.config.widths)}
        for key in ("facesets", "facesets_sha256", "photos"):
            d[key] = list(d[key])
        return d

    @staticmethod
    def from_dict(data: Any) -> SegmenterCard:
        if not isinstance(data, dict):
            raise ValueError(f"segmenter must be a mapping, got {data!r}")
        kw = dict(data)
        c = kw["config"]
        kw["config"] = SegmenterConfig(int(c["size"]), tuple(int(w) for w in c["widths"]))  # type: ignore[arg-type]
        for key in ("facesets", "facesets_sha256", "photos"):
            kw[key] = tuple(str(v) for v in kw[key])
        return SegmenterCard(**kw)


def segmenter_graph(cfg: SegmenterConfig, weights: dict[str, np.ndarray], batch: int) -> bytes:
    """The ONNX ModelProto of the segmenter with `weights` (its state dict as numpy): input "crops"
    (batch, S, S, 3) uint8, output "occluder" (batch, S, S) float32 in [0, 1]. KeyError for a missing
    weight, ValueError for one whose width does not fit `cfg`."""
    from renderer.onnx_network import FLOAT, UINT8, GraphBuilder

    g = GraphBuilder(weights)
    widths = {name: cout for name, _, cout, _ in cfg.layers()}
    strides = {name: stride for name, _, _, stride in cfg.layers()}

    def conv(x: str, name: str, act: bool = True) -> str:
        y = g.conv(x, name, 3, strides[name], cout=widths[name])
        return g.op("LeakyRelu", [y], name + ".act", alpha=0.1) if act else y

    s = cfg.size
    x = g.op("Cast", ["crops"], "crops.float", to=FLOAT)
    x = g.op("Div", [x, g.constant("255", np.array(255.0, np.float32))], "crops.unit")
    skips = [conv(g.op("Transpose", [x], "input", perm=[0, 3, 1, 2]), "e0")]
    for i in (1, 2, 3):
        skips.append(conv(conv(skips[-1], f"e{i}.down"), f"e{i}.conv"))
    y = skips[3]
    for i in (2, 1, 0):
        up = g.op("DepthToSpace", [conv(y, f"d{i}.up")], f"d{i}.shuffle", blocksize=2, mode="CRD")
        y = conv(g.op("Concat", [up, skips[i]], f"d{i}.cat", axis=1), f"d{i}.conv")
    p = g.op("Sigmoid", [conv(y, "head", act=False)], "head.sigmoid")
    g.op("Reshape", [p, g.constant("out.shape", np.array([batch, s, s], np.int64))], "occluder")
    return g.model([("crops", UINT8, (batch, s, s, 3))], [("occluder", FLOAT, (batch, s, s))])


class SegmenterRuntime:
    """A loaded segmenter on ONNX Runtime's CPU provider, one intra-op thread (it runs beside the
    render's own threads). `__call__(crops)` gives the occluder probability of every crop."""

    def __init__(self, cfg: SegmenterConfig, weights: dict[str, np.ndarray]) -> None:
        try:
            import onnxruntime
        except ImportError as err:
            raise ModelError("occlusion=learned with a segmenter needs ONNX Runtime (pip install onnxruntime)") from err
        self.config = cfg
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(segmenter_graph(cfg, weights, BATCH), options,
                                                         providers=["CPUExecutionProvider"])
        except (KeyError, ValueError) as err:
            raise ModelError(f"{SEGMENTER_NAME}: weights do not fit the card's segmenter config ({err})") from err
        except Exception as err:  # ONNX Runtime's own error classes derive from Exception only
            raise ModelError(f"{SEGMENTER_NAME}: ONNX Runtime refused the segmenter "
                             f"({str(err).splitlines()[0][:300]})") from err

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, S, S) float32 occluder probability in [0, 1]."""
        n, s = len(crops), self.config.size
        if crops.shape[1:] != (s, s, 3) or crops.dtype != np.uint8:
            raise ModelError(f"segmenter: crops are {crops.shape} {crops.dtype}, it reads (N, {s}, {s}, 3) uint8")
        out = np.empty((n, s, s), np.float32)
        for lo in range(0, n, BATCH):
            part = crops[lo:lo + BATCH]
            if len(part) < BATCH:  # the last, short batch is zero-padded
                part = np.concatenate([part, np.zeros((BATCH - len(part), s, s, 3), np.uint8)])
            out[lo:lo + BATCH] = self._session.run(["occluder"], {"crops": np.ascontiguousarray(part)})[0][: n - lo]
        return out


def read_weights(folder: Path, card: SegmenterCard) -> dict[str, np.ndarray]:
    """The segmenter's weights in a model's files folder, checked against the card (SHA-256, names and
    shapes). ModelError when the file is missing, corrupt, replaced or does not fit."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as np_load

    from renderer.checkpoint import read_beside_model

    redo = "train it again with `doppel train-segmenter`"
    blob = read_beside_model(folder, SEGMENTER_NAME, card.weights_sha256, "a segmenter", redo)
    try:
        weights = np_load(blob)
    except (SafetensorError, ValueError) as err:
        raise ModelError(f"model {folder}: {SEGMENTER_NAME} is not a readable safetensors file ({err}; {redo})") from err
    for name, cin, cout, _ in card.config.layers():
        for key, shape in ((f"{name}.weight", (cout, cin, 3, 3)), (f"{name}.bias", (cout,))):
            got = weights.get(key)
            if got is None or got.shape != shape or got.dtype != np.float32:
                what = "missing" if got is None else f"{got.shape} {got.dtype}"
                raise ModelError(f"model {folder}: {SEGMENTER_NAME} does not fit its card: {key} is {what}, the "
                                 f"config needs {shape} float32 ({redo})")
    return weights


def load_segmenter(folder: Path, card: SegmenterCard) -> SegmenterRuntime:
    """The segmenter of a model's files folder (`checkpoint.model_files`), ready to run."""
    return SegmenterRuntime(card.config, read_weights(folder, card))


__all__ = ["BATCH", "SEGMENTER_NAME", "SegmenterCard", "SegmenterConfig", "SegmenterRuntime", "load_segmenter",
           "read_weights", "segmenter_graph"]
