"""Convert: swap faces frame by frame and lay them back so that only the face changed.

Per frame:  track -> align (crop with `crop_from_frame`) -> model (A->B or B->A)
            -> colour match + mask -> composite back with `frame_from_crop`.

`render_range` runs that over a frame range of one video as a pipeline: a decode thread,
the face/model/composite work on the calling thread (torch, dlib and OpenCV release the
GIL in their kernels), and an encode thread, joined by small bounded queues so memory
stays flat whatever the clip length. Frames whose faces are not swapped go to the encoder
as they were decoded, with no RGB round trip.

Chunk invariance (render farms): everything stateful (tracker, landmark smoothing,
temporal blend) restarts at every multiple of `SEGMENT_FRAMES` in absolute frame index,
and model batches always have the same shape, so the pixels of frame N depend only on
frames from the start of N's segment (or of its swap range) to N. A chunk that starts
mid-segment decodes that pre-roll first and discards it; its frames then come out
identical to the same frames of an unchunked render. The tracker gives a frame out up to
`detect_every` frames late (a face it missed there is held if found again in time), so a
chunk that ends mid-segment decodes that post-roll too (`postroll_end`) and discards it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from renderer import media
from renderer.composite import CompositeSettings, TemporalBlend, face_mask, landmarks_to_crop, paste_face
from renderer.errors import InputError, ModelError, RenderError
from renderer.faces import Face
from renderer.faces.detect import MIN_FACE
from renderer.faces.identity import DEFAULT_THRESHOLD, identity_distance, reference_embedding
from renderer.faces.track import FaceTracker, TrackedFrame
from renderer.pipeline import put_until_stopped

SEGMENT_FRAMES = 48  # processing state restarts at multiples of this absolute frame index
MODEL_BATCH = 8  # faces per model call; partial batches are zero-padded to this shape
QUEUE_FRAMES = 8  # frames in flight between pipeline stages (bounded: flat memory)

PASS_REASONS = ("outside range", "no face", "not identity")


@dataclass(frozen=True, eq=False)
class SwapSettings:
    """How faces are found, chosen and laid back. Built from a preset by `swap_settings`.

    identity: (128,) float32 reference embedding when faces == "identity".
    """

    detector: str = "hog"
    landmarks: int = 68
    faces: str = "all"
    identity: np.ndarray | None = None
    identity_threshold: float = DEFAULT_THRESHOLD
    direction: str = "a2b"
    composite: CompositeSettings = field(default_factory=CompositeSettings)
    smooth_landmarks: bool = True
    temporal: float = 0.0
    detect_every: int = 8
    min_face: int = MIN_FACE  # smallest face searched for (px)
    full_search_every: int = 2  # every Nth key frame searches the whole frame (new faces), the others near tracks
    device: str | None = None

    def __post_init__(self) -> None:
        if self.faces not in ("all", "largest", "identity"):
            raise InputError(f"faces={self.faces!r} is not allowed (allowed: all, largest, identity)")
        if self.faces == "identity" and self.identity is None:
            raise InputError("faces=identity needs a reference: set `identity:` in the preset to an image of the person")
        if self.direction not in ("a2b", "b2a"):
            raise InputError(f"direction={self.direction!r} is not allowed (allowed: a2b, b2a)")


def swap_settings(preset: Any, *, direction: str | None = None, device: str | None = None,
                  base_dir: Path | None = None) -> SwapSettings:
    """SwapSettings from a validated `renderer.presets.Preset` (optionally overriding direction)."""
    identity = None
    if preset.faces == "identity":
        if not preset.identity:
            raise InputError(f"preset {preset.source}: faces=identity needs `identity:` (a reference image)")
        ref = Path(preset.identity)
        if not ref.is_absolute() and base_dir is not None:
            ref = base_dir / ref
        identity = _reference(ref, preset.detector)
    return SwapSettings(
        detector=preset.detector,
        landmarks=int(preset.landmarks),
        faces=preset.faces,
        identity=identity,
        direction=direction or preset.direction,
        composite=CompositeSettings(mask=preset.mask.kind, erode=preset.mask.erode, feather=preset.mask.feather,
                                    colour=preset.colour, blend=preset.blend),
        smooth_landmarks=preset.smoothing.landmarks,
        temporal=min(float(preset.smoothing.temporal), 0.95),
        detect_every=int(preset.detect_every),
        min_face=int(preset.min_face),
        device=device,
    )


def _reference(image: Path, detector: str) -> np.ndarray:
    """(128,) embedding of the largest face in the preset's identity reference image."""
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"identity reference {image} is missing or not an image (allowed: jpg, png, ...)")
    emb = reference_embedding(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), detector)
    if emb is None:
        raise InputError(f"identity reference {image}: no face found in it; use a clear frontal photo")
    return emb


