"""Exact-range decode: frames by index, RGB conversion with the source's matrix, frame patching."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import av.error
import numpy as np

from renderer.errors import InputError
from renderer.media.info import (
    CorruptMediaError,
    MediaInfo,
    _open_input,
    effective_color,
    probe,
)


def pix_fmt_depth(pix_fmt: str) -> int:
    """Bits a sample of `pix_fmt` (8 for yuv420p, 10 for yuv422p10le, 32 for gbrpf32le); 8 if unknown."""
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.error.FFmpegError):
        return 8


def is_deep(pix_fmt: str) -> bool:
    """True for pixel formats with more than 8 bits a sample (10/12/16-bit YUV or RGB, half or float).

    Their face boxes are composited at depth (`read_box`, float32 RGB) instead of through rgb24."""
    return pix_fmt_depth(pix_fmt) > 8


DEEP_RGB = "gbrpf32le"  # the deep box's format: float32 RGB, what a float32 composite (and OCIO) works in


def read_box(frame: av.VideoFrame, box: tuple[int, int, int, int], matrix: str, rng: str) -> np.ndarray:
    """The frame's pixels in `box` (x0, y0, x1, y1), exclusive end, as float32 RGB (h, w, 3) at the source's depth.

    0..1 is the source's black..white, converted with its matrix and range like `frame_to_rgb`
    but without the 8-bit step (a 10-bit code maps to its own float value). Only the box (and a
    margin, so chroma at its edge is filtered from the real neighbours) is converted: planar
    formats are cut to the box before swscale runs. The inverse is `patch_regions` with the box
    as `rgb` and (x0, y0) as `origin`.
    """
    import cv2  # here, not at the top: trim and probe need no OpenCV, which takes half a second to load

    x0, y0, x1, y1 = box
    if not _patchable(frame.format.name):
        full = frame.reformat(format=DEEP_RGB, threads=1, **_to_rgb_args(frame.format.name, matrix, rng))
        return full.to_ndarray()[y0:y1, x0:x1]
    cx0, cy0 = max(0, (x0 - _MARGIN) & ~1), max(0, (y0 - _MARGIN) & ~1)
    cx1, cy1 = min(frame.width, (x1 + _MARGIN + 1) & ~1), min(frame.height, (y1 + _MARGIN + 1) & ~1)
    part = av.VideoFrame(cx1 - cx0, cy1 - cy0, frame.format.name)
    steps = _steps(frame)
    for dst, src, (sy, sx) in zip(_plane_arrays(part), _plane_arrays(frame), steps):
        dst[...] = src[cy0 // sy: cy0 // sy + dst.shape[0], cx0 // sx: cx0 // sx + dst.shape[1]]
    g, b, r = _plane_arrays(part.reformat(format=DEEP_RGB, threads=1, **_to_rgb_args(frame.format.name, matrix, rng)))
    sl = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
    return cv2.merge([r[sl], g[sl], b[sl]])  # (h, w, 3) float32 RGB, a new array (to_ndarray interleaves slower)


def _to_rgb_args(fmt: str, matrix: str, rng: str) -> dict[str, object]:
    if fmt.startswith(("gbr", "bgr", "rgb")):
        return {}
    return dict(src_colorspace=matrix, dst_colorspace=matrix, src_color_range=rng, dst_color_range="JPEG")


def frame_to_rgb(frame: av.VideoFrame, matrix: str, rng: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a decoded frame, converted with the given matrix and range."""
    if frame.format.name in ("rgb24",):
        return frame.to_ndarray()
    if frame.format.name.startswith(("gbr", "bgr", "rgb")):
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, dst_colorspace=matrix,
                            src_color_range=rng, dst_color_range="JPEG")


