"""dlib's shape predictors (ensembles of regression trees, Kazemi and Sullivan 2014) evaluated in numpy,
from arrays cached once per machine.

dlib reads its 100 MB 68-point model float by float, 0.5-0.9 s that hold the GIL at the start of every
process that finds landmarks: in a swap, the main thread can track nothing meanwhile and the encoder
waits (bench/results/swap.md, section 1i). `parse` reads dlib's serialization of the same model into
arrays (~3 s, once: they are cached beside the HOG detector in a flat file of their own, mapped and
checked in ~30 ms, where numpy's .npz reader took 0.5 s of the render's start), and
`ShapeModel` runs dlib's algorithm on them step for step:

- per cascade, the similarity transform from the mean shape to the current one (Umeyama's least
  squares, closed form for 2-D, in float64 then float32 as dlib's `find_tform_between_shapes`);
- the feature pixels: each anchor landmark plus its transformed offset, mapped into the face box
  (float64), rounded to the nearest pixel; a pixel's intensity is (R + G + B) // 3, 0 off the picture;
- each tree's splits (intensity difference > threshold: left child) and leaf, the leaves added to
  the shape in tree order in float32 (numpy's reduce over the first axis adds row after row).

The points are dlib's, bit for bit, on the real faces the tests compare (tests/faces/test_shape_model.py).

The cascade loop runs in C where `pip install` could build `_cascade` (faces/_cascade.c: the same
arithmetic, so the same bits; without the GIL), in numpy otherwise (`ShapeModel(arrays, compiled=False)`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from renderer.errors import ModelError

try:  # the cascade in C (faces/_cascade.c, built by pip install where a C compiler is found)
    from renderer.faces import _cascade
except ImportError:  # pragma: no cover - an install without a compiler: numpy alone
    _cascade = None

FORMAT = 2  # of the cached arrays; a new one is written when this changes
_ARRAYS = ("initial", "idx1", "idx2", "thresh", "leaves", "anchors", "deltas")
_MAGIC = b"doppel shape arrays\n"
_ALIGN = 64


class _Reader:
    """dlib's serialization (dlib/serialize.h) of integers and floats, read from `data` at `pos`.

    An integer is a byte holding its length in bytes (low 4 bits) and its sign (bit 7), then its
    magnitude little-endian; a float is two integers, mantissa and exponent (value = m * 2**e)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self) -> int:
        head = self.data[self.pos]
        n = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1: self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return float(np.ldexp(np.float64(mantissa), self.int()))

    def column(self) -> list[float]:
        """A dlib matrix<float,0,1>: -rows, -1, then the values."""
        rows, cols = -self.int(), -self.int()
        if cols != 1 or rows < 0:
            raise ValueError(f"expected a column vector at byte {self.pos}, got {rows}x{cols}")
        return [self.float() for _ in range(rows)]


def _leaf_columns(data: bytes, length: int) -> tuple[dict[int, tuple[int, int]], np.ndarray]:
    """Every float column of `length` rows in `data`, decoded side by side: {start byte: (row, end
    byte)}, and the (n, length) float32 values. dlib writes a leaf as a length-prefixed column of floats of
    varying byte sizes, so a leaf's end is known only by reading it; there are 120 000 of them in
    the 68-point model, read one float a step across all at once (a Python loop over 16 M floats
    would take a minute). Starts are found by the column header's bytes; a match inside another
    leaf's bytes decodes to nonsense that nothing looks up."""
    marker = bytes([0x81, length]) + bytes([0x81, 0x01]) if length < 256 else None
    if marker is None:
        raise ValueError(f"columns of {length} rows are not supported")
    b = np.frombuffer(data + bytes(16), np.uint8)  # padded: a false match near the end reads zeros
    starts = np.array([m.start() for m in re.finditer(re.escape(marker), data)], np.int64)
    pos = starts + len(marker)
    values = np.empty((len(starts), length), np.float32)
    for k in range(length):
        parts = []
        for _ in range(2):  # mantissa, exponent
            head = b[pos].astype(np.int64)
            n = head & 0x0F
            v = np.zeros(len(pos), np.int64)
            for j in range(8):
                v |= np.where(j < n, b[np.minimum(pos + 1 + j, len(b) - 1)], 0).astype(np.int64) << (8 * j)
            parts.append(np.where(head & 0x80, -v, v))
            pos = pos + 1 + n
        values[:, k] = np.ldexp(parts[0].astype(np.float64), parts[1]).astype(np.float32)
    return {int(s): (i, int(e)) for i, (s, e) in enumerate(zip(starts, pos))}, values


