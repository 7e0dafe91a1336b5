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
from renderer.faces.detect import (DETECTORS, PYRAMID_STEP, Detection, box_side, coarse_min_size, default_min_size, detect,
                                   detect_near, iou, search_region)
from renderer.faces.identity import embed as embed_face
from renderer.faces.landmarks import LandmarkModel
from renderer.faces.picture import Picture, as_picture, warp_footprint


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
    found_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the detector's box when last found
    ncc: float = 1.0  # this frame's match of the tracked crop against `template`
    missed_since: int | None = None  # first frame of a detector miss not yet made good (None: found)
    anchor: tuple[int, Face] | None = None  # the last frame (and face) given out before the miss

    def move(self, raw: np.ndarray, unit: np.ndarray) -> None:
        """This frame's landmarks (and their similarity): the expected box follows them."""
        self.raw, self.unit = raw, unit
        self.box = _predicted_box(unit, self.box_in_unit)


@dataclass(frozen=True, eq=False)
class TrackedFrame:
    """One frame's faces once the tracker has settled them (`FaceTracker.push`).

    faces: (track id, Face) in track order. held: ids of the faces in `faces`
    that the detector missed on this frame but found again within
    `detect_every` frames (landmarks tracked, or interpolated where the
    tracked crop stopped looking like the face). lost: ids of tracks that
    vanish from this frame on: missed here and not found again in time.
    """

    index: int
    faces: tuple[tuple[int, Face], ...]
    held: tuple[int, ...] = ()
    lost: tuple[int, ...] = ()


@dataclass
class _Held:
    """A frame waiting for the tracks the detector missed on it to be found again (or given up)."""

    index: int
    faces: list[tuple[int, Face]]
    pending: dict[int, tuple[Face, bool]]  # track id -> (tracked face, crop still matched the template)
    held: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)


_TEMPLATE = 32
_MIN_NCC = 0.55  # below this the tracked crop no longer looks like the key-frame face
# Landmarks read a window this many box sides around the box: dlib's predictors read within 0.2
# (on the bench's 200 and 650 px faces, boxes moved by up to 15 px, a window of 0.2 gave the
# whole frame's points every time, 0.15 did not); twice that, for faces unlike those.
LANDMARK_PAD = 0.4
# Whole-frame searches while faces are tracked (FaceTracker._detect): every SMALL_SEARCH_EVERYth
# looks for new faces down to min_size; the others only for faces of at least 1 / NEW_FACE_SHARE
# of the frame's short side, and around the tracked faces under _NEAR_BAND times that. With the
# swap's detect_every 8 and full_search_every 2, the small-face search is each 48-frame segment's
# first, where the search is whole anyway: a new face that big is found within 16 frames, a
# smaller one within 48 (before: 16 frames for faces of 1/8 of the short side or more, 32 under;
# bench/results/swap.md, section 1h).
SMALL_SEARCH_EVERY = 3
NEW_FACE_SHARE = 6
_NEAR_BAND = 1.25


def new_face_min_size(frame_shape: tuple[int, ...]) -> int:
    """The smallest new face the tracker's frequent whole-frame searches look for: at least
    1/NEW_FACE_SHARE of the short side, on the scale ladder of detect's coarse pass (coarse_min_size
    times a power of HOG's 6/5 pyramid step), so both give boxes of the same sizes. 1080p: 194 px."""
    coarse = coarse_min_size(frame_shape)
    target = min(frame_shape[0], frame_shape[1]) / NEW_FACE_SHARE
    steps = max(0, math.ceil(math.log(target / coarse) / math.log(PYRAMID_STEP) - 1e-9))
    return int(coarse * PYRAMID_STEP**steps)


def _landmarks(model: LandmarkModel, pic: Picture, box: tuple[float, float, float, float]) -> np.ndarray:
    """(K, 2) landmarks of the face in `box`, read from a window around it (converted on demand)."""
    return _landmarks_of(model, pic, [box])[0]


def _landmarks_of(model: LandmarkModel, pic: Picture, boxes: list[tuple[float, float, float, float]]) -> list[np.ndarray]:
    """`_landmarks` of several faces, in one pass over the model where the picture holds every
    window in one array (it does: a picture fills the regions asked for into one frame buffer)."""
    windows = [search_region(box, pic.shape, LANDMARK_PAD) for box in boxes]
    frames = [pic.region(*window) for window in windows]
    if not frames or any(f is not frames[0] for f in frames):
        return [model(f, box, window) for f, box, window in zip(frames, boxes, windows)]
    return model.many(frames[0], boxes, windows)


