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

    def __init__(self, frame: av.VideoFrame, matrix: str, rng: str) -> None:
        self.frame, self.matrix, self.rng = frame, matrix, rng
        h, w = frame.height, frame.width
        self.shape = (h, w, 3)
        self.array = np.zeros(self.shape, np.uint8)  # calloc: pages never converted cost nothing
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
    """Writable views (height, width) of each plane of a planar frame (8- or 16-bit samples)."""
    out = []
    for plane in frame.planes:
        itemsize = 2 if frame.format.name.endswith(("le", "be")) else 1
        dtype = np.uint16 if itemsize == 2 else np.uint8
        arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
        out.append(arr[:, : plane.width])
    return out


def patch_frame(frame: av.VideoFrame, rgb: np.ndarray, changed: np.ndarray, matrix: str, rng: str) -> av.VideoFrame:
    """Decoded `frame` with `rgb`'s values where `changed`, in the frame's own format (patched in place).

    rgb: uint8 (H, W, 3); changed: bool (H, W). The same as `patch_regions` with one region
    covering the frame (which then costs a pass over the whole mask).
    """
    return patch_regions(frame, rgb, [(0, 0, changed)], matrix, rng)


def patch_regions(frame: av.VideoFrame, rgb: np.ndarray, regions: Sequence[tuple[int, int, np.ndarray]],
                  matrix: str, rng: str) -> av.VideoFrame:
    """Decoded `frame` with `rgb`'s values where any region marks a change (patched in place).

    rgb: uint8 (H, W, 3), the frame as RGB with the changes made. regions: (x0, y0, changed),
    `changed` a bool (h, w) mask of the frame box starting at column x0, row y0 (e.g. one per
    pasted face; they may overlap). Only each region's box is converted from RGB (with the
    source's matrix/range); every other coded sample keeps its decoded value, so untouched
    pixels stay bit-identical through a lossless encode and no full-frame colour conversion
    runs. A chroma sample is replaced when any luma pixel it covers changed. Packed or exotic
    formats fall back to a full conversion of `rgb`.
    """
    import cv2  # here, not at the top: trim and probe need no OpenCV, which takes half a second to load

    fmt = frame.format.name
    boxes = [b for b in (_changed_box(x0, y0, m, frame.width, frame.height) for x0, y0, m in regions) if b]
    if not boxes:
        return frame
    planar = len(frame.planes) == 3 and (fmt[3:6].isdigit() if fmt.startswith("yuv4") else fmt.startswith("yuvj4"))
    if not planar:
        full = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        out = full.reformat(format=fmt, src_colorspace=matrix, dst_colorspace=matrix,
                            src_color_range="JPEG", dst_color_range=rng, threads=1)  # see encode.SWS_THREADS
        return _same_timing(out, frame)
    # Patched in the decoded frame itself, so it keeps every property the encoder reads from it
    # (interlaced and top-field-first flags, side data); make_writable first gives it a private
    # copy of the pictures when the decoder still references them.
    frame.make_writable()
    planes = _plane_arrays(frame)
    steps = [(round(frame.height / p.shape[0]), round(frame.width / p.shape[1])) for p in planes]
    for x0, y0, x1, y1, region in boxes:
        # Convert a margin beyond the box too, so that chroma at the box edge is filtered from
        # the real neighbours (as a whole-frame conversion would), not from replicated edge pixels.
        cx0, cy0 = max(0, x0 - _MARGIN), max(0, y0 - _MARGIN)
        cx1, cy1 = min(frame.width, x1 + _MARGIN), min(frame.height, y1 + _MARGIN)
        box = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1]), format="rgb24")
        # threads=1: FFmpeg 8's sliced swscale gave rows that differ from run to run for 10-bit
        # 4:2:2 output (rgb24 -> yuv422p10le, 98x66); a face box gains nothing from slicing anyway.
        box = box.reformat(format=fmt, src_colorspace=matrix, dst_colorspace=matrix,
                           src_color_range="JPEG", dst_color_range=rng, threads=1)
        for dst, new, (sy, sx) in zip(planes, _plane_arrays(box), steps):
            mask = _subsample_any(region, sy, sx)
            oy, ox = (y0 - cy0) // sy, (x0 - cx0) // sx
            new = new[oy: oy + mask.shape[0], ox: ox + mask.shape[1]]
            mask = mask[: new.shape[0], : new.shape[1]]
            view = dst[y0 // sy: y0 // sy + new.shape[0], x0 // sx: x0 // sx + new.shape[1]]
            # cv2.copyTo writes into the plane view in place, ~50x faster than np.copyto(where=).
            if cv2.copyTo(new, np.ascontiguousarray(mask).view(np.uint8), view) is not view:
                np.copyto(view, new, where=mask)
    return frame


_MARGIN = 8  # luma pixels converted around each changed box (even: keeps the chroma grid)


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
    """(ceil(h/sy), ceil(w/sx)) bool: True where any pixel of the sy x sx block is True."""
    if sy > 1:
        mask = np.pad(mask, ((0, -mask.shape[0] % sy), (0, 0)))
        mask = np.logical_or.reduce([mask[k::sy] for k in range(sy)])
    if sx > 1:
        mask = np.pad(mask, ((0, 0), (0, -mask.shape[1] % sx)))
        mask = np.logical_or.reduce([mask[:, k::sx] for k in range(sx)])
    return mask


def _same_timing(out: av.VideoFrame, frame: av.VideoFrame) -> av.VideoFrame:
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


