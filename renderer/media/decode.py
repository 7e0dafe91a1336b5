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
    """Writable views (height, width) of each plane of a planar frame (8- or 16-bit samples)."""
    out = []
    name = frame.format.name
    for plane in frame.planes:
        dtype = np.float32 if "f32" in name else np.uint16 if name.endswith(("le", "be")) else np.uint8
        itemsize = np.dtype(dtype).itemsize
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
    # Planar RGB (DPX 10-bit gbrp10le, EXR gbrpf32le, with or without alpha): patched like YUV, the
    # alpha plane left as decoded (the box conversion from rgb24 would make it opaque).
    rgb_planar = fmt.startswith(("gbrp", "gbrap")) and len(frame.planes) in (3, 4)
    planar = planar or rgb_planar
    if not planar:
        full = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        out = full.reformat(format=fmt, src_colorspace=matrix, dst_colorspace=matrix,
                            src_color_range="JPEG", dst_color_range=rng)
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
        for dst, new, (sy, sx) in list(zip(planes, _plane_arrays(box), steps))[:3]:
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


