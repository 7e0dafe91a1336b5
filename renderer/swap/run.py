"""`render_range`: decode thread -> face work -> encode thread over one frame range, chunk-invariant."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2

from renderer import media
from renderer.errors import InputError, ModelError, RenderError
from renderer.pipeline import peak_rss_mib, put_until_stopped
from renderer.swap.faces import FaceSwapper, Ready
from renderer.swap.model import SwapModel
from renderer.swap.settings import QUEUE_FRAMES, SEGMENT_FRAMES, SwapSettings, SwapStats


_END = object()  # queue sentinel: the producer is done

# Threads for torch and OpenCV while a render runs: the encoder (x264 or ProRes, threaded by
# FFmpeg) is meant to be the critical path and wants the cores; a 64 px model and a face box are
# small work. On 2 shared cores, 2 torch threads made the model stage 6x slower in wall time
# (27 s vs 4.6 s busy over 96 frames: each batch waits for the descheduled thread) and 2 OpenCV
# threads cost more CPU than they saved (1080p close-up: 35.7 vs 30.8 CPU s for 96 frames).
# Rechecked with the region conversion (200 px face, 240 frames, load 21-26): 2 threads took
# 34.6 + 1.7 CPU s and 169 s wall, 1 thread 23.8 + 2.3 and 120 s (model stage 83 s vs 10 s busy).
FACE_THREADS = max(1, (os.cpu_count() or 1) // 4)


def _limit_cv_pool(threads: int) -> int:
    """Set OpenCV's thread count; returns the previous one so a render can put it back. (torch's
    count is set per model batch, on the thread that runs it: `SwapModel.with_threads`.)"""
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    return before


def _in_ranges(index: int, ranges: list[tuple[int, int]]) -> tuple[int, int] | None:
    for lo, hi in ranges:
        if lo <= index <= hi:
            return lo, hi
    return None


def preroll_start(first: int, swap_ranges: list[tuple[int, int]], origin: int | None = None) -> int:
    """The frame decoding must start at so that frame `first` comes out as in an unchunked render.

    origin: the first frame of the unchunked render this range is a chunk of (default `first`).
    """
    origin = first if origin is None else origin
    rng = _in_ranges(first, swap_ranges)
    if rng is None:
        return first
    return max(origin, rng[0], first - first % SEGMENT_FRAMES)


def postroll_end(last: int, swap_ranges: list[tuple[int, int]], frames: int, detect_every: int) -> int:
    """The last frame decoding must reach so that frame `last` comes out as in an unchunked render.

    The tracker settles a frame whose face it missed up to `detect_every` frames later
    (FaceTracker.push; across a segment start too), never past its swap range.
    """
    rng = _in_ranges(last, swap_ranges)
    if rng is None:
        return last
    return min(last + detect_every, rng[1], frames - 1)


def render_range(
    src: Path,
    out: Path,
    *,
    model_dir: Path,
    settings: SwapSettings,
    first: int,
    last: int,
    swap_ranges: list[tuple[int, int]],
    codec: str,
    pix_fmt: str | None = None,
    color: media.ColorTags | None = None,
    metadata: dict[str, str] | None = None,
    audio: bool = True,
    origin: int | None = None,
    gop: int | None = None,
    options: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    model: SwapModel | None = None,
    rate: Any = None,
    matte: media.MatteWriter | None = None,
    info: media.MediaInfo | None = None,
) -> SwapStats:
    """Render source frames first..last (inclusive) of `src` into `out`, swapping faces on `swap_ranges`.

    Output frame k is source frame first + k, at the source's frame rate and timing, with
    its start timecode shifted by `first`, its colour tags (or `color`), HDR10 metadata (h265
    output) and its audio over the same range. A source deeper than 8 bits is composited at
    its depth (`media.read_box`): no 8-bit step inside the mask. `swap_ranges` are inclusive source frame ranges; other frames pass
    through untouched. `origin` is the first frame of the unchunked render when this call
    renders a chunk (farm tasks); `gop` forces a keyframe interval (closed GOPs that start
    on the first frame, so chunks concatenate); `options` are extra encoder options (e.g. a
    lower crf for spans spliced between stream-copied GOPs). The file appears under `out` only when
    complete. `matte`: an open MatteWriter whose next frame is `first`; it gets every written frame's
    blend mask (and face plate), in order, from the same pass (the caller closes it). Raises InputError (bad range, codec, model), MediaError, RenderError.
    `src` and `out` may be image sequences (`media.sequence`; `rate` is the source sequence's
    rate): an output sequence keeps the source frames' numbers, and `codec` is not used for it.
    `info`: `media.probe(src, rate=rate)` when the caller has it (not probed again). `model` may
    still be loading (`SwapModel`): decoding starts meanwhile; its load error is raised here,
    with nothing written under `out`.
    """
    src, out = Path(src), Path(out)
    info = info or media.probe(src, rate=rate)
    if not (0 <= first <= last < info.frames):
        raise InputError(f"frame range {first}-{last} is outside {src} (allowed: 0-{info.frames - 1}, inclusive)")
    if out.resolve() == src.resolve():
        raise InputError(f"output {out} is the source itself; the source is never written")
    ranges = sorted((max(lo, 0), min(hi, info.frames - 1)) for lo, hi in swap_ranges if hi >= lo)
    holdout_info = (media.check_matte(settings.holdout, frames=info.frames, width=info.width, height=info.height,
                                      shot=src)
                    if settings.holdout is not None else None)  # a hold-out matte that does not fit fails before any work
    # torch runs the batches with FACE_THREADS on the calling thread (the model may still be loading)
    swap_model = (model or SwapModel(model_dir, settings.direction, settings.device, precision=settings.precision,
                                runtime=settings.runtime, upscale=settings.upscale)
                  ).with_threads(FACE_THREADS)
    try:  # an error before the pipeline starts: no load of our own left running behind us
        stats = SwapStats()
        matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
        swapper = FaceSwapper(swap_model, settings, info.fps, matrix, rng, stats, keep_patches=matte is not None,
                              keep_plates=matte is not None and matte.writes_plate,
                              deep=media.is_deep(info.pix_fmt))
        start = preroll_start(first, ranges, origin)
        decode_to = postroll_end(last, ranges, info.frames, settings.detect_every)
        stats.preroll = first - start
        total = last - first + 1
        tags = color or media.output_color(info)
        options = {**({"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop and codec == "h264" else {}),
                   **(options or {})} or None
        writer = media.open_writer(
            out, source=info, first=first, width=info.width, height=info.height, fps=info.fps, codec=codec,
            timecode=media.shift_timecode(info.timecode, first, info.fps) if info.timecode else None,
            color=tags, metadata=metadata, audio_from=(src, first, last) if audio and info.audio else None,
            pix_fmt=pix_fmt or info.pix_fmt, time_base=info.time_base if info.vfr else None,
            rotation=info.rotation, options=options, field_order=info.field_order, hdr=info.hdr,
        )
    except BaseException:
        swap_model.settle()
        raise
    decoded: queue.Queue[Any] = queue.Queue(QUEUE_FRAMES)
    finished: queue.Queue[Any] = queue.Queue(QUEUE_FRAMES)
    errors: list[BaseException] = []
    stop = threading.Event()

    def put(q: queue.Queue[Any], item: Any) -> bool:
        return put_until_stopped(q, item, stop)

    def take(q: queue.Queue[Any]) -> Any:
        while not stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def decode() -> None:
        # The hold-out matte is decoded frame by frame beside the source (same indices).
        holdouts = (media.read_matte(settings.holdout, start, decode_to, holdout_info)
                    if settings.holdout is not None else None)
        try:
            t = time.perf_counter()
            for i, frame in media.read_av_frames(src, start, decode_to, info):
                # No RGB conversion here: the face stage converts only the regions around the
                # faces (media.RegionRGB), and the whole frame only where it searches all of it.
                swap = _in_ranges(i, ranges) is not None
                holdout = None
                if holdouts is not None:
                    j, holdout_frame = next(holdouts)
                    assert j == i, f"hold-out matte frame {j} decoded beside source frame {i}"
                    holdout = media.matte_to_array(holdout_frame) if swap else None
                stats.seconds["decode"] += time.perf_counter() - t
                stats.mark("first_decoded")
                if not put(decoded, (i, frame, swap, holdout)):
                    return
                t = time.perf_counter()
        except BaseException as err:  # handed to the calling thread, which raises it
            errors.append(err)
        finally:
            if holdouts is not None:
                holdouts.close()  # closes the hold-out matte's container
            put(decoded, _END)

    def encode() -> None:
        try:
            with writer:
                done = 0
                while True:
                    item = take(finished)
                    if item is _END:
                        if errors or stop.is_set():
                            raise RenderError("render stopped before the last frame; output discarded")
                        break
                    i, frame, patches = item
                    t = time.perf_counter()
                    base = info.pts[first]
                    pts = (info.pts[i] - base) if info.vfr else None
                    writer.write_av(frame, pts=pts, source_color=info.color)
                    stats.mark("first_encoded")
                    if matte is not None:
                        matte.write(i, [(p.x0, p.y0, p.alpha, p.face) for p in patches])
                    stats.seconds["encode"] += time.perf_counter() - t
                    done += 1
                    if progress is not None:
                        progress(done, total)
        except BaseException as err:
            errors.append(err)
            stop.set()

    t_start = time.perf_counter()
    busy_before = swap_model.process_busy_seconds  # a model process shared by an edit's clips counts on
    stats.mark("render_start")
    cv_pool = _limit_cv_pool(FACE_THREADS)
    threads = [threading.Thread(target=decode, name="doppel-decode", daemon=True),
               threading.Thread(target=encode, name="doppel-encode", daemon=True)]
    for th in threads:
        th.start()

    def emit(ready: Iterator[Ready]) -> None:
        for i, frame, reason, patches in ready:
            stats.mark("first_swapped" if reason is None else "first_passed")
            stats.frames += 1
            if reason is None:
                stats.swapped += 1
            else:
                stats.passed_through[reason] += 1
            if not put(finished, (i, frame, patches)):
                raise RenderError(f"rendering {out.name} stopped at frame {i}")

    try:
        # In-process, the model (loading since the command started) is awaited before the first frame
        # is tracked: tracking beside torch's import only delays the model, both holding the GIL
        # (measured: the first encoded frame came ~3 s later), and the encoder, the critical path,
        # waits for it. A model in its own process loads beside the tracking instead (the first
        # batch waits for it). The decode thread and the writer are already running.
        if swap_model.in_process:
            swap_model.ready()
        while True:
            item = take(decoded)
            if item is _END:
                break
            i, frame, swap, holdout = item
            if errors:
                break
            emit(swapper.push(i, frame, swap=swap, emit=first <= i <= last, holdout=holdout))
            stats.mark("first_tracked")  # the first frame has been through the tracker
        if not errors:
            emit(swapper.flush())
            # A model in its own process that no batch needed (no faces) still fails the render
            # on a load error, as in-process, before the writer puts anything under `out`.
            swap_model.ready()
    except BaseException as err:
        errors.append(err)
        stop.set()
    finally:
        if errors:
            stop.set()  # every stage polls `stop`; the writer then discards its temp file
        else:
            put(finished, _END)
        for th in threads:
            th.join()
        cv2.setNumThreads(cv_pool)
        swap_model.restore_threads()
    stats.seconds["total"] = time.perf_counter() - t_start
    if busy_before is not None:  # the network's own work, in its process (`model` is this thread's wait for it)
        stats.seconds["model_process"] = swap_model.process_busy_seconds - busy_before  # type: ignore[operator]
    if swap_model.loaded_at is not None:
        stats.timeline["model_ready"] = swap_model.loaded_at
        stats.precision = swap_model.precision
        stats.runtime = swap_model.runtime
    for proc, mib in (("render", peak_rss_mib()), ("model_process", swap_model.peak_rss_mib())):
        if mib is not None:
            stats.peak_rss_mib[proc] = mib
    if errors:
        err = errors[0]
        if isinstance(err, (InputError, ModelError, RenderError, media.MediaError, KeyboardInterrupt)):
            raise err  # Ctrl-C (or an interrupt raised by a progress callback) stays an interrupt
        raise RenderError(f"rendering {src.name} frames {first}-{last} failed: {err}") from err
    if stats.frames != total:
        raise RenderError(f"rendering {src.name}: wrote {stats.frames} frames, expected {total}")
    return stats
