"""The per-frame work between decode and encode: track, batch faces through the model, paste back."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from renderer import media
from renderer.colour import rct_apply, rct_statistics
from renderer.colour_management import ColourManagement
from renderer.composite import (
    Patch, TemporalBlend, face_mask, landmarks_to_crop, occlusion_keep, paste_box, paste_face, resize_crop_transform)
from renderer.composite.grain import RING, output_noise
from renderer.errors import InputError
from renderer.faces import Face
from renderer.faces.identity import identity_distance
from renderer.faces.picture import Picture, warp_footprint
from renderer.faces.track import FaceTracker, TrackedFrame
from renderer.swap.model import SwapModel
from renderer.swap.settings import MODEL_BATCH, SEGMENT_FRAMES, SwapSettings, SwapStats

# What FaceSwapper yields for each finished frame: (index, av.VideoFrame, pass-through reason or
# None, its Patches in paste order when the swapper keeps them, else ()).
Ready = tuple[int, Any, str | None, tuple[Patch, ...]]


# One face to paste: swapped crop, frame_from_crop, crop mask, original crop, grain seed (frame index, track).
_Work = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]

@dataclass
class _Pending:
    """A frame waiting for its faces to come back from the model; `frame` is patched in place."""

    index: int
    frame: Any  # av.VideoFrame as decoded
    rgb: Picture | None
    faces: list[tuple[int, Face]]  # (track id, face)
    emit: bool
    reason: str | None  # why it passes through, when it does
    view: np.ndarray | None = None  # managed colour: the (H, W, 3) uint8 working-space picture faces were found on
    holdout: np.ndarray | None = None  # (H, W) float32 hold-out matte of this frame


@dataclass
class _Batch:
    """Faces sent to the model together (`SwapModel.submit`), with the frames they came from."""

    frames: list[_Pending]  # in order; frames without faces among them pass through in their place
    todo: list[tuple[_Pending, int, Face]]  # (frame, track id, face) per crop
    crops: np.ndarray  # (N, S, S, 3) uint8
    answer: Callable[[], list[tuple[np.ndarray, np.ndarray | None]]]


class FaceSwapper:
    """The stateful per-clip stage between decode and encode.

    Feed decoded frames in order with `push`; it yields frames ready for the encoder in
    the same order: (index, av.VideoFrame, reason or None, patches); a swapped frame is the decoded
    frame with only its changed pixels replaced (`media.patch_frame`). `patches` are the frame's
    `Patch`es in paste order (alpha kept, and the unblended face when `keep_plates`: the matte pass)
    when `keep_patches`, else (). State (tracks, smoothing, temporal blend) restarts at segment
    starts; see the module doc.
    """

    def __init__(self, model: SwapModel, settings: SwapSettings, fps: Fraction, matrix: str, rng: str,
                 stats: SwapStats, keep_patches: bool = False, keep_plates: bool = False, deep: bool = False) -> None:
        self.model, self.settings, self.fps = model, settings, fps
        self.keep_patches = keep_patches
        self.keep_plates = keep_plates  # patches also keep the unblended face (the matte pass's plate)
        self.matrix, self.rng = matrix, rng
        # deep (`media.is_deep` of the source): faces are pasted into a float32 box read at the
        # source's depth and written back at it; tracking and the model's input stay 8-bit.
        self.deep = deep
        self.stats = stats
        self.size = model.size
        if "learned" in settings.composite.mask and not model.learns_mask:
            raise InputError(f"mask={settings.composite.mask!r} needs a model trained with a learned mask; "
                             f"this model has none (allowed here: hull, ellipse)")
        # occlusion=auto: learned where the model has an occluder segmenter, else reconstruction.
        self._occlusion = settings.occlusion.resolved(model.has_segmenter)
        if self._occlusion.mode == "learned" and not (model.has_segmenter or model.learns_mask):
            raise InputError("occlusion=learned needs a model with an occluder segmenter (train one with `doppel "
                             "train-segmenter MODEL_DIR`) or a learned mask; this model has neither (allowed here: "
                             "reconstruction, matte, off)")
        # learned: the segmenter reads the crop itself; without one, the source decoder's mask channel.
        # reconstruction (and that fallback) send the crops through the source decoder too.
        self._segmenting = self._occlusion.mode == "learned" and model.has_segmenter
        self._source_pass = self._occlusion.mode == "reconstruction" or (
            self._occlusion.mode == "learned" and not self._segmenting)
        # B's face upscaler: the swapped crop grows from S to S * scale before the composite
        # (masks, colour and paste work at that size; `renderer.upscale`).
        self._upscaling = model.has_upscaler and settings.upscale != "off"
        if self._upscaling and not model.loads_upscaler:
            raise InputError(f"upscale={settings.upscale} for a swap whose model was loaded with upscale off; load "
                             f"it with the swap's own upscale setting (SwapModel(..., upscale=...))")
        if settings.upscale == "on" and not model.has_upscaler:
            raise InputError("upscale=on needs a model with a face upscaler for the swap's target person; "
                             + ("this model has none (train one with `doppel train-upscaler MODEL_DIR --b FACESET_B`)"
                                if model.card.upscaler is None else "its upscaler is B's and this swap decodes to A "
                                "(direction b2a)") + " (allowed here: auto, off)")
        self.out_size = self.size * (model.upscale_factor if self._upscaling else 1)
        learned_in = model.card.working_space
        if settings.colour is not None and learned_in is not None and learned_in != settings.colour.spaces.working_space:
            raise InputError(f"colour_management.working_space is {settings.colour.spaces.working_space!r}, but the model "
                             f"learned in {learned_in!r} (its model card); set working_space: {learned_in}")
        self._tracker: FaceTracker | None = None
        self._blend = TemporalBlend(settings.temporal)
        self._colour_blend = TemporalBlend(settings.colour_smoothing)  # per-track rct statistics
        # With colour smoothing the stage does the rct transfer itself, so paste-back does none.
        self._smooth_colour = settings.colour_smoothing > 0.0 and settings.composite.colour == "rct"
        self._paste_settings = (dataclasses.replace(settings.composite, colour="none") if self._smooth_colour
                                else settings.composite)
        self._pending: list[_Pending] = []
        self._pending_faces = 0
        self._in_flight: _Batch | None = None  # sent to the model, not yet composited
        # held frames: frame, rgb, emit, view, hold-out matte
        self._tracking: dict[int, tuple[Any, Picture, bool, Picture | np.ndarray, np.ndarray | None]] = {}
        self._closing: FaceTracker | None = None  # the last segment's tracker, settling its held frames
        self._boundary: int | None = None  # the segment start it runs past
        self._deferred: list[TrackedFrame] = []  # new-segment frames waiting for the old one's
        self._format_noise: dict[str, tuple[np.ndarray, float]] = {}  # `_noise_after`, per coded format
        self._arrays: list[np.ndarray] = []  # zeroed frame arrays for this stage's RegionRGBs (their pool)

    def _new_tracker(self) -> FaceTracker:
        s = self.settings
        return FaceTracker(detector=s.detector, points=s.landmarks, crop_size=self.size,
                           coverage=self.model.config.coverage, detect_every=s.detect_every,
                           full_search_every=s.full_search_every, min_size=s.min_face,
                           smoothing=s.smooth_landmarks, fps=float(self.fps), embed=s.faces == "identity")

    def restart(self) -> Iterator[Ready]:
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
        self._colour_blend.reset()

    def push(self, index: int, frame: Any, swap: bool, emit: bool, rgb: Picture | None = None,
             holdout: np.ndarray | None = None) -> Iterator[Ready]:
        """Take one decoded frame; yield the frames that are now finished, in order.

        rgb: the frame as RGB (with this swapper's matrix and range), this stage's to write into
        once its faces are settled (the trackers read it only inside `push`). None: a
        `media.RegionRGB` of the frame, so that only the regions around faces are converted
        (and the whole frame only where a tracker searches it).
        holdout: this frame's (H, W) float32 hold-out matte (`media.matte_to_array`), if the shot has one.
        """
        if not swap:
            yield from self.restart()
            yield from self._queue(_Pending(index, frame, None, [], emit, "outside range"))
            return
        t0 = time.perf_counter()
        if rgb is None:
            rgb = media.RegionRGB(frame, self.matrix, self.rng, self._arrays)
        # Faces are found and landmarked on the picture the detectors were made for: with managed
        # colour a read-only working-space view (a log frame's low contrast moved 68-point landmarks
        # by ~3 px on a 175 px face), which is also where the model's crops are cut; the paste
        # still reads and writes the source pixels.
        cm = self.settings.colour
        track = rgb if cm is None else self._working_view(frame, rgb, cm)
        self._tracking[index] = (frame, rgb, emit, track, holdout)
        if index % SEGMENT_FRAMES == 0 and self._tracker is not None:
            # Segment start: a fresh tracker from here. The old one runs on past it only while
            # it holds frames before it (a miss not yet made good), at most detect_every frames,
            # so a miss across the start is settled as in the middle of a segment.
            self._closing, self._boundary, self._tracker = self._tracker, index, None
        closing = None
        if self._closing is not None and any(i < self._boundary for i in self._tracking):  # type: ignore[operator]
            closing = self._closing.push(index, track)
        if self._tracker is None:
            self._tracker = self._new_tracker()
        settled = self._tracker.push(index, track)
        self.stats.seconds["track"] += time.perf_counter() - t0
        if self._closing is not None:
            yield from self._from_closing(closing or [])
        for tf in settled:
            if self._closing is not None:
                self._deferred.append(tf)  # after the old segment's frames, in order
            else:
                yield from self._tracked(tf)

    def _working_view(self, frame: Any, rgb: Picture, cm: ColourManagement) -> np.ndarray:
        """(H, W, 3) uint8 working-space picture of a frame, for finding faces. A deep source is
        converted from its own depth: an 8-bit step before a log-to-display conversion leaves
        steps of several display code values in the highlights, enough to move a detection.
        (Converted whole: managed colour does not get the region conversion.)"""
        if not self.deep:
            return cm.to_working_u8(rgb.whole())
        full = media.read_box(frame, (0, 0, frame.width, frame.height), self.matrix, self.rng)  # (H, W, 3) float32
        return np.clip(np.rint(cm.to_working(full) * np.float32(255.0)), 0, 255).astype(np.uint8)

    def _from_closing(self, settled: list[TrackedFrame]) -> Iterator[Ready]:
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
            self._colour_blend.reset()
            deferred, self._deferred = self._deferred, []
            for tf in deferred:
                yield from self._tracked(tf)

    def _tracked(self, tf: TrackedFrame) -> Iterator[Ready]:
        """A frame whose faces the tracker has settled: choose the faces to swap, queue it for the model."""
        frame, rgb, emit, view, holdout = self._tracking.pop(tf.index)
        chosen = self._choose(list(tf.faces))
        if emit:
            self.stats.held += any(tid in tf.held for tid, _ in chosen)
            self.stats.lost.extend([tf.index] * len(tf.lost))
        reason = None if chosen else ("not identity" if tf.faces else "no face")
        if not chosen and isinstance(rgb, media.RegionRGB):
            rgb.release()  # (a no-op for a caller's picture: it has no pool)
        yield from self._queue(_Pending(tf.index, frame, rgb if chosen else None, chosen, emit, reason,
                                        view=view if chosen and self.settings.colour is not None else None,
                                        holdout=holdout))

    def flush(self) -> Iterator[Ready]:
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

    def _queue(self, item: _Pending) -> Iterator[Ready]:
        self._pending.append(item)
        self._pending_faces += len(item.faces)
        if self._pending_faces >= MODEL_BATCH:
            yield from self._start_batch()
        elif self._pending_faces == 0:
            yield from self._drain()

    def _drain(self) -> Iterator[Ready]:
        """Pass the pending frames (none has a face to swap) on, after the batch in flight."""
        yield from self._finish_in_flight()
        pending, self._pending, self._pending_faces = self._pending, [], 0
        for p in pending:
            if p.emit:
                yield p.index, p.frame, p.reason, ()

    def _face_box(self, pic: Picture, crop_from_frame: np.ndarray, size: int | None = None) -> tuple[int, int, int, int]:
        """The frame box that cropping, pasting and patching a face read: the crop square grown by
        2 crop pixels (paste_face's box reaches 1 beyond it), then by 12 frame pixels (patch_regions
        converts 8 around what changed, and the boxes round outward by up to 3); with grain=match,
        also the ring paste_face measures the source's grain in (grain.RING of the box's side)."""
        s = size or self.size  # the crop's side: S, or S * scale for an upscaled face
        grown = np.array([[1, 0, 2], [0, 1, 2]], np.float64)  # crop -> a crop 4 px bigger, same centre
        x0, y0, x1, y1 = warp_footprint(grown @ np.vstack([crop_from_frame, (0, 0, 1)]), (s + 4, s + 4),
                                        pic.shape, margin=12)
        if self._paste_settings.grain == "match":
            r = math.ceil(RING * max(x1 - x0, y1 - y0)) + 2
            h, w = pic.shape[:2]
            x0, y0, x1, y1 = max(0, x0 - r), max(0, y0 - r), min(w, x1 + r), min(h, y1 + r)
        return x0, y0, x1, y1

    def _run_model(self) -> Iterator[Ready]:
        """Every pending frame finished now (the batch in flight, then the pending ones): before
        the blend state resets (segment start, end of a range) and at the end."""
        yield from self._start_batch()
        yield from self._finish_in_flight()

    def _start_batch(self) -> Iterator[Ready]:
        """Send the pending faces to the model; finish the batch that was in flight meanwhile.

        With the model in its own process the new batch runs there while this thread composites
        the previous one and tracks the next frames (`SwapModel.submit`); in-process it has run
        by the time `submit` returns. Either way frames come out in order, with the same pixels."""
        todo = [(p, tid, face) for p in self._pending for tid, face in p.faces]
        if not todo:
            yield from self._drain()
            return
        t0 = time.perf_counter()
        # Managed colour: crops are cut from the working-space view (the space the model learned in,
        # also the colour transfer's target); the frame boxes are converted in paste_face. Else from
        # p.rgb, with every face's box converted before any is pasted: the crops read it, paste_face
        # reads and writes inside it, patch_regions reads 8 px around what changed.
        crops = np.stack([cv2.warpAffine(p.rgb.region(*self._face_box(p.rgb, face.crop_from_frame))
                                         if p.view is None else p.view, face.crop_from_frame,
                                         (self.size, self.size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
                          for p, _, face in todo])  # (N, S, S, 3) uint8
        previous = self._collect()  # its answer is read before the next request goes out
        batch = _Batch(self._pending, todo, crops,
                       self.model.submit(crops, rebuild=self._source_pass))
        self._pending, self._pending_faces = [], 0
        self.stats.seconds["model"] += time.perf_counter() - t0
        self._in_flight = batch
        if previous is not None:
            yield from self._composite(*previous)

    def _collect(self) -> tuple[_Batch, list[tuple[np.ndarray, np.ndarray | None]]] | None:
        """The batch in flight and the model's answer for it (waits for it), or None."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return None
        t0 = time.perf_counter()
        answer = batch.answer()
        self.stats.seconds["model"] += time.perf_counter() - t0
        return batch, answer

    def _finish_in_flight(self) -> Iterator[Ready]:
        done = self._collect()
        if done is not None:
            yield from self._composite(*done)

    def _composite(self, batch: _Batch, answer: list[tuple[np.ndarray, np.ndarray | None]]) -> Iterator[Ready]:
        """Blend, mask, colour-match and paste a batch's faces; yield its frames, in order."""
        todo, crops = batch.todo, batch.crops
        (swapped, learned), (rebuilt, rebuilt_mask) = answer[0], answer[1] if len(answer) > 1 else (None, None)
        occlusion = self._occlusion
        t0 = time.perf_counter()
        work: dict[int, list[_Work]] = {}
        patches: dict[int, list[Patch]] = {}
        blended = [self._blend.update(tid, p.index, swapped[k]) for k, (p, tid, _) in enumerate(todo)]
        used = [k for k, (p, _, _) in enumerate(todo) if p.emit or self._smooth_colour]  # not pre-roll only
        big: dict[int, np.ndarray] = {}
        if self._upscaling and used:  # (n, T, T, 3) float32, T = S * scale
            big = dict(zip(used, self.model.upscale(np.stack([blended[k] for k in used]))))
        # occlusion=learned with a segmenter: where it sees an occluder, the face is not (the decoder
        # mask channel's convention: 1 = face).
        seen = (dict(zip(used, np.float32(1.0) - self.model.segment(crops[used]))) if self._segmenting and used
                else {})
        t1 = time.perf_counter()
        self.stats.seconds["model"] += t1 - t0  # the upscaler counts as the model stage
        t = self.out_size
        for k in used:
            p, tid, face = todo[k]
            lm_crop = landmarks_to_crop(face.landmarks, face.crop_from_frame)
            learned_k = None if learned is None else learned[k]
            mask = face_mask(lm_crop, self.size, self.settings.composite, learned=learned_k)
            original = crops[k].astype(np.float32) * np.float32(1.0 / 255.0)
            keep = None
            if self._source_pass or self._segmenting:  # before the colour statistics: an occluder is no skin
                learned_face = seen[k] if self._segmenting else None if rebuilt_mask is None else rebuilt_mask[k]
                keep = occlusion_keep(occlusion, mask, original, None if rebuilt is None else rebuilt[k],
                                      learned_face, self.model.error_prior)
            frame_from_crop = face.frame_from_crop
            crop = blended[k]
            if k in big:
                # The same crop square at T px: resize_crop_transform keeps pixel centres where
                # cv2.resize (and the upscaler's bicubic base) put them, so the face stays aligned.
                crop_from_frame = resize_crop_transform(face.crop_from_frame, self.size, t)
                frame_from_crop = cv2.invertAffineTransform(crop_from_frame)
                crop = big[k]
                mask = face_mask(landmarks_to_crop(face.landmarks, crop_from_frame), t, self.settings.composite,
                                 learned=None if learned_k is None else cv2.resize(learned_k, (t, t),
                                                                                   interpolation=cv2.INTER_LINEAR))
                src = p.rgb.region(*self._face_box(p.rgb, face.crop_from_frame)) if p.view is None else p.view
                original = cv2.warpAffine(src, crop_from_frame, (t, t), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32) * np.float32(1 / 255)
                if keep is not None:
                    keep = np.clip(cv2.resize(keep, (t, t), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
            if keep is not None:
                mask = mask * keep
            if self._smooth_colour and float(mask.sum()) >= 16.0 * (t // self.size) ** 2:  # as transfer_colour's minimum
                stats = self._colour_blend.update(tid, p.index, rct_statistics(crop, original, mask))
                crop = rct_apply(crop, stats)
            if not p.emit:
                continue  # pre-roll: only the temporal state matters
            # Grain seeded by absolute frame index and track: chunked renders draw the same grain.
            work.setdefault(p.index, []).append((crop, frame_from_crop, mask, original, (p.index, tid)))
        pending = batch.frames
        for p in pending:
            if p.emit and p.faces:
                self.stats.faces += len(p.faces)
                paste = self._paste_deep if self.deep else self._paste_8bit
                p.frame, patches[p.index] = paste(p, work.get(p.index, []))
            if isinstance(p.rgb, media.RegionRGB):
                p.rgb.release()
        self.stats.seconds["composite"] += time.perf_counter() - t1
        for p in pending:
            if p.emit:
                yield p.index, p.frame, p.reason, tuple(patches.get(p.index, ())) if self.keep_patches else ()

    def _paste_8bit(self, p: _Pending, faces: list[_Work]
                    ) -> tuple[Any, list[Patch]]:
        """Paste the faces into p.rgb (this stage's own 8-bit conversion of the frame, done with once
        tracked and cropped; a second face over the first), then patch their boxes into the frame.
        Returns the patched frame and the faces' patches, in frame pixels."""
        assert p.rgb is not None
        for crop, frame_from_crop, *_ in faces:  # every box converted before the first paste (done when cropped)
            p.rgb.region(*self._face_box(p.rgb, cv2.invertAffineTransform(frame_from_crop), crop.shape[0]))
        rgb = p.rgb.region(0, 0, 0, 0)  # the frame-sized array the faces are pasted into
        patches = []
        noise_after = self._noise_after(p.frame.format.name)
        for crop, frame_from_crop, mask, original, seed in faces:
            patch = paste_face(rgb, crop, frame_from_crop, mask, self._paste_settings, original,
                               self.settings.colour, seed=seed, holdout=p.holdout, plate=self.keep_plates,
                               noise_after=noise_after)
            if patch is not None:
                patches.append(patch)
        regions = [(pt.x0, pt.y0, pt.changed) for pt in patches]
        return media.patch_regions(p.frame, rgb, regions, self.matrix, self.rng), patches

    def _noise_after(self, fmt: str) -> tuple[np.ndarray, float]:
        """The noise a pasted 8-bit face picks up in a frame of coded format `fmt` (the grain match takes
        it off what it adds: `grain.output_noise`), measured once per format."""
        if fmt not in self._format_noise:
            self._format_noise[fmt] = output_noise(lambda rgb: media.round_trip_rgb(rgb, fmt, self.matrix, self.rng))
        return self._format_noise[fmt]

    def _paste_deep(self, p: _Pending, faces: list[_Work]
                    ) -> tuple[Any, list[Patch]]:
        """Paste the faces into float32 boxes read from the decoded frame at its depth, then write each
        box back at that depth. Faces whose boxes come near each other share one box (their union, so
        a second face blends over the first); faces apart get their own, so two faces at opposite
        corners do not convert the frame between them."""
        assert p.rgb is not None
        hw = p.rgb.shape[:2]
        # Two pixels beyond each face: patch_regions aligns changed boxes to the 2x2 chroma grid.
        groups: list[tuple[list[int], list[_Work]]] = []
        for face in faces:
            b = paste_box(face[2], face[1], hw)
            if b is None:
                continue
            box = [max(0, b[0] - 2), max(0, b[1] - 2), min(hw[1], b[2] + 2), min(hw[0], b[3] + 2)]
            members = [face]
            # Merge with every group it comes within the chroma margins of (both sides): a patch then never
            # filters chroma from pixels another group changes.
            near = 2 * media.PATCH_MARGIN
            merged = True
            while merged:  # a grown box may reach a group it missed before
                merged = False
                for g in groups:
                    gb = g[0]
                    if box[0] < gb[2] + near and gb[0] < box[2] + near and box[1] < gb[3] + near and gb[1] < box[3] + near:
                        groups.remove(g)
                        box = [min(box[0], gb[0]), min(box[1], gb[1]), max(box[2], gb[2]), max(box[3], gb[3])]
                        members = g[1] + members  # earlier faces first: a later face blends over them
                        merged = True
                        break
            groups.append((box, members))
        pasted: list[Patch] = []
        for (x0, y0, x1, y1), members in groups:
            deep = media.read_box(p.frame, (x0, y0, x1, y1), self.matrix, self.rng)  # (h, w, 3) float32
            patches = []
            for crop, frame_from_crop, mask, original, seed in members:
                box_from_crop = frame_from_crop.copy()
                box_from_crop[:, 2] -= (x0, y0)
                patch = paste_face(deep, crop, box_from_crop, mask, self._paste_settings, original,
                                   self.settings.colour, seed=seed,
                                   holdout=None if p.holdout is None else p.holdout[y0:y1, x0:x1],
                                   plate=self.keep_plates)
                if patch is not None:
                    pasted.append(Patch(x0 + patch.x0, y0 + patch.y0, patch.changed, patch.alpha, patch.face))
                    patches.append((x0 + patch.x0, y0 + patch.y0, patch.changed))
            p.frame = media.patch_regions(p.frame, deep, patches, self.matrix, self.rng, origin=(x0, y0))
        return p.frame, pasted