def parse(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a serialized dlib shape_predictor (dlib/image_processing/shape_predictor.h: version
    1, the mean shape, the cascades' forests of trees, the feature pixels' anchor landmarks and
    offsets). ValueError when `data` is not one, or a model unlike dlib's (trees of unequal shape)."""
    r = _Reader(data)
    if r.int() != 1:
        raise ValueError("not a version-1 dlib shape_predictor")
    initial = np.array(r.column(), np.float32)
    columns, leaves = _leaf_columns(data, len(initial))
    cascades = r.int()
    idx1, idx2, thresh, leaf_rows = [], [], [], []
    for _ in range(cascades):
        trees = r.int()
        for _ in range(trees):
            splits = [(r.int(), r.int(), r.float()) for _ in range(r.int())]
            idx1.append([s[0] for s in splits])
            idx2.append([s[1] for s in splits])
            thresh.append([s[2] for s in splits])
            tree_leaves = []
            for _ in range(r.int()):
                if r.pos not in columns:
                    raise ValueError(f"a leaf at byte {r.pos} is not a column of {len(initial)} floats")
                row, r.pos = columns[r.pos]  # read already: on to its end
                tree_leaves.append(row)
            leaf_rows.append(tree_leaves)
    anchors = [[r.int() for _ in range(r.int())] for _ in range(r.int())]
    deltas = [[(r.float(), r.float()) for _ in range(r.int())] for _ in range(r.int())]
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes left after the model")
    shape = (cascades, len(idx1) // max(cascades, 1))
    depth = len(idx1[0]) if idx1 else 0
    if len({len(s) for s in idx1}) != 1 or len({len(t) for t in leaf_rows}) != 1 or depth + 1 != len(leaf_rows[0]):
        raise ValueError("trees of unequal shape")
    return {
        "initial": initial,
        "idx1": np.array(idx1, np.int32).reshape(*shape, depth),
        "idx2": np.array(idx2, np.int32).reshape(*shape, depth),
        "thresh": np.array(thresh, np.float32).reshape(*shape, depth),
        "leaves": leaves[np.array(leaf_rows)].reshape(*shape, depth + 1, len(initial)),
        "anchors": np.array(anchors, np.int32),
        "deltas": np.array(deltas, np.float32),
    }


class ShapeModel:
    """A shape predictor's arrays (`parse`), evaluated as dlib evaluates them (see the module doc).

    `ShapeModel(arrays)(frame_rgb, (left, top, right, bottom), area)` gives the (K, 2) float64
    points in frame pixels, whole numbers as dlib's: box corners inclusive, as a dlib.rectangle's;
    `area` (x0, y0, x1, y1), exclusive ends, is the part of the frame read (pixels outside it read 0,
    as off the picture), the whole frame when None."""

    def __init__(self, arrays: dict[str, np.ndarray], compiled: bool = True) -> None:
        self.arrays = arrays  # as `parse` gives them
        self.initial = arrays["initial"]
        self.compiled = compiled and _cascade is not None
        cascades, trees, depth = arrays["idx1"].shape
        self.points = len(self.initial) // 2
        self._trees, self._depth = trees, depth
        # both pixels of every split, one gather a cascade: (cascades, 2 * splits)
        self._idx12 = np.concatenate([arrays["idx1"].reshape(cascades, -1), arrays["idx2"].reshape(cascades, -1)],
                                     axis=1).astype(np.intp)
        self._thresh = arrays["thresh"].reshape(cascades, -1)
        self._leaves = np.ascontiguousarray(arrays["leaves"]).reshape(cascades, trees * (depth + 1), -1)
        self._anchors = arrays["anchors"].astype(np.intp)
        self._deltas = arrays["deltas"]
        mean = self.initial.reshape(-1, 2).astype(np.float64)
        centred = mean - mean.mean(axis=0)
        self._mean_centred = centred / (centred ** 2).sum()  # Umeyama's covariance over sigma_from in one product
        self._leaf_base = np.arange(trees) * (depth + 1)
        # A tree's leaf from its split outcomes at once: outcome s is bit s of a code, and
        # _leaf_of[code] the leaf dlib's walk from the root (left on True) reaches.
        self._bits = (1 << np.arange(depth)).astype(np.int64)
        codes = np.arange(1 << depth)
        node = np.zeros_like(codes)
        for _ in range(int(np.log2(depth + 1))):
            node = 2 * node + 2 - ((codes >> node) & 1)
        self._leaf_of = (node - depth).astype(np.intp)
        # the C loop's arrays, contiguous in the dtypes it reads (views of the mapped file where they are)
        self._c_model = tuple(np.ascontiguousarray(a, dt) for a, dt in (
            (self.initial, np.float32), (self._idx12, np.intp), (self._thresh, np.float32),
            (self._leaves, np.float32), (self._anchors, np.intp), (self._deltas, np.float32),
            (self._mean_centred, np.float64)))

    def __call__(self, frame_rgb: np.ndarray, box: tuple[int, int, int, int],
                 area: tuple[int, int, int, int] | None = None) -> np.ndarray:
        return self.many(frame_rgb, [box], [area])[0]

    def many(self, frame_rgb: np.ndarray, boxes: Sequence[tuple[int, int, int, int]],
             areas: Sequence[tuple[int, int, int, int] | None]) -> list[np.ndarray]:
        """The points of several faces of one frame, each as `__call__` gives them (the same bits): one
        pass over the cascades for all of them, so the ~35 small numpy steps of a cascade, most of a
        face's time, are taken once a frame instead of once a face."""
        n = len(boxes)
        h, w = frame_rgb.shape[:2]
        corner = np.array([(a if a is not None else (0, 0, w, h))[:2] for a in areas], np.int64)  # (F, 2)
        far = np.array([(a if a is not None else (0, 0, w, h))[2:] for a in areas], np.int64)
        box = np.array(boxes, np.int64)
        size = (box[:, 2:] - box[:, :2]).astype(np.float64)[:, None, :]  # dlib's unnormalizing transform
        offset = (box[:, :2] - corner + 0.5)[:, None, :]  # ... from the area's corner, + 0.5: rounding
        extent = far - corner
        if self.compiled and n:
            shapes = self._run_compiled(frame_rgb, corner, extent, size, offset)
        else:
            shapes = self._run_numpy(frame_rgb, corner, extent, size, offset)
        return [np.floor(shapes[f].reshape(-1, 2).astype(np.float64) * size[f] + (box[f, :2] + 0.5))
                for f in range(n)]

    def _run_compiled(self, frame_rgb: np.ndarray, corner: np.ndarray, extent: np.ndarray, size: np.ndarray,
                      offset: np.ndarray) -> np.ndarray:
        """(F, K2) float32 shapes, every cascade run by `_cascade.run` (the numpy loop's arithmetic)."""
        n = len(corner)
        frame = np.ascontiguousarray(frame_rgb)
        if frame.dtype != np.uint8 or frame.ndim != 3:
            raise ValueError(f"landmarks need an (H, W, >=3) uint8 picture; got {frame.shape} {frame.dtype}")
        shapes = np.empty((n, len(self.initial)), np.float32)
        _cascade.run(frame, frame.shape[1], frame.shape[0], frame.shape[2], np.ascontiguousarray(corner),
                     np.ascontiguousarray(extent), np.ascontiguousarray(size.reshape(n, 2)),
                     np.ascontiguousarray(offset.reshape(n, 2)), *self._c_model, shapes,
                     n, len(self._leaves), self._trees, self._depth, self._anchors.shape[1], len(self.initial))
        return shapes

    def _run_numpy(self, frame_rgb: np.ndarray, corner: np.ndarray, extent: np.ndarray, size: np.ndarray,
                   offset: np.ndarray) -> np.ndarray:
        """(F, K2) float32 shapes, every cascade as a few dozen numpy steps over all faces at once."""
        n = len(corner)
        w = frame_rgb.shape[1]
        extent = extent.astype(np.uint64)  # compared with the positions' unsigned view: off either side is too large
        first = (corner[:, 1] * w + corner[:, 0])[:, None]
        pixels = frame_rgb.reshape(-1, frame_rgb.shape[2])
        shapes = np.repeat(self.initial[None], n, axis=0)
        rows = np.empty((n, self._trees + 1, len(self.initial)), np.float32)
        similarity = np.empty((n, 2, 2), np.float32)
        for c in range(len(self._leaves)):
            pts = shapes.reshape(n, -1, 2)
            cov = (pts - pts.mean(axis=1, dtype=np.float64, keepdims=True)).transpose(0, 2, 1) @ self._mean_centred
            a, b = cov[:, 0, 0] + cov[:, 1, 1], cov[:, 1, 0] - cov[:, 0, 1]
            similarity[:, 0, 0], similarity[:, 0, 1], similarity[:, 1, 0], similarity[:, 1, 1] = a, b, -b, a  # transposed
            at = self._deltas[c] @ similarity
            at += pts[:, self._anchors[c]]
            xy = np.floor(at * size + offset).astype(np.int64)  # (F, P, 2) in each face's area
            unsigned = xy.view(np.uint64)  # off the area on either side: too large
            inside = (unsigned[..., 0] < extent[:, :1]) & (unsigned[..., 1] < extent[:, 1:])
            rgb = pixels.take(((first + xy[..., 1] * w + xy[..., 0]) * inside).ravel(), axis=0).astype(np.int32)
            grey = ((rgb[:, 0] + rgb[:, 1] + rgb[:, 2]) // 3).reshape(n, -1)
            value = (grey * inside).astype(np.float32)
            pair = value.take(self._idx12[c], axis=1).reshape(n, 2, -1)
            outcome = (pair[:, 0] - pair[:, 1]) > self._thresh[c]
            leaf = self._leaf_of.take(outcome.reshape(n, self._trees, -1) @ self._bits) + self._leaf_base
            for f in range(n):
                rows[f, 0] = shapes[f]
                # mode "clip": with "raise" and `out`, numpy gathers into a buffer first (2.5x the time)
                np.take(self._leaves[c], leaf[f], axis=0, out=rows[f, 1:], mode="clip")
                shapes[f] = np.add.reduce(rows[f], axis=0)  # row after row: dlib's order of float32 additions
        return shapes


def cache_path(model_file: Path, cache_dir: Path) -> Path:
    """The cached arrays of `model_file`: named by its name, size and modification time (a reinstalled
    model is parsed again) and this module's FORMAT."""
    st = model_file.stat()
    return cache_dir / f"{model_file.stem}-{st.st_size}-{st.st_mtime_ns}-v{FORMAT}.arrays"


def write_arrays(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` as one flat file: a magic line, a length-prefixed JSON header (per array its dtype,
    shape and offset; the data's size and CRC-32), then each array's bytes at a 64-byte boundary."""
    entries, offset, blobs = [], 0, []
    for name, value in arrays.items():
        data = np.ascontiguousarray(value)
        entries.append([name, data.dtype.str, list(data.shape), offset])
        pad = -data.nbytes % _ALIGN
        blobs += [data.tobytes(), b"\0" * pad]
        offset += data.nbytes + pad
    body = b"".join(blobs)
    header = json.dumps({"arrays": entries, "size": len(body), "crc32": zlib.crc32(body)}).encode()
    head = _MAGIC + len(header).to_bytes(8, "little") + header
    f.write(head + b"\0" * (-len(head) % _ALIGN) + body)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays `write_arrays` wrote, mapped read-only from `path` (the pages are shared with the
    page cache, nothing is copied). ValueError when the file is cut short, altered or not one."""
    with open(path, "rb") as f:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise ValueError(f"{path} is not a shape-array file")
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    start = len(_MAGIC) + 8 + size
    start += -start % _ALIGN
    # a plain ndarray over the map: indexing a np.memmap runs Python code (__array_finalize__) per
    # view, which the evaluator's per-cascade indexing paid ~1 s over a 240-frame render
    mapped = np.asarray(np.memmap(path, dtype=np.uint8, mode="r"))
    if mapped.size != start + header["size"] or zlib.crc32(mapped[start:]) != header["crc32"]:
        raise ValueError(f"{path} is cut short or altered")
    out = {}
    for name, dtype, shape, offset in header["arrays"]:
        dt = np.dtype(dtype)
        if dt.kind not in "iuf":  # numbers only: nothing in the file becomes an object
            raise ValueError(f"{path}: array {name!r} has dtype {dtype!r}; allowed: integers and floats")
        count = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        out[name] = mapped[start + offset:start + offset + count].view(dt).reshape(shape)
    return out


def load_cached(model_file: Path, cache_dir: Path | None) -> ShapeModel:
    """The ShapeModel of dlib model file `model_file`, its arrays read from `cache_dir` or, the first
    time, parsed and written there (to a temporary name, then renamed: a killed writer leaves no
    cache that looks whole). A cache that does not load (cut short, altered) is parsed again. ModelError
    when the model cannot be parsed; with no cache folder (None, read-only, full) it is parsed every time."""
    path = cache_path(model_file, cache_dir) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            arrays = read_arrays(path)
            return ShapeModel({k: arrays[k] for k in _ARRAYS})
        except (OSError, ValueError, KeyError, TypeError):
            pass  # cut short or foreign: parsed again and rewritten below
    try:
        arrays = parse(model_file.read_bytes())
    except (OSError, ValueError, IndexError, KeyError) as err:
        raise ModelError(f"the landmark model {model_file} could not be read as a dlib shape predictor ({err})") from err
    if path is not None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                write_arrays(f, arrays)
            os.replace(tmp, path)
            for stale in path.parent.glob(path.name.rsplit("-v", 1)[0] + "-v*"):  # this file's older formats
                if stale != path:  # (another install's copy of the model has another size or mtime: kept)
                    stale.unlink()
        except OSError:  # a read-only or full cache folder: nothing kept, nothing lost
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return ShapeModel(arrays)
