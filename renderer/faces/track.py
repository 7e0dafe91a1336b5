"""Faces in a frame (`find_faces`) and through a video (`FaceTracker`).

Tracking: the detector runs on key frames (every `detect_every` frames, on a
gap in frame indices, or as soon as a track's confidence drops); between key
frames each face's box is carried by its own landmarks and the landmark
predictor runs on every frame. On a key frame with live tracks the detector
searches only a padded square around each track (`detect_near`); the whole
frame is searched at least every `full_search_every` key frames (to pick up
faces that entered), whenever a track is not found near where it was, and
whenever there are no tracks. Every choice depends only on the frames seen
since the tracker was made, so a fresh tracker fed the same frames gives
bit-identical faces (render farms start one per segment).

Landmarks are smoothed over time with a One Euro filter (Casiez et al., CHI
2012): a low cut-off when the face is still (no jitter), rising with speed (no
lag when it moves).

Convention: frames (H, W, 3) uint8 RGB; everything geometric in frame pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from renderer.errors import InputError
from renderer.faces import Face
from renderer.faces.align import (
    DEFAULT_COVERAGE,
    DEFAULT_CROP_SIZE,
    apply_affine,
    make_face,
    unit_from_frame,
)
from renderer.faces.detect import DETECTORS, Detection, detect, detect_near
from renderer.faces.identity import embed as embed_face
from renderer.faces.landmarks import LandmarkModel


def find_faces(
    frame_rgb: np.ndarray,
    *,
    detector: str = "hog",
    points: int = 68,
    crop_size: int = DEFAULT_CROP_SIZE,
    coverage: float = DEFAULT_COVERAGE,
    embed: bool = False,
    min_size: int | None = None,
) -> list[Face]:
    """Every face in one frame, largest first: detect -> landmarks -> align (-> embed)."""
    model = LandmarkModel(points)
    faces = []
    for det in detect(frame_rgb, detector, min_size):
        lm = model(frame_rgb, det.box)
        face = make_face(lm, det.box, det.score, crop_size, coverage)
        if embed:
            face = _with_embedding(face, embed_face(frame_rgb, lm))
        faces.append(face)
    return faces


def _with_embedding(face: Face, vec: np.ndarray) -> Face:
    return Face(face.box, face.score, face.landmarks, face.crop_from_frame, face.frame_from_crop, face.crop_size, vec)


class OneEuroFilter:
    """One Euro filter over a whole (K, 2) landmark array.

    Speeds are measured in face sizes per second (the caller passes `scale`,
    the face size in pixels), so the same parameters suit small and big faces.
    The cut-off follows the RMS speed of all points together, which is far less
    noisy than any one point's speed.
    """

    def __init__(self, fps: float, min_cutoff: float = 0.4, beta: float = 2.0, d_cutoff: float = 1.0) -> None:
        if fps <= 0:
            raise InputError(f"fps must be > 0; got {fps}")
        self.fps = float(fps)
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx = 0.0

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, scale: float, frames_elapsed: int = 1) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x = x.copy()
            return x.copy()
        dt = max(1, frames_elapsed) / self.fps
        speed = float(np.sqrt(((x - self._x) ** 2).sum(axis=1).mean())) / max(scale, 1.0) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * speed + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * self._dx
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.copy()


@dataclass
class _Track:
    """Mutable per-face tracking state (private to FaceTracker)."""

    track_id: int
    raw: np.ndarray  # (K, 2) unsmoothed landmarks of the last frame
    unit: np.ndarray  # (3, 3) unit_from_frame(raw), computed once per frame
    box_in_unit: np.ndarray  # (4, 2) detector box corners in the mean-face unit square
    box: tuple[float, float, float, float]  # detector-geometry box that `raw` predicts (frame pixels)
    template: np.ndarray  # (32, 32) float32 normalised grey crop from the last key frame
    last_frame: int
    score: float
    filt: OneEuroFilter | None = field(default=None)

    def move(self, raw: np.ndarray, unit: np.ndarray) -> None:
        """This frame's landmarks (and their similarity): the expected box follows them."""
        self.raw, self.unit = raw, unit
        self.box = _predicted_box(unit, self.box_in_unit)