@dataclass
class SwapStats:
    """What a render did. `passed_through` counts written frames left untouched, by reason.

    held: frames swapped on a face the detector missed there but found again within
    detect_every frames. lost: the frame, once per face, where a tracked face was missed and
    not found again in time (or before a segment start), so it is not swapped from that
    frame until it is found anew.
    """

    frames: int = 0
    swapped: int = 0
    faces: int = 0
    passed_through: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PASS_REASONS, 0))
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("decode", "track", "model", "composite", "encode", "total"), 0.0))
    preroll: int = 0
    held: int = 0
    lost: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        total = self.seconds["total"] or 1e-9
        return {
            "frames": self.frames,
            "swapped": self.swapped,
            "faces": self.faces,
            "passed_through": dict(self.passed_through),
            "preroll_frames": self.preroll,
            "frames_held": self.held,
            "faces_lost": list(self.lost),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "fps": round(self.frames / total, 2),
        }


# ----------------------------------------------------------------------------- the model side


class SwapModel:
    """A loaded swap model and the decoder it renders through.

    `__call__` takes (N, S, S, 3) uint8 aligned crops and returns ((N, S, S, 3) float32
    RGB in [0, 1], (N, S, S) float32 learned masks or None). Batches are always run at
    `MODEL_BATCH` rows (zero-padded), so a face's output never depends on how many other
    faces shared its batch.
    """

    def __init__(self, model_dir: Path, direction: str, device: str | None = None) -> None:
        from renderer.model import load_model, pick_device

        self.device = pick_device(device)
        self.model, self.card = load_model(model_dir, self.device)
        self.config = self.card.config
        self.size = int(self.config.input_size)
        self.decoder = "b" if direction == "a2b" else "a"
        self.learns_mask = bool(self.config.learn_mask)

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(crops)
        rgb_out = np.empty((n, self.size, self.size, 3), np.float32)
        mask_out = np.empty((n, self.size, self.size), np.float32) if self.learns_mask else None
        with torch.inference_mode():
            for lo in range(0, n, MODEL_BATCH):
                part = crops[lo:lo + MODEL_BATCH]
                batch = np.zeros((MODEL_BATCH, self.size, self.size, 3), np.uint8)
                batch[: len(part)] = part
                x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S)
                y = self.model(x, self.decoder).float().cpu()  # (B, 3|4, S, S) in [0, 1]
                rgb_out[lo:lo + len(part)] = y[: len(part), :3].permute(0, 2, 3, 1).numpy()
                if mask_out is not None:
                    mask_out[lo:lo + len(part)] = y[: len(part), 3].numpy()
        return rgb_out, mask_out


# ----------------------------------------------------------------------------- per-frame work


@dataclass
class _Pending:
    """A frame waiting for its faces to come back from the model; `frame` is patched in place."""

    index: int
    frame: Any  # av.VideoFrame as decoded
    rgb: np.ndarray | None
    faces: list[tuple[int, Face]]  # (track id, face)
    emit: bool
    reason: str | None  # why it passes through, when it does


