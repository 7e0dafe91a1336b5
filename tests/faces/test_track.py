"""Tracking: landmark error and jitter on a known-path clip; key-frame scheduling; real video."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.errors import InputError
from renderer.faces.track import FaceTracker, OneEuroFilter
from renderer.media import probe, read_frames
from tests import face_data as F


def _errors(frames: np.ndarray, truth: np.ndarray, **kw) -> tuple[float, float, int]:
    """(landmark RMS error px, frame-to-frame jitter px, detector runs) of a tracker over a clip."""
    tracker = FaceTracker(fps=25, detect_every=10, **kw)
    est = []
    for i, f in enumerate(frames):
        faces = tracker.update(i, f)
        assert len(faces) == 1, f"frame {i}: {len(faces)} faces"
        est.append(faces[0].landmarks)
    err = np.array(est) - truth
    rms = float(np.sqrt((err**2).sum(-1).mean()))
    jitter = float(np.sqrt((np.diff(err, axis=0) ** 2).sum(-1).mean()))
    return rms, jitter, tracker.detections_run


@pytest.mark.parametrize("photo", ["astronaut", "obama"])
def test_smoothing_halves_jitter_without_raising_error(photo: str) -> None:
    path = F.astronaut() if photo == "astronaut" else F.face_recognition_images() / "obama.jpg"
    frames, truth = F.moving_photo_frames(path, 30, (320, 240))
    rms_raw, jit_raw, runs = _errors(frames, truth, smoothing=False)
    rms_s, jit_s, _ = _errors(frames, truth, smoothing=True)
    assert runs == 3  # frames 0, 10, 20: tracking held in between
    assert rms_raw < 2.0  # the tracker follows the known path to about a pixel
    assert jit_s <= 0.5 * jit_raw, (jit_s, jit_raw)
    assert rms_s <= rms_raw, (rms_s, rms_raw)


def test_still_face_does_not_move() -> None:
    frames, _ = F.moving_photo_frames(F.astronaut(), 8, (320, 240), path_fn=lambda t: (0, 0, 0, 1, 1))
    tracker = FaceTracker(detect_every=100)
    lms = [tracker.update(i, f)[0].landmarks for i, f in enumerate(frames)]
    assert max(float(np.abs(l - lms[0]).max()) for l in lms) < 0.5


def test_lost_track_triggers_detection_and_gap_resets() -> None:
    frames, _ = F.moving_photo_frames(F.astronaut(), 30, (320, 240))  # small steps: trackable
    blank = np.full_like(frames[0], 90)
    tracker = FaceTracker(detect_every=100)
    assert len(tracker.update(0, frames[0])) == 1
    assert len(tracker.update(1, frames[1])) == 1
    assert tracker.detections_run == 1
    assert tracker.update(2, blank) == []  # face gone: low confidence -> detect -> nothing
    assert tracker.detections_run == 2
    assert len(tracker.update(3, frames[3])) == 1  # no tracks -> detect again
    first_id = tracker.track_ids
    tracker.update(5, frames[5])  # a gap in frame indices forces a fresh detection
    assert tracker.detections_run == 4 and tracker.track_ids != first_id


def test_real_video_every_frame_tracked_with_few_detections() -> None:
    movie = F.kphotoalbum_file(F.MOVIE)
    info = probe(movie)
    tracker = FaceTracker(detect_every=10, fps=float(info.fps), crop_size=64)
    count = 0
    for i, rgb in read_frames(movie, 0, info.frames - 1, info):
        faces = tracker.update(i, rgb)
        assert len(faces) == 1, f"frame {i}"
        x0, y0, x1, y1 = faces[0].box
        assert 0 <= (x0 + x1) / 2 < 160 and 0 <= (y0 + y1) / 2 < 120
        count += 1
    assert count == 68
    assert tracker.detections_run <= 68 // 10 + 3


def test_one_euro_and_tracker_arguments_checked() -> None:
    with pytest.raises(InputError, match="fps must be > 0; got 0"):
        OneEuroFilter(0)
    with pytest.raises(InputError, match="detect_every must be >= 1; got 0"):
        FaceTracker(detect_every=0)
    with pytest.raises(InputError, match="unknown face detector 'cnn'"):
        FaceTracker(detector="cnn")
    f = OneEuroFilter(25, min_cutoff=0.5, beta=0.0)
    x = np.zeros((3, 2))
    f(x, 1.0)
    y = f(x + 1.0, 1.0)
    assert np.all((y > 0) & (y < 1))  # a step is followed part-way
