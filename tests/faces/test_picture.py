"""Face stages read frames through renderer.faces.picture: they ask for every pixel they read."""

from __future__ import annotations

import numpy as np

from renderer.faces.detect import detect, search_region
from renderer.faces.landmarks import LandmarkModel
from renderer.faces.picture import DensePicture, warp_footprint
from renderer.faces.track import LANDMARK_PAD, FaceTracker
from tests import face_data as F


class _Asked:
    """A picture holding only the regions asked for (zeros elsewhere), like media.RegionRGB."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb, self.shape = rgb, rgb.shape
        self.array = np.zeros_like(rgb)
        self.asked = np.zeros(rgb.shape[:2], bool)

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        x0, y0 = max(0, x0), max(0, y0)
        self.array[y0:y1, x0:x1] = self.rgb[y0:y1, x0:x1]
        self.asked[y0:y1, x0:x1] = True
        return self.array

    def whole(self) -> np.ndarray:
        return self.region(0, 0, self.shape[1], self.shape[0])


def test_tracker_reads_only_what_it_asks_for() -> None:
    """The same faces from a picture that holds only the asked-for regions as from the whole frame,
    and between whole-frame searches it asks for less than the frame."""
    frames, _ = F.moving_photo_frames(F.astronaut(), 24, (480, 360))
    dense, regional = FaceTracker(fps=25, detect_every=6), FaceTracker(fps=25, detect_every=6)
    shares = []
    for i, f in enumerate(frames):
        want = dense.update(i, DensePicture(f))
        pic = _Asked(f)
        got = regional.update(i, pic)
        shares.append(pic.asked.mean())
        assert len(got) == len(want) == 1, i
        assert np.array_equal(got[0].landmarks, want[0].landmarks), i
        assert got[0].box == want[0].box, i
    assert max(shares) == 1.0 and sorted(shares)[len(shares) // 2] < 0.6, shares


def test_landmarks_in_a_window_are_the_whole_frames() -> None:
    frames, _ = F.moving_photo_frames(F.astronaut(), 3, (480, 360))
    model = LandmarkModel(68)
    for f in frames:
        for d in detect(f):
            for shift in (-12.0, 0.0, 12.0):
                box = tuple(v + shift for v in d.box)
                window = search_region(box, f.shape, LANDMARK_PAD)
                assert np.array_equal(model(f, box, window), model(f, box))


def test_warp_footprint_holds_every_pixel_a_warp_reads() -> None:
    import cv2

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for angle, scale, tx, ty in ((0, 1.0, 10, 20), (17, 0.4, -30, 5), (-40, 2.5, 150, 100), (5, 1.0, -400, -400)):
        m = cv2.getRotationMatrix2D((80, 60), angle, scale)
        m[:, 2] += (tx, ty)
        x0, y0, x1, y1 = warp_footprint(m, (32, 32), frame.shape)
        kept = np.zeros_like(frame)
        kept[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
        a = cv2.warpAffine(frame, m, (32, 32), borderMode=cv2.BORDER_REPLICATE)
        b = cv2.warpAffine(kept, m, (32, 32), borderMode=cv2.BORDER_REPLICATE)
        assert np.array_equal(a, b), (angle, scale, tx, ty)