class FaceSwapper:
    """The stateful per-clip stage between decode and encode.

    Feed decoded frames in order with `push`; it yields frames ready for the encoder in
    the same order: (index, av.VideoFrame, reason or None); a swapped frame is the decoded
    frame with only its changed pixels replaced (`media.patch_frame`). State
    (tracks, smoothing, temporal blend) restarts at segment starts; see the module doc.
    """

    def __init__(self, model: SwapModel, settings: SwapSettings, fps: Fraction, matrix: str, rng: str,
                 stats: SwapStats) -> None:
        self.model, self.settings, self.fps = model, settings, fps
        self.matrix, self.rng = matrix, rng
        self.stats = stats
        self.size = model.size
        if "learned" in settings.composite.mask and not model.learns_mask:
            raise InputError(f"mask={settings.composite.mask!r} needs a model trained with a learned mask; "
                             f"this model has none (allowed here: hull, ellipse)")
        self._tracker: FaceTracker | None = None
        self._blend = TemporalBlend(settings.temporal)
        self._pending: list[_Pending] = []
        self._pending_faces = 0
        self._tracking: dict[int, tuple[Any, np.ndarray, bool]] = {}  # frames the tracker holds: frame, rgb, emit
        self._closing: FaceTracker | None = None  # the last segment's tracker, settling its held frames
        self._boundary: int | None = None  # the segment start it runs past
        self._deferred: list[TrackedFrame] = []  # new-segment frames waiting for the old one's

    def _new_tracker(self) -> FaceTracker:
        s = self.settings
        return FaceTracker(detector=s.detector, points=s.landmarks, crop_size=self.size,
                           coverage=self.model.config.coverage, detect_every=s.detect_every,
                           full_search_every=s.full_search_every, min_size=s.min_face,
                           smoothing=s.smooth_landmarks, fps=float(self.fps), embed=s.faces == "identity")

    def restart(self) -> Iterator[tuple[int, Any, str | None]]:
        """Forget every track and blend state (end of a swap range); first finish the frames
        before this point (the tracker's held frames settled without looking past it), so none
        of them is blended with state that was reset."""
        t0 = time.perf_counter()
        if self._closing is not None:
            yield from self._from_closing(self._closing.flush())
        settled = self._tracker.flush() if self._tracker is not None else []
        self.stats.seconds["track"] += time.perf_counter() - t0
        for tf in settled:
            yield from self._tracked(tf)
        yield from self._run_model()
        self._tracker = None
        self._blend.reset()

    def push(self, index: int, frame: Any, swap: bool, emit: bool,
             rgb: np.ndarray | None = None) -> Iterator[tuple[int, Any, str | None]]:
        """Take one decoded frame; yield the frames that are now finished, in order.

        rgb: the frame already converted (`media.frame_to_rgb` with this swapper's matrix and
        range, e.g. on the decode thread), this stage's to write into once its faces are
        settled (the trackers read it only inside `push`); converted here when None.
        """
        if not swap:
            yield from self.restart()
            yield from self._queue(_Pending(index, frame, None, [], emit, "outside range"))
            return
        t0 = time.perf_counter()
        if rgb is None:
            rgb = media.frame_to_rgb(frame, self.matrix, self.rng)
        self._tracking[index] = (frame, rgb, emit)
        if index % SEGMENT_FRAMES == 0 and self._tracker is not None:
            # Segment start: a fresh tracker from here. The old one runs on past it only while
            # it holds frames before it (a miss not yet made good), at most detect_every frames,
            # so a miss across the start is settled as in the middle of a segment.
            self._closing, self._boundary, self._tracker = self._tracker, index, None
        closing = None
        if self._closing is not None and any(i < self._boundary for i in self._tracking):  # type: ignore[operator]
            closing = self._closing.push(index, rgb)
        if self._tracker is None:
            self._tracker = self._new_tracker()
        settled = self._tracker.push(index, rgb)
        self.stats.seconds["track"] += time.perf_counter() - t0
        if self._closing is not None:
            yield from self._from_closing(closing or [])
        for tf in settled:
            if self._closing is not None:
                self._deferred.append(tf)  # after the old segment's frames, in order
            else:
                yield from self._tracked(tf)

    def _from_closing(self, settled: list[TrackedFrame]) -> Iterator[tuple[int, Any, str | None]]:
        """Frames the old segment's tracker settled; once none before the segment start is left,
        it is dropped, the blend restarts and the new segment's frames follow."""
        assert self._boundary is not None
        for tf in settled:
            if tf.index < self._boundary:
                yield from self._tracked(tf)
        if not any(i < self._boundary for i in self._tracking):
            self._closing = None
            yield from self._run_model()
            self._blend.reset()
            deferred, self._deferred = self._deferred, []
            for tf in deferred:
                yield from self._tracked(tf)

    def _tracked(self, tf: TrackedFrame) -> Iterator[tuple[int, Any, str | None]]:
        """A frame whose faces the tracker has settled: choose the faces to swap, queue it for the model."""
        frame, rgb, emit = self._tracking.pop(tf.index)
        chosen = self._choose(list(tf.faces))
        if emit:
            self.stats.held += any(tid in tf.held for tid, _ in chosen)
            self.stats.lost.extend([tf.index] * len(tf.lost))
        reason = None if chosen else ("not identity" if tf.faces else "no face")
        yield from self._queue(_Pending(tf.index, frame, rgb if chosen else None, chosen, emit, reason))

    def flush(self) -> Iterator[tuple[int, Any, str | None]]:
        """Finish every pending frame (end of the range)."""
        yield from self.restart()

    def _choose(self, faces: list[tuple[int, Face]]) -> list[tuple[int, Face]]:
        s = self.settings
        if not faces or s.faces == "all":
            return faces
        if s.faces == "largest":
            return [max(faces, key=lambda tf: tf[1].area)]
        assert s.identity is not None
        return [(t, f) for t, f in faces
                if f.embedding is not None and identity_distance(f.embedding, s.identity) < s.identity_threshold]

    def _queue(self, item: _Pending) -> Iterator[tuple[int, Any, str | None]]:
        self._pending.append(item)
        self._pending_faces += len(item.faces)
        if self._pending_faces >= MODEL_BATCH:
            yield from self._run_model()
        elif self._pending_faces == 0:
            yield from self._drain()

    def _drain(self) -> Iterator[tuple[int, Any, str | None]]:
        pending, self._pending, self._pending_faces = self._pending, [], 0
        for p in pending:
            if p.emit:
                yield p.index, p.frame, p.reason

    def _run_model(self) -> Iterator[tuple[int, Any, str | None]]:
        todo = [(p, tid, face) for p in self._pending for tid, face in p.faces]
        if not todo:
            yield from self._drain()
            return
        t0 = time.perf_counter()
        crops = np.stack([cv2.warpAffine(p.rgb, face.crop_from_frame, (self.size, self.size),
                                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                          for p, _, face in todo])  # (N, S, S, 3) uint8
        swapped, learned = self.model(crops)
        t1 = time.perf_counter()
        self.stats.seconds["model"] += t1 - t0
        patches: dict[int, list[tuple[int, int, np.ndarray]]] = {}
        for k, (p, tid, face) in enumerate(todo):
            crop = self._blend.update(tid, p.index, swapped[k])
            if not p.emit:
                continue  # pre-roll: only the temporal state matters
            lm_crop = landmarks_to_crop(face.landmarks, face.crop_from_frame)
            mask = face_mask(lm_crop, self.size, self.settings.composite,
                             learned=None if learned is None else learned[k])
            original = crops[k].astype(np.float32) * np.float32(1.0 / 255.0)
            # p.rgb is this stage's own conversion of the frame, done with once tracked and cropped:
            # faces are pasted into it in place (a second face over the first), box by box.
            patch = paste_face(p.rgb, crop, face.frame_from_crop, mask, self.settings.composite, original)
            if patch is not None:
                patches.setdefault(p.index, []).append((patch.x0, patch.y0, patch.changed))
        pending, self._pending, self._pending_faces = self._pending, [], 0
        for p in pending:
            if p.emit and p.faces:
                self.stats.faces += len(p.faces)
                p.frame = media.patch_regions(p.frame, p.rgb, patches.get(p.index, []), self.matrix, self.rng)
        self.stats.seconds["composite"] += time.perf_counter() - t1
        for p in pending:
            if p.emit:
                yield p.index, p.frame, p.reason


# ----------------------------------------------------------------------------- the pipeline

_END = object()  # queue sentinel: the producer is done

# Threads for torch and OpenCV while a render runs: the encoder (x264 or ProRes, threaded by
# FFmpeg) is meant to be the critical path and wants the cores; a 64 px model and a face box are
# small work. On 2 shared cores, 2 torch threads made the model stage 6x slower in wall time
# (27 s vs 4.6 s busy over 96 frames: each batch waits for the descheduled thread) and 2 OpenCV
# threads cost more CPU than they saved (1080p close-up: 35.7 vs 30.8 CPU s for 96 frames).
FACE_THREADS = max(1, (os.cpu_count() or 1) // 4)


def _limit_pools(torch_threads: int, cv_threads: int | None = None) -> tuple[int, int]:
    """Set torch's and OpenCV's thread counts (cv_threads defaults to torch_threads); returns the
    previous (torch, OpenCV) counts so a render can put them back."""
    before = (torch.get_num_threads(), cv2.getNumThreads())
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(torch_threads if cv_threads is None else cv_threads)
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
) -> SwapStats:
    """Render source frames first..last (inclusive) of `src` into `out`, swapping faces on `swap_ranges`.

    Output frame k is source frame first + k, at the source's frame rate and timing, with
    its start timecode shifted by `first`, its colour tags (or `color`) and its audio over
    the same range. `swap_ranges` are inclusive source frame ranges; other frames pass
    through untouched. `origin` is the first frame of the unchunked render when this call
    renders a chunk (farm tasks); `gop` forces a keyframe interval (closed GOPs that start
    on the first frame, so chunks concatenate); `options` are extra encoder options (e.g. a
    lower crf for spans spliced between stream-copied GOPs). The file appears under `out` only when
    complete. Raises InputError (bad range, codec, model), MediaError, RenderError.
    """
    src, out = Path(src), Path(out)
    info = media.probe(src)
    if not (0 <= first <= last < info.frames):
        raise InputError(f"frame range {first}-{last} is outside {src} (allowed: 0-{info.frames - 1}, inclusive)")
    if out.resolve() == src.resolve():
        raise InputError(f"output {out} is the source itself; the source is never written")
    ranges = sorted((max(lo, 0), min(hi, info.frames - 1)) for lo, hi in swap_ranges if hi >= lo)
    swap_model = model or SwapModel(model_dir, settings.direction, settings.device)
    stats = SwapStats()
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
    swapper = FaceSwapper(swap_model, settings, info.fps, matrix, rng, stats)
    start = preroll_start(first, ranges, origin)
    decode_to = postroll_end(last, ranges, info.frames, settings.detect_every)
    stats.preroll = first - start
    total = last - first + 1
    tags = color or media.output_color(info)
    options = {**({"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop and codec == "h264" else {}),
               **(options or {})} or None
    writer = media.VideoWriter(
        out, width=info.width, height=info.height, fps=info.fps, codec=codec,
        timecode=media.shift_timecode(info.timecode, first, info.fps) if info.timecode else None,
        color=tags, metadata=metadata, audio_from=(src, first, last) if audio and info.audio else None,
        pix_fmt=pix_fmt or info.pix_fmt, time_base=info.time_base if info.vfr else None,
        rotation=info.rotation, options=options, field_order=info.field_order,
    )
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
        try:
            t = time.perf_counter()
            for i, frame in media.read_av_frames(src, start, decode_to, info):
                # The RGB conversion for tracking is a full-frame pass: done here, it overlaps
                # with the face work (swscale runs without the GIL).
                swap = _in_ranges(i, ranges) is not None
                rgb = media.frame_to_rgb(frame, matrix, rng) if swap else None
                stats.seconds["decode"] += time.perf_counter() - t
                if not put(decoded, (i, frame, swap, rgb)):
                    return
                t = time.perf_counter()
        except BaseException as err:  # handed to the calling thread, which raises it
            errors.append(err)
        finally:
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
                    i, frame = item
                    t = time.perf_counter()
                    base = info.pts[first]
                    pts = (info.pts[i] - base) if info.vfr else None
                    writer.write_av(frame, pts=pts, source_color=info.color)
                    stats.seconds["encode"] += time.perf_counter() - t
                    done += 1
                    if progress is not None:
                        progress(done, total)
        except BaseException as err:
            errors.append(err)
            stop.set()

    t_start = time.perf_counter()
    pools = _limit_pools(FACE_THREADS)
    threads = [threading.Thread(target=decode, name="doppel-decode", daemon=True),
               threading.Thread(target=encode, name="doppel-encode", daemon=True)]
    for th in threads:
        th.start()

    def emit(ready: Iterator[tuple[int, Any, str | None]]) -> None:
        for i, frame, reason in ready:
            stats.frames += 1
            if reason is None:
                stats.swapped += 1
            else:
                stats.passed_through[reason] += 1
            if not put(finished, (i, frame)):
                raise RenderError(f"rendering {out.name} stopped at frame {i}")

    try:
        while True:
            item = take(decoded)
            if item is _END:
                break
            i, frame, swap, rgb = item
            if errors:
                break
            emit(swapper.push(i, frame, swap=swap, emit=first <= i <= last, rgb=rgb))
        if not errors:
            emit(swapper.flush())
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
        _limit_pools(*pools)
    stats.seconds["total"] = time.perf_counter() - t_start
    if errors:
        err = errors[0]
        if isinstance(err, (InputError, ModelError, RenderError, media.MediaError, KeyboardInterrupt)):
            raise err  # Ctrl-C (or an interrupt raised by a progress callback) stays an interrupt
        raise RenderError(f"rendering {src.name} frames {first}-{last} failed: {err}") from err
    if stats.frames != total:
        raise RenderError(f"rendering {src.name}: wrote {stats.frames} frames, expected {total}")
    return stats