def _grey_template(pic: Picture, unit: np.ndarray) -> np.ndarray:
    """(32, 32) float32 zero-mean unit-norm grey crop of the face whose landmarks give `unit` (unit_from_frame)."""
    crop_from_unit = np.array([[_TEMPLATE * 0.8, 0, _TEMPLATE * 0.1], [0, _TEMPLATE * 0.8, _TEMPLATE * 0.1], [0, 0, 1]])
    m = (crop_from_unit @ unit)[:2]
    frame_rgb = pic.region(*warp_footprint(m, (_TEMPLATE, _TEMPLATE), pic.shape))
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


class FaceTracker:
    """Faces through one video: feed consecutive frames to `push` (or `update`); gaps force a detection.

    detect_every: run the detector at least every N frames. Between key
    frames a face's box comes from its previous landmarks; a track whose crop
    stops matching its key-frame appearance (normalised cross-correlation
    below 0.55) triggers a detection in that same frame.
    full_search_every: search the whole frame at least every N key frames;
    the key frames between search only around the live tracks, so a face
    entering the shot is picked up within N key frames (N * detect_every
    frames). 1 searches the whole frame on every key frame.
    min_size: smallest face searched for (px); None: `detect`'s default. While
    faces are tracked, new faces under `new_face_min_size` (1/6 of the short
    side, 194 px at 1080p) are searched for on every `SMALL_SEARCH_EVERY`th
    whole-frame search only (HOG at the smaller scales and the MTCNN pass for
    faces under detect's coarse scale cost several times the rest), so one
    entering that small is picked up within
    SMALL_SEARCH_EVERY * N key frames; tracked ones that small are searched
    for around where they are on the other whole-frame searches.

    Short misses: a track the detector does not find is kept, its landmarks
    tracked, and searched for again (near its box only) on each following
    frame. Found within `detect_every` frames, the frames of the miss get the
    face (tracked landmarks, or landmarks interpolated between the frames
    around where the tracked crop stopped matching); not found, the track is
    lost from the first missed frame on. `push` gives frames out only once
    that is settled, so it runs up to `detect_every` frames behind its input;
    `update` answers at once and leaves a missed face out.
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
        self._held: list[_Held] = []  # frames given in but not yet out (push)
        self.detections_run = 0  # how many frames ran the detector (for benchmarks and tests)
        self.full_searches = 0  # how many of those searched the whole frame

    def _new_track(self, frame_rgb: Picture, det: Detection, lm: np.ndarray, frame_index: int) -> _Track:
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
            found_box=det.box,
        )
        self._next_id += 1
        return t

    def _search_near_tracks(self, frame_rgb: Picture, tracks: list[_Track]) -> tuple[list[Detection], list[_Track]]:
        """(detections around the tracks' expected boxes, largest first; the tracks not found near theirs).

        A track whose tracked crop stopped matching is searched for where it was last found."""
        found: list[Detection] = []
        missing = []
        for t in tracks:
            box = t.box if t.ncc >= _MIN_NCC else t.found_box
            near = detect_near(frame_rgb.region(*search_region(box, frame_rgb.shape)), box, self.detector, self.min_size)
            if not any(_matches(d.box, t) for d in near):
                missing.append(t)
            found.extend(near)
        # Regions of nearby tracks overlap: a face found from two of them is kept once
        # (the larger box, then the first found: a fixed order, so deterministic).
        kept: list[Detection] = []
        for d in sorted(found, key=lambda d: -d.size):
            if all(iou(d.box, k.box) <= 0.5 for k in kept):
                kept.append(d)
        return kept, missing

    def _refind(self, t: _Track, frame_rgb: Picture, det: Detection) -> None:
        """Put track `t` on a detection of it: fresh landmarks, box geometry and template."""
        lm = _landmarks(self._model, frame_rgb, det.box)
        unit = unit_from_frame(lm)
        t.score, t.found_box, t.ncc = det.score, det.box, 1.0
        t.box_in_unit = apply_affine(unit[:2], _box_corners(det.box))
        t.move(lm, unit)
        t.template = _grey_template(frame_rgb, unit)

    def _detect(self, frame_rgb: Picture, frame_index: int) -> None:
        """A key frame: search (near the tracks, or the whole frame), match detections to tracks."""
        self.detections_run += 1
        self._last_key = frame_index
        dets: list[Detection] | None = None
        if self._tracks and self._region_keys + 1 < self.full_search_every:
            dets, missing = self._search_near_tracks(frame_rgb, self._tracks)
            # A track not found near where it was may have moved fast: look everywhere,
            # unless it was missed before (then only its region is searched again).
            if any(t.missed_since is None for t in missing):
                dets = None
        if dets is None:
            # While faces are tracked, most whole-frame searches look only for new faces of at least
            # 1/NEW_FACE_SHARE of the short side (1080p: 194 px, where HOG costs about 0.4x its pass
            # at detect's coarse 135 px, and no MTCNN pass runs for the faces under that); every
            # SMALL_SEARCH_EVERYth one looks for faces down to min_size. The tracked faces the
            # bigger search cannot see are searched for around where they are, as between searches.
            small = not self._tracks or self.full_searches % SMALL_SEARCH_EVERY == 0
            min_size = self.min_size if self.min_size is not None else default_min_size(frame_rgb.shape)
            if small:
                dets = detect(frame_rgb.whole(), self.detector, min_size)
            else:
                floor = max(min_size, new_face_min_size(frame_rgb.shape))  # never under detect's coarse scale
                dets = detect(frame_rgb.whole(), self.detector, floor)
                below = [t for t in self._tracks if box_side(t.box) < _NEAR_BAND * floor]
                if below:
                    # HOG finds faces a little under its scale too, in boxes of about its window:
                    # where the search at the face's own scale found one, its box is the one kept.
                    near, _ = self._search_near_tracks(frame_rgb, below)
                    dets = near + [d for d in dets if all(iou(d.box, n.box) <= 0.3 for n in near)]
            self.full_searches += 1
            self._region_keys = 0
        else:
            self._region_keys += 1
        self._match(frame_rgb, frame_index, dets)

    def _retry(self, frame_rgb: Picture, frame_index: int) -> None:
        """A frame after a miss: search near each missed track only (cheap), the others stay tracked."""
        self.detections_run += 1
        missed = [t for t in self._tracks if t.missed_since is not None]
        dets, _ = self._search_near_tracks(frame_rgb, missed)
        self._match(frame_rgb, frame_index, dets, only=missed)

    def _match(self, frame_rgb: Picture, frame_index: int, dets: list[Detection],
               only: list[_Track] | None = None) -> None:
        """Tracks found in `dets` are re-anchored, new faces start tracks (unless `only`), the rest are missed."""
        candidates = list(self._tracks if only is None else only)
        for det in dets:
            best = max(candidates, key=lambda t: _match_score(det.box, t), default=None)
            if best is not None and _matches(det.box, best):
                candidates.remove(best)
                self._refind(best, frame_rgb, det)
                best.missed_since = None  # made good: `_settle` gives the held frames their face
            elif only is None and all(iou(det.box, t.box) <= 0.3 for t in self._tracks):
                lm = _landmarks(self._model, frame_rgb, det.box)
                self._tracks.append(self._new_track(frame_rgb, det, lm, frame_index))
        for t in candidates:
            if t.missed_since is None:
                t.missed_since = frame_index

    def update(self, frame_index: int, frame_rgb: np.ndarray | Picture) -> list[Face]:
        """Faces found or tracked in this frame, one per track in track order; a missed face is left out.

        frame_rgb: (H, W, 3) uint8 RGB, or a `Picture` (read only where the tracker looks)."""
        held = self._step(frame_index, as_picture(frame_rgb))
        faces = [face for tid, face in held.faces if tid not in held.pending]
        self._settle(final=False)  # nobody reads these frames again: keep only the ones still open
        return faces

    def push(self, frame_index: int, frame_rgb: np.ndarray | Picture) -> list[TrackedFrame]:
        """Take the next frame (as for `update`); return the frames now settled, in order (this one, or none, or several)."""
        if self._last_frame is not None and frame_index != self._last_frame + 1:
            out = self.flush()  # a jump: misses cannot be made good across it
        else:
            out = []
        self._step(frame_index, as_picture(frame_rgb))
        return out + self._settle(final=False)

    def flush(self) -> list[TrackedFrame]:
        """Every frame still held, settled: misses not yet made good count as lost."""
        for t in [t for t in self._tracks if t.missed_since is not None]:
            self._give_up(t)
        return self._settle(final=True)

    def _step(self, frame_index: int, frame_rgb: Picture) -> _Held:
        consecutive = self._last_frame is not None and frame_index == self._last_frame + 1
        if not consecutive:
            for t in [t for t in self._tracks if t.missed_since is not None]:
                self._give_up(t)
            self._tracks = []  # a jump in time: old positions and filter state mean nothing here
        for t, lm in zip(self._tracks, _landmarks_of(self._model, frame_rgb, [t.box for t in self._tracks])):
            t.move(lm, unit_from_frame(lm))
            t.ncc = float((_grey_template(frame_rgb, t.unit) * t.template).sum())
        due = self._last_key is None or frame_index - self._last_key >= self.detect_every
        if not self._tracks or due or any(t.ncc < _MIN_NCC and t.missed_since is None for t in self._tracks):
            self._detect(frame_rgb, frame_index)
        elif any(t.missed_since is not None for t in self._tracks):
            self._retry(frame_rgb, frame_index)
        for t in [t for t in self._tracks if t.missed_since is not None]:
            if frame_index - t.missed_since >= self.detect_every:
                self._give_up(t)
        held = _Held(frame_index, [], {})
        for t in self._tracks:
            face = self._face(t, frame_rgb, frame_index)
            held.faces.append((t.track_id, face))
            if t.missed_since is not None:
                held.pending[t.track_id] = (face, t.ncc >= _MIN_NCC)
            else:
                self._make_good(t, frame_index, face)
        self._held.append(held)
        self._last_frame = frame_index
        return held

    def _face(self, t: _Track, frame_rgb: Picture, frame_index: int) -> Face:
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
            face = _with_embedding(face, embed_face(frame_rgb.whole(), lm))
        return face

    def _make_good(self, t: _Track, frame_index: int, face: Face) -> None:
        """Track `t` is found (or tracked) on `frame_index`: its held frames get their faces."""
        frames = [h for h in self._held if t.track_id in h.pending]
        if frames:
            good = [(t.anchor[0], t.anchor[1])] if t.anchor is not None else []
            good += [(h.index, h.pending[t.track_id][0]) for h in frames if h.pending[t.track_id][1]]
            good.append((frame_index, face))
            for h in frames:
                tracked, matched = h.pending.pop(t.track_id)
                h.held.append(t.track_id)
                if not matched:
                    h.faces = [(tid, _between(good, h.index, self.crop_size, self.coverage) if tid == t.track_id else f)
                               for tid, f in h.faces]
        t.anchor = (frame_index, face)

    def _give_up(self, t: _Track) -> None:
        """Track `t` was not found again in time: it is lost from its first missed frame on."""
        for h in self._held:
            if t.track_id in h.pending:
                h.pending.pop(t.track_id)
                h.faces = [(tid, f) for tid, f in h.faces if tid != t.track_id]
                if h.index == t.missed_since:
                    h.lost.append(t.track_id)
        self._tracks = [u for u in self._tracks if u is not t]
        t.missed_since = None

    def _settle(self, final: bool) -> list[TrackedFrame]:
        out = []
        while self._held and (final or not self._held[0].pending):
            h = self._held.pop(0)
            out.append(TrackedFrame(h.index, tuple(h.faces), tuple(h.held), tuple(h.lost)))
        return out

    @property
    def track_ids(self) -> list[int]:
        """Stable ids of the live tracks, in the order `update` returns faces."""
        return [t.track_id for t in self._tracks]


def _match_score(box: tuple[float, float, float, float], t: _Track) -> float:
    """How well a detection fits a track: overlap with where it is expected, or where it was last found."""
    return max(iou(box, t.box), iou(box, t.found_box) if t.missed_since is not None else 0.0)


def _matches(box: tuple[float, float, float, float], t: _Track) -> bool:
    return _match_score(box, t) > 0.3


def _between(good: list[tuple[int, Face]], index: int, crop_size: int, coverage: float) -> Face:
    """The face at `index` interpolated (landmarks and box, linearly) between the good frames around it."""
    before = max((g for g in good if g[0] < index), key=lambda g: g[0], default=None)
    after = min((g for g in good if g[0] > index), key=lambda g: g[0])
    if before is None:
        return after[1]
    w = (index - before[0]) / (after[0] - before[0])
    a, b = before[1], after[1]
    lm = (1 - w) * a.landmarks + w * b.landmarks
    box = tuple((1 - w) * p + w * q for p, q in zip(a.box, b.box))
    face = make_face(lm, box, min(a.score, b.score), crop_size, coverage)  # type: ignore[arg-type]
    return face if b.embedding is None else _with_embedding(face, b.embedding)
