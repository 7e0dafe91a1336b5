"""Detection recall and false positives on real photos and every frame of a real video."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.errors import InputError
from renderer.faces.detect import (
    DETECTORS,
    Detection,
    detect,
    detect_near,
    iou,
    search_region,
)
from renderer.media import probe, read_frames
from tests import face_data as F

# photo -> number of faces a person counts in it (frontal, >= 1/8 of the short side)
PHOTOS = {"jesper.jpg": 1, "jesper_2.jpg": 1, "anne_helene.jpg": 1, "bar55_2.jpg": 2}


def test_registry_names_both_detectors() -> None:
    assert set(DETECTORS) == {"hog", "mtcnn"}


@pytest.mark.parametrize("detector", ["hog", "mtcnn"])
def test_every_face_in_the_real_photos_is_found(detector: str) -> None:
    found_total, false_pos = 0, 0
    for name, count in PHOTOS.items():
        dets = detect(F.read_rgb(F.kphotoalbum_file(name)), detector, min_size=60)
        assert all(isinstance(d, Detection) for d in dets)
        assert len(dets) >= count, f"{detector} found {len(dets)} faces in {name}, expected {count}"
        found_total += min(len(dets), count)
        false_pos += max(0, len(dets) - count)
    assert found_total == sum(PHOTOS.values())
    assert false_pos == 0, f"{detector}: {false_pos} false positives"
    for name in F.NO_FACE:
        assert detect(F.read_rgb(F.kphotoalbum_file(name)), detector, min_size=60) == [], name


def test_hog_finds_the_face_on_every_frame_of_the_real_video() -> None:
    movie = F.kphotoalbum_file(F.MOVIE)
    info = probe(movie)
    assert (info.width, info.height) == (160, 120)
    hits, extra = 0, 0
    for _, rgb in read_frames(movie, 0, info.frames - 1, info):
        dets = detect(rgb, "hog")  # 160x120: default min_size 40 -> frame upsampled 2x for HOG
        hits += len(dets) >= 1
        extra += max(0, len(dets) - 1)
    assert hits == info.frames == 68
    assert extra == 0


def test_mtcnn_points_and_box_in_frame_pixels() -> None:
    rgb = F.read_rgb(F.kphotoalbum_file("jesper_2.jpg"))
    (d,) = detect(rgb, "mtcnn", min_size=60)
    assert d.points5 is not None and d.points5.shape == (5, 2)
    x0, y0, x1, y1 = d.box
    assert np.all((d.points5[:, 0] > x0) & (d.points5[:, 0] < x1))
    assert np.all((d.points5[:, 1] > y0) & (d.points5[:, 1] < y1))
    (h,) = detect(rgb, "hog", min_size=60)
    # MTCNN box rebuilt into dlib geometry: centres within a tenth of the side, sizes within 25%
    side = h.box[2] - h.box[0]
    assert abs((x0 + x1) / 2 - (h.box[0] + h.box[2]) / 2) < 0.1 * side
    assert abs((y0 + y1) / 2 - (h.box[1] + h.box[3]) / 2) < 0.1 * side
    assert 0.75 < (x1 - x0) / side < 1.25


def test_bad_input_is_named() -> None:
    with pytest.raises(InputError, match="unknown face detector 'hgo'.*did you mean 'hog'"):
        detect(np.zeros((64, 64, 3), np.uint8), "hgo")
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8 RGB frame; got ndarray \(64, 64\) float32"):
        detect(np.zeros((64, 64), np.float32))


def test_deterministic() -> None:
    rgb = F.read_rgb(F.kphotoalbum_file("bar55_2.jpg"))
    a = [d.box for d in detect(rgb)]
    b = [d.box for d in detect(rgb)]
    assert a == b and len(a) == 2


# ------------------------------------------------------------------ detect_near (tracker key frames)

@pytest.mark.parametrize("detector", ["hog", "mtcnn"])
def test_detect_near_finds_each_face_of_the_couple_and_only_near_the_box(detector: str) -> None:
    rgb = F.read_rgb(F.kphotoalbum_file(F.COUPLE))
    full = detect(rgb, detector, min_size=60)
    assert len(full) == 2
    for d in full:
        near = detect_near(rgb, d.box, detector, min_size=60)
        assert near, f"{detector}: nothing near {d.box}"
        best = max(near, key=lambda n: iou(n.box, d.box))
        assert iou(best.box, d.box) > 0.5  # boxes come back in frame pixels
        x0, y0, x1, y1 = search_region(d.box, rgb.shape)
        for n in near:  # found inside the searched square only (a box may stick out of it)
            assert x0 <= (n.box[0] + n.box[2]) / 2 <= x1 and y0 <= (n.box[1] + n.box[3]) / 2 <= y1
        if detector == "mtcnn":
            assert best.points5 is not None and np.all((best.points5 >= (x0, y0)) & (best.points5 <= (x1, y1)))
    # a square in the corner, far from both faces, holds none
    side = full[0].size
    assert detect_near(rgb, (0.0, 0.0, side, side), detector, min_size=60) == []


def test_detect_near_keeps_min_size_and_checks_input() -> None:
    rgb = F.read_rgb(F.kphotoalbum_file("jesper_2.jpg"))
    (d,) = detect(rgb, min_size=60)
    assert detect_near(rgb, d.box, min_size=int(d.size * 2)) == []  # too small for this search
    assert search_region((10.0, 10.0, 30.0, 30.0), (100, 100, 3)) == (0, 0, 40, 40)  # clipped to the frame
    assert detect_near(rgb, (-500.0, -500.0, -400.0, -400.0)) == []  # outside the frame: nothing to search
    with pytest.raises(InputError, match="unknown face detector 'hgo'.*did you mean 'hog'"):
        detect_near(rgb, d.box, "hgo")
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8 RGB frame; got ndarray \(64, 64\) float32"):
        detect_near(np.zeros((64, 64), np.float32), d.box)


def test_detect_near_deterministic() -> None:
    rgb = F.read_rgb(F.kphotoalbum_file(F.COUPLE))
    box = detect(rgb, min_size=60)[0].box
    a = detect_near(rgb, box, min_size=60)
    b = detect_near(rgb, box, min_size=60)
    assert [d.box for d in a] == [d.box for d in b] and [d.score for d in a] == [d.score for d in b]