class RegionRGB:
    """A decoded frame as RGB (as `frame_to_rgb` converts it), converted a region at a time.

    `region(x0, y0, x1, y1)` converts the part of the box not yet converted and returns the
    frame-sized array; `whole()` converts the rest. Each pixel holds exactly what `frame_to_rgb`
    gives it (the tests compare, per pixel format), so stages that read only around a face
    (tracking, cropping, pasting) never pay for a full-frame conversion (PITFALLS: about half
    an encode at 1080p). A renderer.faces `Picture`. Pixels never asked for read 0; converting a
    region never overwrites pixels converted (or written) before.

    Regions are whole tiles of `TILE` px, converted from the planes cropped with a margin
    (so chroma filtered across a tile edge comes from the real neighbours) and multiples of
    `_ALIGN` px from the frame origin (chroma grid, dither phase). Formats other than planar
    YUV are converted whole on the first call.
    """

    TILE = 32

    def __init__(self, frame: av.VideoFrame, matrix: str, rng: str, pool: list[np.ndarray] | None = None) -> None:
        """pool: the caller's free list of frame-sized arrays of zeros; the picture takes its array
        from there when one fits, and `release` puts it back (cleared). A new array of zeros is
        a 6 MB memset at 1080p (glibc reuses freed memory for it), clearing the converted tiles
        a tenth of that."""
        self.frame, self.matrix, self.rng = frame, matrix, rng
        h, w = frame.height, frame.width
        self.shape = (h, w, 3)
        self._pool = pool
        self.array = pool.pop() if pool and pool[-1].shape == self.shape else np.zeros(self.shape, np.uint8)
        self._zeros = self.array  # the array given, all zeros where no tile is done
        self._done = np.zeros((-(-h // self.TILE), -(-w // self.TILE)), bool)
        fmt = frame.format.name
        self._regional = len(frame.planes) == 3 and fmt.startswith(("yuv4", "yuvj4")) and fmt[-6:-3] != "p16"

    def whole(self) -> np.ndarray:
        if not self._done.all():
            h, w, _ = self.shape
            if not self._done.any():
                self.array = frame_to_rgb(self.frame, self.matrix, self.rng)
            else:
                self._fill(frame_to_rgb(self.frame, self.matrix, self.rng), 0, 0, self._missing(0, 0, self._done.shape[1], self._done.shape[0]))
            self._done[:] = True
        return self.array

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        if not self._regional:
            return self.whole()
        h, w, _ = self.shape
        t = self.TILE
        tx0, ty0 = max(0, x0) // t, max(0, y0) // t
        tx1, ty1 = min(self._done.shape[1], -(-min(w, x1) // t)), min(self._done.shape[0], -(-min(h, y1) // t))
        if tx1 <= tx0 or ty1 <= ty0:
            return self.array
        missing = self._missing(tx0, ty0, tx1, ty1)
        if missing is None:
            return self.array
        rows, cols = np.flatnonzero(missing.any(axis=1)), np.flatnonzero(missing.any(axis=0))
        ty0, ty1, tx0, tx1 = ty0 + rows[0], ty0 + rows[-1] + 1, tx0 + cols[0], tx0 + cols[-1] + 1
        missing = missing[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
        bx0, by0, bx1, by1 = tx0 * t, ty0 * t, min(w, tx1 * t), min(h, ty1 * t)
        cx0, cy0 = max(0, bx0 - _REGION_MARGIN), max(0, by0 - _REGION_MARGIN)
        cx1, cy1 = min(w, bx1 + _REGION_MARGIN), min(h, by1 + _REGION_MARGIN)
        rgb = _crop(self.frame, cx0, cy0, cx1, cy1).to_ndarray(
            format="rgb24", src_colorspace=self.matrix, dst_colorspace=self.matrix, src_color_range=self.rng,
            dst_color_range="JPEG", threads=1)  # a box gains nothing from slicing (and see encode.SWS_THREADS)
        self._fill(rgb[by0 - cy0: by1 - cy0, bx0 - cx0: bx1 - cx0], bx0, by0, missing)
        self._done[ty0:ty1, tx0:tx1] = True
        return self.array

    def release(self, keep: int = 32) -> None:
        """Done with this picture (it is not read or written again): with a pool, its array goes
        back there, zeroed over the tiles converted (callers write only inside converted tiles),
        while the pool holds fewer than `keep`. Without one, nothing happens. The pool never holds
        more arrays than were alive at once, so `keep` only bounds what a burst (a shot held for a
        missed face) leaves behind; a 1080p swap has up to ~16 pictures in flight (8 dropped 36 of
        240 arrays and zeroed 44 new ones for the 200 px bench clip, 32 none: 16 new)."""
        if self._pool is None or len(self._pool) >= keep:
            return
        arr = self._zeros
        if arr is self.array and self._done.any():
            rows, cols = np.flatnonzero(self._done.any(axis=1)), np.flatnonzero(self._done.any(axis=0))
            t = self.TILE
            arr[rows[0] * t: (rows[-1] + 1) * t, cols[0] * t: (cols[-1] + 1) * t] = 0
        self._pool.append(arr)
        self._pool = None  # released once
        del self.array  # the pool's now: a later read fails loudly instead of seeing another frame

    @property
    def converted_px(self) -> int:
        """How many of the frame's pixels were converted so far (benchmarks and tests)."""
        h, w, _ = self.shape
        t = self.TILE
        done = int(self._done.sum()) * t * t
        # the last row and column of tiles stick out past the frame edge
        done -= int(self._done[-1].sum()) * t * (-h % t) + int(self._done[:, -1].sum()) * t * (-w % t)
        done += int(self._done[-1, -1]) * (-h % t) * (-w % t)
        return done

    def _missing(self, tx0: int, ty0: int, tx1: int, ty1: int) -> np.ndarray | None:
        """(ty1 - ty0, tx1 - tx0) bool: the tiles of that range not yet converted, or None when none is."""
        missing = ~self._done[ty0:ty1, tx0:tx1]
        return missing if missing.any() else None

    def _fill(self, rgb: np.ndarray, x0: int, y0: int, missing: np.ndarray | None) -> None:
        """Copy `rgb` (a box of the frame at x0, y0) into the array on the missing tiles only."""
        import cv2  # as in patch_regions: trim and probe need no OpenCV

        h, w = rgb.shape[:2]
        view = self.array[y0: y0 + h, x0: x0 + w]
        if missing is None or missing.all():
            view[...] = rgb
            return
        t = self.TILE
        mask = np.repeat(np.repeat(missing, t, axis=0), t, axis=1)[:h, :w].view(np.uint8)
        if cv2.copyTo(rgb, mask, view) is not view:
            np.copyto(view, rgb, where=mask.astype(bool)[..., None])


# Luma pixels converted around a region (then dropped): chroma at the region's edge is
# interpolated from real neighbours. Even, and a multiple of 16 so that the crop keeps swscale's
# dither phase (it repeats every 8 rows) and the tiles' grid.
_REGION_MARGIN = 16


def _crop(frame: av.VideoFrame, x0: int, y0: int, x1: int, y1: int) -> av.VideoFrame:
    """A new planar YUV frame holding the box (x0, y0 even) of `frame`'s planes."""
    sub = av.VideoFrame(x1 - x0, y1 - y0, frame.format.name)
    for src, dst in zip(_plane_arrays(frame), _plane_arrays(sub)):
        sy, sx = round(frame.height / src.shape[0]), round(frame.width / src.shape[1])
        dst[...] = src[y0 // sy: y0 // sy + dst.shape[0], x0 // sx: x0 // sx + dst.shape[1]]
    return sub


# --------------------------------------------------------------------------------------------
# Exact-range decode


def _check_range(info: MediaInfo, start: int, end: int) -> None:
    """InputError unless 0 <= start <= end < frames (a truncated file: < the declared frames)."""
    limit = max(info.frames, info.declared_frames or 0) if info.truncated else info.frames
    if not (isinstance(start, int) and isinstance(end, int)) or start < 0 or end < start or end >= limit:
        raise InputError(
            f"frame range {start}-{end} is outside {info.path} (allowed: 0-{info.frames - 1}, inclusive, 0-based, "
            f"start <= end)")


def read_av_frames(path: Path | str, start: int, end: int, info: MediaInfo | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (frame_index, decoded av.VideoFrame) for exactly frames start..end inclusive.

    Seeks to the keyframe at or before frame `start` (by its pts), decodes forward, drops
    frames before the target and maps each decoded pts to its index in the pts index, so it
    is exact for long GOPs, B-frames, open GOPs, VFR and non-zero start times. Where the
    demuxer's seek lands after the target (byte-seeking formats such as MPEG-TS), it decodes
    from the start of the file instead. The frames are for `VideoWriter.write_av`
    (pass-through) or `frame_to_rgb`.

    Raises InputError for a range outside the media; CorruptMediaError when decoding fails or
    the file ends early, naming the last good frame.
    """
    info = info or probe(path)
    _check_range(info, start, end)
    if info.sequence is not None:  # an image sequence: one file per frame
        from renderer.media.sequence import read_sequence_frames

        yield from read_sequence_frames(info, start, end)
        return
    if start >= info.frames:  # only reachable for a truncated file
        raise CorruptMediaError(
            f"{info.path} ended early: it declares {info.declared_frames} frames but the last good frame is "
            f"{info.frames - 1}; asked {start}-{end}")
    index_of = {p: i for i, p in enumerate(info.pts)}
    last_good = start - 1
    for seek in (True, False):
        with _open_input(Path(path)) as container:
            video = container.streams[info.video_index]
            video.thread_type = "AUTO"
            if seek:
                container.seek(info.pts[start], stream=video, backward=True)
            expected = None  # the next index to yield once the first target frame was seen
            try:
                for frame in container.decode(video):
                    i = index_of.get(frame.pts) if frame.pts is not None else None
                    if i is None or i < start:
                        continue  # pre-roll before the target (or a frame demuxing never listed)
                    if expected is None and i > start:
                        break  # landed after the target: decode from the file's start instead
                    if i != (expected if expected is not None else start):
                        raise CorruptMediaError(
                            f"{info.path} is damaged: frame {i} came after frame {last_good} "
                            f"(last good frame {last_good}; asked {start}-{end})")
                    yield i, frame
                    last_good, expected = i, i + 1
                    if i == end:
                        return
                    if i == info.frames - 1:
                        break  # a truncated file: no more frames to come
            except av.error.FFmpegError as err:
                raise CorruptMediaError(
                    f"{info.path} is damaged: decoding failed after frame {last_good} (last good frame {last_good}; "
                    f"asked {start}-{end}): {err}") from err
            if expected is not None or not seek:
                break
    if last_good < start:
        raise CorruptMediaError(
            f"{info.path} is damaged: the decoder gave no frame {start} (asked {start}-{end}; the index lists "
            f"frames 0-{info.frames - 1}" + (f" of {info.declared_frames} declared)" if info.truncated else ")"))
    raise CorruptMediaError(
        f"{info.path} ended early: the last good frame is {last_good} but frames up to {end} were asked "
        f"(frames {start}-{last_good} decoded; the index lists {info.frames}"
        + (f" of {info.declared_frames} declared)" if info.truncated else ")"))


def read_frames(path: Path | str, start: int, end: int, info: MediaInfo | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame_index, rgb) for exactly frames start..end inclusive (0-based).

    rgb: uint8 (H, W, 3), 0..255, converted with the source's matrix and range (see module doc).
    """
    info = info or probe(path)
    matrix, rng = effective_color(info, info.width, info.height, info.pix_fmt)
    for i, frame in read_av_frames(path, start, end, info):
        yield i, frame_to_rgb(frame, matrix, rng)


def iter_packets(path: Path | str, info: MediaInfo | None = None) -> Iterator[tuple[int | None, av.Packet]]:
    """Yield (frame_index, packet) of the video stream in decode order, for stream copy of
    untouched GOPs (boundaries: `MediaInfo.keyframes`). frame_index is None for packets that
    are no frame of the index: without a pts, hidden by the edit list (`packet.is_discard`),
    or dropped by the decoder at a mid-GOP start. Such packets are still needed to decode
    their neighbours."""
    info = info or probe(path)
    index_of = {p: i for i, p in enumerate(info.pts)}
    with _open_input(Path(path)) as container:
        video = container.streams[info.video_index]
        for packet in container.demux(video):
            if packet.size == 0:
                continue
            shown = packet.pts is not None and not packet.is_discard
            yield (index_of.get(packet.pts) if shown else None), packet


# --------------------------------------------------------------------------------------------
# Patching decoded frames (convert only what changed)


def _plane_arrays(frame: av.VideoFrame) -> list[np.ndarray]:
    """Writable views (height, width) of each plane of a planar frame (8-, 16-bit or float samples)."""
    out = []
    name = frame.format.name
    dtype = (np.dtype(np.float32) if name.endswith(("f32le", "f32be")) else np.dtype(np.float16)
             if name.endswith(("f16le", "f16be")) else np.dtype(np.uint16) if name.endswith(("le", "be"))
             else np.dtype(np.uint8))
    for plane in frame.planes:
        arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
        out.append(arr[:, : plane.width])
    return out


def _steps(frame: av.VideoFrame) -> list[tuple[int, int]]:
    """(rows, columns) of luma pixels each sample of each plane covers (chroma subsampling)."""
    return [(round(frame.height / p.height), round(frame.width / p.width)) for p in frame.planes]


def _patchable(fmt: str) -> bool:
    """Planar YUV (4:2:0 .. 4:4:4, any depth, alpha kept) or planar RGB: patched plane by plane."""
    if fmt.startswith(("yuv4", "yuvj4", "yuva4")):
        return fmt.lstrip("yuvja")[:3].isdigit()
    return fmt.startswith(("gbrp", "gbrap"))


def patch_frame(frame: av.VideoFrame, rgb: np.ndarray, changed: np.ndarray, matrix: str, rng: str) -> av.VideoFrame:
    """Decoded `frame` with `rgb`'s values where `changed`, in the frame's own format (patched in place).

    rgb: uint8 (H, W, 3); changed: bool (H, W). The same as `patch_regions` with one region
    covering the frame (which then costs a pass over the whole mask).
    """
    return patch_regions(frame, rgb, [(0, 0, changed)], matrix, rng)


def patch_regions(frame: av.VideoFrame, rgb: np.ndarray, regions: Sequence[tuple[int, int, np.ndarray]],
                  matrix: str, rng: str, origin: tuple[int, int] = (0, 0)) -> av.VideoFrame:
    """Decoded `frame` with `rgb`'s values where any region marks a change (patched in place).

    rgb: the frame as RGB with the changes made, either uint8 (H, W, 3) (the 8-bit path) or a
    float32 (h, w, 3) box of it from `read_box` whose top-left pixel is frame pixel `origin`
    (x, y) (the deep path: no 8-bit step, written back at the frame's own depth). regions:
    (x0, y0, changed) in frame pixels, `changed` a bool (h, w) mask of the frame box starting
    at column x0, row y0 (e.g. one per pasted face; they may overlap). Only each region's box
    is converted from RGB (with the source's matrix/range); every other coded sample keeps its
    decoded value, so untouched pixels stay bit-identical through a lossless encode and no
    full-frame colour conversion runs. A chroma sample is replaced when any luma pixel it
    covers changed; an alpha plane is kept. Packed or exotic formats fall back to a full
    conversion (of a uint8 `rgb`; a float box is pasted into the frame's float RGB first).
    """
    import cv2  # here, not at the top: trim and probe need no OpenCV, which takes half a second to load

    fmt = frame.format.name
    boxes = [b for b in (_changed_box(x0, y0, m, frame.width, frame.height) for x0, y0, m in regions) if b]
    if not boxes:
        return frame
    deep = rgb.dtype == np.float32
    src_fmt = DEEP_RGB if deep else "rgb24"
    if not _patchable(fmt):
        if deep:  # the rare packed deep format (rgb48le, p010le): whole-frame float RGB, box pasted in
            full = frame.reformat(format=DEEP_RGB, threads=1, **_to_rgb_args(fmt, matrix, rng)).to_ndarray()
            ox, oy = origin
            full[oy: oy + rgb.shape[0], ox: ox + rgb.shape[1]] = rgb
            rgb = full
        full_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=src_fmt)
        out = full_frame.reformat(format=fmt, threads=1, **_from_rgb_args(fmt, matrix, rng))
        return _same_timing(out, frame)
    # Patched in the decoded frame itself, so it keeps every property the encoder reads from it
    # (interlaced and top-field-first flags, side data); make_writable first gives it a private
    # copy of the pictures when the decoder still references them.
    frame.make_writable()
    planes = _plane_arrays(frame)[:3]  # an alpha plane (yuva, gbrap) keeps its decoded samples
    steps = _steps(frame)
    ox, oy = origin
    for x0, y0, x1, y1, region in boxes:
        # Convert a margin beyond the box too, so that chroma at the box edge is filtered from
        # the real neighbours (as a whole-frame conversion would), not from replicated edge pixels.
        # (A deep box from `read_box` holds that margin unless the frame edge cuts it.)
        cx0, cy0 = max(0, x0 - _MARGIN, ox), max(0, y0 - _MARGIN, oy)
        cx1, cy1 = min(frame.width, x1 + _MARGIN, ox + rgb.shape[1]), min(frame.height, y1 + _MARGIN, oy + rgb.shape[0])
        part = rgb[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox]
        box = _float_frame(part) if deep else _rgb24_frame(part)
        # threads=1: FFmpeg 8's sliced swscale gave rows that differ from run to run for 10-bit
        # 4:2:2 output (rgb24 -> yuv422p10le, 98x66); a face box gains nothing from slicing anyway.
        box = box.reformat(format=fmt, threads=1, **_from_rgb_args(fmt, matrix, rng))
        masks: dict[tuple[int, int], np.ndarray] = {}  # the chroma planes share one subsampling
        for dst, new, (sy, sx) in zip(planes, _plane_arrays(box), steps):
            mask = masks.get((sy, sx))
            if mask is None:
                mask = masks[sy, sx] = _subsample_any(region, sy, sx)
            oy_, ox_ = (y0 - cy0) // sy, (x0 - cx0) // sx
            new = new[oy_: oy_ + mask.shape[0], ox_: ox_ + mask.shape[1]]
            mask = mask[: new.shape[0], : new.shape[1]]
            view = dst[y0 // sy: y0 // sy + new.shape[0], x0 // sx: x0 // sx + new.shape[1]]
            # cv2.copyTo writes into the plane view in place, ~50x faster than np.copyto(where=).
            if new.dtype == np.float16 or cv2.copyTo(new, np.ascontiguousarray(mask).view(np.uint8), view) is not view:
                np.copyto(view, new, where=mask)
    return frame


def round_trip_rgb(rgb: np.ndarray, fmt: str, matrix: str, rng: str) -> np.ndarray:
    """uint8 RGB (h, w, 3; even sides) sent the way a pasted face goes: into coded format `fmt` as
    `patch_regions` converts it, and back to RGB as `frame_to_rgb` decodes it. What it changes is the
    quantisation (and chroma subsampling) a face picks up in a frame of that format; nothing for RGB."""
    frame = _rgb24_frame(rgb).reformat(format=fmt, threads=1, **_from_rgb_args(fmt, matrix, rng))
    return frame_to_rgb(frame, matrix, rng)


def _rgb24_frame(rgb: np.ndarray) -> av.VideoFrame:
    """An rgb24 frame of uint8 RGB (h, w, 3), its plane filled in place (PyAV's from_ndarray took
    0.24 ms on a 300 x 277 face box, this 0.015)."""
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], "rgb24")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    rows[:, : 3 * plane.width].reshape(rgb.shape)[...] = rgb
    return frame


def _float_frame(rgb: np.ndarray) -> av.VideoFrame:
    """A gbrpf32le frame of float32 RGB (h, w, 3), its planes filled in place (PyAV's from_ndarray
    copies channel by channel, ~5x slower on a face box)."""
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], DEEP_RGB)
    for plane, channel in zip(_plane_arrays(frame), (1, 2, 0)):  # planes G, B, R
        plane[...] = rgb[..., channel]
    return frame


def _from_rgb_args(fmt: str, matrix: str, rng: str) -> dict[str, object]:
    if fmt.startswith(("gbr", "bgr", "rgb")):
        return {}
    return dict(src_colorspace=matrix, dst_colorspace=matrix, src_color_range="JPEG", dst_color_range=rng)


_MARGIN = 8  # luma pixels converted around each changed box (even: keeps the chroma grid)
PATCH_MARGIN = _MARGIN  # (public: how far a patch reads beyond its changed pixels)


def _changed_box(x0: int, y0: int, changed: np.ndarray, width: int,
                 height: int) -> tuple[int, int, int, int, np.ndarray] | None:
    """(x0, y0, x1, y1, mask) of a region's changed pixels, the box aligned to the 2x2 chroma grid
    (which covers every subsampling yuv4xxp uses), or None when nothing changed."""
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        return None
    bx0, by0 = (x0 + int(cols[0])) & ~1, (y0 + int(rows[0])) & ~1
    bx1, by1 = min(width, (x0 + int(cols[-1]) + 2) & ~1), min(height, (y0 + int(rows[-1]) + 2) & ~1)
    mask = np.zeros((by1 - by0, bx1 - bx0), bool)
    sy0, sx0 = max(y0, by0), max(x0, bx0)
    sy1, sx1 = min(y0 + changed.shape[0], by1), min(x0 + changed.shape[1], bx1)
    mask[sy0 - by0: sy1 - by0, sx0 - bx0: sx1 - bx0] = changed[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0]
    return bx0, by0, bx1, by1, mask


def _subsample_any(mask: np.ndarray, sy: int, sx: int) -> np.ndarray:
    """(ceil(h/sy), ceil(w/sx)) bool: True where any pixel of the sy x sx block is True.

    OpenCV's bitwise_or over the strided rows and columns (a 300 x 277 face box, 2 x 2: 0.03 ms;
    np.pad and logical_or.reduce took 0.14)."""
    import cv2  # as in patch_regions: trim and probe need no OpenCV

    if mask.size == 0:
        return np.zeros((-(-mask.shape[0] // sy), -(-mask.shape[1] // sx)), bool)
    m = mask.view(np.uint8)
    if sy > 1:
        if m.shape[0] % sy:
            m = cv2.copyMakeBorder(m, 0, -m.shape[0] % sy, 0, 0, cv2.BORDER_CONSTANT, value=0)
        rows = m[0::sy]
        for k in range(1, sy):
            rows = cv2.bitwise_or(rows, m[k::sy])
        m = rows
    if sx > 1:
        if m.shape[1] % sx:
            m = cv2.copyMakeBorder(m, 0, 0, 0, -m.shape[1] % sx, cv2.BORDER_CONSTANT, value=0)
        cols = m[:, 0::sx]
        for k in range(1, sx):
            cols = cv2.bitwise_or(cols, m[:, k::sx])
        m = cols
    return m.view(bool)


def _same_timing(out: av.VideoFrame, frame: av.VideoFrame) -> av.VideoFrame:
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