_TEMPLATE = 32
_MIN_NCC = 0.55  # below this the tracked crop no longer looks like the key-frame face


def _grey_template(frame_rgb: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """(32, 32) float32 zero-mean unit-norm grey crop of the face whose landmarks give `unit` (unit_from_frame)."""
    crop_from_unit = np.array([[_TEMPLATE * 0.8, 0, _TEMPLATE * 0.1], [0, _TEMPLATE * 0.8, _TEMPLATE * 0.1], [0, 0, 1]])
    m = (crop_from_unit @ unit)[:2]
    grey = cv2.cvtColor(cv2.warpAffine(frame_rgb, m, (_TEMPLATE, _TEMPLATE), borderMode=cv2.BORDER_REPLICATE), cv2.COLOR_RGB2GRAY)
    g = grey.astype(np.float32)
    g -= g.mean()
    return g / (float(np.linalg.norm(g)) + 1e-6)


def _box_corners(box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _predicted_box(unit: np.ndarray, box_in_unit: np.ndarray) -> tuple[float, float, float, float]:
    """Square detector-geometry box (frame pixels) of a face: its key-frame box carried by `unit` (unit_from_frame)."""
    corners = apply_affine(np.linalg.inv(unit)[:2], box_in_unit)
    centre = corners.mean(axis=0)
    half = 0.5 * float(np.linalg.norm(corners[1] - corners[0]))
    return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Faces through one video: call `update` with consecutive frames (gaps force a detection).

    detect_every: run the detector at least every N frames. Between key
    frames a face's box comes from its previous landmarks; a track whose crop
    stops matching its key-frame appearance (normalised cross-correlation
    below 0.55) triggers a detection in that same frame.
    full_search_every: search the whole frame at least every N key frames;
    the key frames between search only around the live tracks, so a face
    entering the shot is picked up within N key frames (N * detect_every
    frames). 1 searches the whole frame on every key frame.
    """

    def __init__(
        self,
        *,
        detector: str = "hog",
        points: int = 68,
        crop_size: int = DEFAULT_CROP_SIZE,
        coverage: float = DEFAULT_COVERAGE,
        detect_every: int = 10,
        smoothing: bool = True,
        fps: float = 25.0,
        min_size: int | None = None,
        embed: bool = False,
        min_cutoff: float = 0.4,
        beta: float = 2.0,
        full_search_every: int = 4,
    ) -> None:
        if detector not in DETECTORS:
            raise InputError(f"unknown face detector {detector!r}; available: {', '.join(DETECTORS)}")
        if detect_every < 1:
            raise InputError(f"detect_every must be >= 1; got {detect_every}")
        if full_search_every < 1:
            raise InputError(f"full_search_every must be >= 1; got {full_search_every}")
        self.detector, self.points = detector, points
        self.crop_size, self.coverage = crop_size, coverage
        self.detect_every, self.smoothing, self.fps = detect_every, smoothing, float(fps)
        self.min_size, self.embed = min_size, embed
        self.min_cutoff, self.beta = min_cutoff, beta
        self.full_search_every = full_search_every
        self._model = LandmarkModel(points)
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_key: int | None = None
        self._last_frame: int | None = None
        self._region_keys = 0  # key frames since the last whole-frame search
        self.detections_run = 0  # how many frames ran the detector (for benchmarks and tests)
        self.full_searches = 0  # how many of those searched the whole frame

    def _new_track(self, frame_rgb: np.ndarray, det: Detection, lm: np.ndarray, frame_index: int) -> _Track:
        unit = unit_from_frame(lm)
        box_in_unit = apply_affine(unit[:2], _box_corners(det.box))
        t = _Track(
            track_id=self._next_id,
            raw=lm,
            unit=unit,
            box_in_unit=box_in_unit,
            box=_predicted_box(unit, box_in_unit),
            template=_grey_template(frame_rgb, unit),
            last_frame=frame_index,
            score=det.score,
            filt=OneEuroFilter(self.fps, self.min_cutoff, self.beta) if self.smoothing else None,
        )
        self._next_id += 1
        return t

    def _search_near_tracks(self, frame_rgb: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> list[Detection] | None:
        """Detections around the tracks' expected boxes, largest first; None when a track is not found near its box."""
        found: list[Detection] = []
        for box in boxes:
            near = detect_near(frame_rgb, box, self.detector, self.min_size)
            if not any(_iou(d.box, box) > 0.3 for d in near):
                return None
            found.extend(near)
        # Regions of nearby tracks overlap: a face found from two of them is kept once
        # (the larger box, then the first found: a fixed order, so deterministic).
        kept: list[Detection] = []
        for d in sorted(found, key=lambda d: -d.size):
            if all(_iou(d.box, k.box) <= 0.5 for k in kept):
                kept.append(d)
        return kept

    def _detect(self, frame_rgb: np.ndarray, frame_index: int) -> None:
        self.detections_run += 1
        self._last_key = frame_index
        old = {t.track_id: (t, t.box) for t in self._tracks}
        dets = None
        if old and self._region_keys + 1 < self.full_search_every:
            dets = self._search_near_tracks(frame_rgb, [box for _, box in old.values()])
        if dets is None:
            dets = detect(frame_rgb, self.detector, self.min_size)
            self.full_searches += 1
            self._region_keys = 0
        else:
            self._region_keys += 1
        tracks = []
        for det in dets:
            lm = self._model(frame_rgb, det.box)
            best = max(old.values(), key=lambda tb: _iou(tb[1], det.box), default=None)
            if best is not None and _iou(best[1], det.box) > 0.3:
                t = best[0]
                del old[t.track_id]
                unit = unit_from_frame(lm)
                t.score = det.score
                t.box_in_unit = apply_affine(unit[:2], _box_corners(det.box))
                t.move(lm, unit)
                t.template = _grey_template(frame_rgb, unit)
            else:
                t = self._new_track(frame_rgb, det, lm, frame_index)
            tracks.append(t)
        self._tracks = tracks

    def update(self, frame_index: int, frame_rgb: np.ndarray) -> list[Face]:
        """Faces in this frame (one per live track, in track order); landmarks smoothed when enabled."""
        consecutive = self._last_frame is not None and frame_index == self._last_frame + 1
        if not consecutive:
            self._tracks = []  # a jump in time: old positions and filter state mean nothing here
        due = self._last_key is None or frame_index - self._last_key >= self.detect_every
        if not self._tracks or due:
            self._detect(frame_rgb, frame_index)
        else:
            lost = False
            for t in self._tracks:
                lm = self._model(frame_rgb, t.box)
                t.move(lm, unit_from_frame(lm))
                ncc = float((_grey_template(frame_rgb, t.unit) * t.template).sum())
                lost = lost or ncc < _MIN_NCC
            if lost:
                self._detect(frame_rgb, frame_index)
        faces = []
        for t in self._tracks:
            elapsed = frame_index - t.last_frame
            t.last_frame = frame_index
            lm = t.raw
            if t.filt is not None:
                # Smooth the *shape* in the mean-face square, not frame positions: head
                # motion is carried by this frame's similarity (fitted to all points, so
                # already steady), and only per-point predictor noise is filtered. A
                # moving face gets no lag; a still one stops jittering.
                shape = t.filt(apply_affine(t.unit[:2], t.raw), 1.0, elapsed)
                lm = apply_affine(np.linalg.inv(t.unit)[:2], shape)
            face = make_face(lm, t.box, t.score, self.crop_size, self.coverage)
            if self.embed:
                face = _with_embedding(face, embed_face(frame_rgb, lm))
            faces.append(face)
        self._last_frame = frame_index
        return faces

    @property
    def track_ids(self) -> list[int]:
        """Stable ids of the live tracks, in the order `update` returns faces."""
        return [t.track_id for t in self._tracks]
