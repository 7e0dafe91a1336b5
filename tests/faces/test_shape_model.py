"""The evaluators of dlib's shape predictors (faces/shape_model.py: the numpy loop and the C one,
faces/_cascade.c) against dlib's own, on real faces nobody here made, and their cache of model arrays
under faults (cut short, read-only, full)."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.errors import ModelError
from renderer.faces import models
from renderer.faces import shape_model as ert
from renderer.faces.detect import detect
from renderer.faces.landmarks import LandmarkModel
from renderer.media import read_frames
from tests import face_data as F


def _dlib_points(points: int, rgb: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    import dlib

    shape = models.shape_predictor(points)(np.ascontiguousarray(rgb), dlib.rectangle(*rect))
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def _real_faces() -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(frame, dlib rectangle) of every face HOG finds on kphotoalbum's photos and movie.avi (a
    camcorder clip), on the astronaut portrait, and on that portrait's face moved half off the frame."""
    pictures = [F.read_rgb(F.kphotoalbum_file(n)) for n in (*F.JESPER, F.COUPLE, *F.ANNE_HELENE)]
    pictures.append(F.read_rgb(F.astronaut()))
    pictures += [rgb for i, rgb in read_frames(F.kphotoalbum_file(F.MOVIE), 0, 59) if i % 10 == 0]
    faces = []
    for rgb in pictures:
        for d in detect(rgb):
            x0, y0, x1, y1 = (round(v) for v in d.box)
            faces.append((rgb, (x0, y0, x1 - 1, y1 - 1)))
    rgb = F.read_rgb(F.astronaut())
    x0, y0, x1, y1 = (round(v) for v in detect(rgb)[0].box)
    faces.append((np.ascontiguousarray(rgb[:, x0 + (x1 - x0) // 2:]), (-(x1 - x0) // 2, y0, (x1 - x0) // 2, y1 - 1)))
    return faces


def _numpy_only(model: ert.ShapeModel) -> ert.ShapeModel:
    """The same arrays, evaluated by the numpy loop."""
    return ert.ShapeModel(model.arrays, compiled=False)


def test_the_c_loop_is_built() -> None:
    """`make install` builds faces/_cascade.c (gcc is on every machine of this project's kind); a
    render without it still runs, in numpy, but slower (bench/results/swap.md, section 1l)."""
    assert ert._cascade is not None
    assert models.shape_model(68).compiled


@pytest.mark.parametrize("compiled", [True, False], ids=["c", "numpy"])
@pytest.mark.parametrize("points", [68, 5])
def test_points_are_dlibs_bit_for_bit_on_real_faces(points: int, compiled: bool) -> None:
    model = models.shape_model(points)
    model = model if compiled else _numpy_only(model)
    assert model.compiled == compiled
    faces = _real_faces()
    assert len(faces) >= 10
    for k, (rgb, rect) in enumerate(faces):
        want = _dlib_points(points, rgb, rect)
        got = model(rgb, rect)
        assert got.dtype == np.float64 and got.shape == (points, 2)
        assert np.array_equal(got, want), (k, np.abs(got - want).max())


def test_c_and_numpy_loops_give_the_same_bits_on_a_real_clip() -> None:
    """Every face HOG finds in movie.avi's 68 frames (a camcorder clip), with boxes moved and resized
    about it as a tracker's are, some running off the frame, some read from an area: the same points."""
    model = models.shape_model(68)
    slow = _numpy_only(model)
    rng = np.random.default_rng(7)
    calls = 0
    for _, rgb in read_frames(F.kphotoalbum_file(F.MOVIE), 0, 67):
        h, w = rgb.shape[:2]
        for d in detect(rgb):
            x0, y0, x1, y1 = (round(v) for v in d.box)
            boxes = [(x0 + dx, y0 + dy, x1 + dx + ds, y1 + dy + ds) for dx, dy, ds in rng.integers(-12, 13, (4, 3))]
            boxes.append((x0 - w // 2, y0, x1 - w // 2, y1))  # half off the frame
            areas = [None, (max(0, x0 - 20), max(0, y0 - 20), min(w, x1 + 20), min(h, y1 + 20)), None, None, None]
            assert [lm.tolist() for lm in model.many(rgb, boxes, areas)] == \
                [lm.tolist() for lm in slow.many(rgb, boxes, areas)]
            calls += len(boxes)
    assert calls >= 300


def test_the_c_loop_refuses_arrays_that_do_not_fit() -> None:
    """The kernel trusts nothing it is handed: a buffer too short, or an area outside the frame, is a
    ValueError naming it, not a read past the end."""
    model = models.shape_model(5)
    rgb = F.read_rgb(F.astronaut())
    box = (180, 80, 300, 200)
    with pytest.raises(ValueError, match="an index or area lies outside"):
        model(rgb, box, (0, 0, rgb.shape[1] + 8, rgb.shape[0]))
    shapes = np.empty((1, len(model.initial)), np.float32)
    args = [rgb, rgb.shape[1], rgb.shape[0], 3, np.zeros((1, 2), np.int64), np.array([[64, 64]], np.int64),
            np.ones((1, 2)), np.ones((1, 2)), *model._c_model, shapes, 1, len(model._leaves), model._trees,
            model._depth, model._anchors.shape[1], len(model.initial)]
    ert._cascade.run(*args)  # as given: fine
    short = list(args)
    short[9] = model._c_model[1][:-1]  # idx12 one short
    with pytest.raises(ValueError, match="idx12"):
        ert._cascade.run(*short)
    short = list(args)
    short[1] = rgb.shape[1] + 1  # a frame wider than its buffer
    with pytest.raises(ValueError, match="frame"):
        ert._cascade.run(*short)


def test_an_area_reads_as_a_crop_of_the_frame() -> None:
    """`area` gives what dlib gives on a copy of that part of the frame, in frame pixels."""
    model = models.shape_model(68)
    for rgb, (left, top, right, bottom) in _real_faces()[:6]:
        w, h = right - left, bottom - top
        area = (max(0, left - w // 5), max(0, top - h // 3), min(rgb.shape[1], right + w // 5), min(rgb.shape[0], bottom))
        ax, ay = area[:2]
        crop = rgb[ay:area[3], ax:area[2]]
        want = _dlib_points(68, crop, (left - ax, top - ay, right - ax, bottom - ay)) + (ax, ay)
        assert np.array_equal(model(rgb, (left, top, right, bottom), area), want)


def test_landmark_model_uses_the_arrays_and_falls_back_to_dlib(monkeypatch) -> None:
    rgb = F.read_rgb(F.astronaut())
    box = detect(rgb)[0].box
    fast = LandmarkModel(68)
    assert fast._arrays is not None

    def unparsable(points: int):
        raise ModelError("not a dlib shape predictor")

    monkeypatch.setattr(models, "shape_model", unparsable)
    slow = LandmarkModel(68)
    assert slow._arrays is None
    assert np.array_equal(fast(rgb, box), slow(rgb, box))


def test_cache_is_written_whole_and_a_cut_short_one_is_rebuilt(tmp_path) -> None:
    model_file = models.landmark_file(5)
    rgb, rect = _real_faces()[0]
    want = _dlib_points(5, rgb, rect)
    first = ert.load_cached(model_file, tmp_path)  # parsed, then cached
    cached = ert.cache_path(model_file, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temporary left beside it
    assert np.array_equal(first(rgb, rect), want)
    assert np.array_equal(ert.load_cached(model_file, tmp_path)(rgb, rect), want)  # loaded from the cache
    whole = cached.read_bytes()
    cached.write_bytes(whole[:5000])  # cut short (a full disk, a killed writer)
    assert np.array_equal(ert.load_cached(model_file, tmp_path)(rgb, rect), want)
    assert cached.read_bytes() == whole  # parsed again and rewritten
    altered = bytearray(whole)
    altered[len(whole) // 2] ^= 0x40  # one bit of a leaf flipped: the same size, other points
    cached.write_bytes(bytes(altered))
    with pytest.raises(ValueError, match="cut short or altered"):
        ert.read_arrays(cached)
    assert np.array_equal(ert.load_cached(model_file, tmp_path)(rgb, rect), want)
    assert cached.read_bytes() == whole
    stale = cached.with_name(cached.name.rsplit("-v", 1)[0] + "-v1.npz")  # the same model, an older format
    stale.write_bytes(b"old")
    other = tmp_path / f"{model_file.stem}-{model_file.stat().st_size}-1-v{ert.FORMAT}.arrays"  # another install's
    other.write_bytes(b"theirs")
    cached.unlink()
    ert.load_cached(model_file, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([cached.name, other.name])  # the stale one gone


def test_without_a_writable_cache_the_model_is_parsed(tmp_path) -> None:
    """A read-only cache folder and a full one (real mounts): the same points, nothing left behind."""
    from tests.faults import fill_disk, tmpfs

    model_file = models.landmark_file(5)
    rgb, rect = _real_faces()[0]
    want = _dlib_points(5, rgb, rect)
    for read_only in (True, False):
        with tmpfs(tmp_path / ("ro" if read_only else "full"), size="1m", read_only=read_only,
                   fill={"models/.keep": b""}) as root:
            if not read_only:
                fill_disk(root)
            assert np.array_equal(ert.load_cached(model_file, root / "models")(rgb, rect), want)
            assert [p.name for p in (root / "models").iterdir()] == [".keep"]


def test_a_file_that_is_not_a_shape_predictor_is_a_model_error(tmp_path) -> None:
    for name, data in (("recognition", models.model_path(models.RECOGNITION).read_bytes()[:200_000]),
                       ("truncated", models.landmark_file(5).read_bytes()[:-100]),
                       ("empty", b"")):
        path = tmp_path / f"{name}.dat"
        path.write_bytes(data)
        with pytest.raises(ModelError, match="could not be read as a dlib shape predictor"):
            ert.load_cached(path, tmp_path / "cache")
        assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_several_faces_in_one_pass_are_each_faces_own_points() -> None:
    """`many` (one pass over the cascades for every face of a frame, as the tracker calls it) gives
    each face the points `__call__` gives it alone, and dlib's: the couple photo's two faces, the
    astronaut's face with boxes moved around it, one read from an area, one half off the frame."""
    couple = F.read_rgb(F.kphotoalbum_file(F.COUPLE))
    rects = [(round(d.box[0]), round(d.box[1]), round(d.box[2]) - 1, round(d.box[3]) - 1) for d in detect(couple)]
    assert len(rects) == 2
    rgb = F.read_rgb(F.astronaut())
    x0, y0, x1, y1 = (round(v) for v in detect(rgb)[0].box)
    moved = [(x0 + dx, y0 + dy, x1 - 1 + dx, y1 - 1 + dy) for dx, dy in ((0, 0), (9, -6), (-x0 - (x1 - x0) // 2, 4))]
    for points in (68, 5):
        model = models.shape_model(points)
        for frame, boxes, areas in ((couple, rects, [None, None]),
                                    (rgb, moved, [None, (0, 0, 400, 420), None])):
            got = model.many(frame, boxes, areas)
            for box, area, lm in zip(boxes, areas, got):
                assert np.array_equal(lm, model(frame, box, area))
                if area is None:
                    assert np.array_equal(lm, _dlib_points(points, frame, box))
