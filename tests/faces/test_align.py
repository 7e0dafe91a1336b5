"""Alignment matrices, crops and masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from renderer.errors import InputError
from renderer.faces.align import (
    MEAN_FACE_5, MEAN_FACE_51, align_matrices, apply_affine, crop, make_face, mask_polygon, umeyama,
)
from renderer.faces.detect import detect
from renderer.faces.landmarks import landmarks
from renderer.faces.track import find_faces
from tests import face_data as F


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return F.read_rgb(F.kphotoalbum_file("jesper_2.jpg"))


def test_umeyama_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (20, 2))
    a = 1.7 * np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    dst = src @ a.T + (5.0, -3.0)
    m = umeyama(src, dst)
    np.testing.assert_allclose(m[:2, :2], a, atol=1e-9)
    np.testing.assert_allclose(m[:2, 2], (5.0, -3.0), atol=1e-7)


@pytest.mark.parametrize("points", [68, 5])
def test_matrices_invert_each_other(photo: np.ndarray, points: int) -> None:
    (face,) = find_faces(photo, points=points, crop_size=128, coverage=0.375, min_size=60)
    c_f, f_c = face.crop_from_frame, face.frame_from_crop
    assert c_f.shape == f_c.shape == (2, 3) and c_f.dtype == np.float64
    full = np.vstack([c_f, [0, 0, 1]]) @ np.vstack([f_c, [0, 0, 1]])
    np.testing.assert_allclose(full, np.eye(3), atol=1e-9)
    pts = np.array([[0, 0], [127, 0], [64, 64], [3, 120]], float)
    np.testing.assert_allclose(apply_affine(c_f, apply_affine(f_c, pts)), pts, atol=1e-9)
    # similarity: no shear, equal scales
    a = c_f[:, :2]
    assert abs(a[0, 0] - a[1, 1]) < 1e-9 and abs(a[0, 1] + a[1, 0]) < 1e-9


@pytest.mark.parametrize("points,template", [(68, MEAN_FACE_51), (5, MEAN_FACE_5)])
def test_landmarks_land_on_the_mean_face(photo: np.ndarray, points: int, template: np.ndarray) -> None:
    size, cov = 256, 0.375
    (face,) = find_faces(photo, points=points, crop_size=size, coverage=cov, min_size=60)
    in_crop = apply_affine(face.crop_from_frame, face.landmarks)
    in_crop = in_crop[17:] if points == 68 else in_crop
    expected = template * size * (1 - cov) + size * cov / 2
    # a real face is not the mean face; within 6% of the crop on average
    assert np.sqrt(((in_crop - expected) ** 2).sum(1)).mean() < 0.06 * size


def test_5_and_68_point_crops_frame_the_face_alike(photo: np.ndarray) -> None:
    (f68,) = find_faces(photo, points=68, crop_size=256, min_size=60)
    (f5,) = find_faces(photo, points=5, crop_size=256, min_size=60)
    corners = np.array([[0, 0], [255, 0], [255, 255], [0, 255]], float)
    d = np.linalg.norm(apply_affine(f68.frame_from_crop, corners) - apply_affine(f5.frame_from_crop, corners), axis=1)
    face_px = f68.width
    assert d.max() < 0.1 * face_px, d


def test_crop_shape_dtype_and_content(photo: np.ndarray) -> None:
    (face,) = find_faces(photo, crop_size=96, min_size=60)
    c = crop(photo, face)
    assert c.shape == (96, 96, 3) and c.dtype == np.uint8
    # crop pixel (u, v) is the frame sampled at frame_from_crop @ (u, v) (bilinear)
    rng = np.random.default_rng(1)
    uv = rng.integers(10, 86, (40, 2)).astype(float)
    xy = apply_affine(face.frame_from_crop, uv)
    x0, y0 = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
    fx, fy = (xy[:, 0] - x0)[:, None], (xy[:, 1] - y0)[:, None]
    p = photo.astype(float)
    sample = (p[y0, x0] * (1 - fx) * (1 - fy) + p[y0, x0 + 1] * fx * (1 - fy)
              + p[y0 + 1, x0] * (1 - fx) * fy + p[y0 + 1, x0 + 1] * fx * fy)
    got = c[uv[:, 1].astype(int), uv[:, 0].astype(int)].astype(float)
    assert np.abs(got - sample).max() <= 2.0
    # deterministic
    assert np.array_equal(c, crop(photo, find_faces(photo, crop_size=96, min_size=60)[0]))


def test_mask_polygons_cover_the_face(photo: np.ndarray) -> None:
    (d,) = detect(photo, min_size=60)
    l68, l5 = landmarks(photo, d.box, 68), landmarks(photo, d.box, 5)
    hull, ellipse = mask_polygon(l68), mask_polygon(l5)
    assert hull.ndim == 2 and hull.shape[1] == 2 and ellipse.shape == (48, 2)
    h, w = photo.shape[:2]
    m1 = np.zeros((h, w), np.uint8)
    m2 = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m1, [hull.round().astype(np.int32)], 1)
    cv2.fillPoly(m2, [ellipse.round().astype(np.int32)], 1)
    inside = lambda m, pts: m[pts[:, 1].astype(int), pts[:, 0].astype(int)].mean()  # noqa: E731
    assert inside(m1, l68[27:68]) == 1.0 and inside(m2, l68[27:68]) == 1.0  # eyes, nose, mouth
    iou = (m1 & m2).sum() / (m1 | m2).sum()
    assert iou > 0.7, iou


def test_bad_landmarks_and_parameters() -> None:
    with pytest.raises(InputError, match=r"\(68, 2\) or \(5, 2\); got shape \(10, 2\)"):
        align_matrices(np.zeros((10, 2)), 256)
    with pytest.raises(InputError, match="coverage must be in"):
        align_matrices(np.zeros((5, 2)), 256, coverage=1.5)
    pts = np.full((5, 2), np.nan)
    with pytest.raises(InputError, match="NaN"):
        make_face(pts, (0, 0, 1, 1), 1.0)
