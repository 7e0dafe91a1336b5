"""renderer.swap: the per-frame pipeline on a real talking-head clip, lossless in and out."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from renderer import media
from renderer.atomic import sha256_file
from renderer.composite import CompositeSettings, OcclusionSettings
from renderer.errors import InputError, ModelError
from renderer.faces.track import find_faces
from renderer.swap import SEGMENT_FRAMES, SwapModel, SwapSettings, preroll_start, render_range
from tests.media_factory import make_numbered_clip, read_frame_number
from tests.model_fixtures import face_clip, trained_model

FRAMES = 30


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return trained_model()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_clip(tmp_path_factory.mktemp("swap") / "face.mkv", frames=FRAMES, codec="ffv1",
                     timecode="01:00:00:00")


@pytest.fixture(scope="module")
def model(model_dir: Path) -> SwapModel:
    return SwapModel(model_dir, "a2b", "cpu")


def frames_of(path: Path) -> dict[int, np.ndarray]:
    info = media.probe(path)
    return dict(media.read_frames(path, 0, info.frames - 1, info))


def test_swaps_face_region_only_and_keeps_everything_else(clip: Path, model: SwapModel, tmp_path: Path) -> None:
    before = sha256_file(clip)
    out = tmp_path / "out.mkv"
    stats = render_range(clip, out, model_dir=Path(), model=model, settings=SwapSettings(), first=0,
                         last=FRAMES - 1, swap_ranges=[(8, 20)], codec="ffv1")
    assert sha256_file(clip) == before, "the source was modified"
    assert stats.frames == FRAMES and stats.swapped == 13 and stats.passed_through["outside range"] == 17
    src_info, out_info = media.probe(clip), media.probe(out)
    assert out_info.frames == src_info.frames and out_info.timecode == "01:00:00:00"
    assert out_info.pts == src_info.pts and out_info.fps == src_info.fps
    src, dst = frames_of(clip), frames_of(out)
    for i in range(FRAMES):
        assert read_frame_number(dst[i]) == i
        if not 8 <= i <= 20:
            assert np.array_equal(src[i], dst[i]), f"frame {i} outside the swap range changed"
            continue
        face = find_faces(src[i])[0]
        x0, y0, x1, y1 = face.box
        w, h = x1 - x0, y1 - y0
        outside = np.ones(src[i].shape[:2], bool)
        outside[max(0, int(y0 - h)): int(y1 + h), max(0, int(x0 - w)): int(x1 + w)] = False
        assert np.array_equal(src[i][outside], dst[i][outside]), f"frame {i}: pixels far from the face changed"
        inner = (slice(int(y0 + 0.3 * h), int(y1 - 0.1 * h)), slice(int(x0 + 0.2 * w), int(x1 - 0.2 * w)))
        diff = np.abs(src[i][inner].astype(int) - dst[i][inner].astype(int)).mean()
        assert diff > 3.0, f"frame {i}: the face barely changed (mean abs diff {diff:.2f})"


@pytest.mark.parametrize("settings", [
    SwapSettings(temporal=0.5, detect_every=4),
    # grain is drawn per absolute frame index and the colour statistics' smoothing runs through the pre-roll
    SwapSettings(temporal=0.5, detect_every=4, colour_smoothing=0.5,
                 composite=CompositeSettings(grain="match", detail=0.5)),
], ids=["default", "grain+detail+colour_smoothing"])
def test_chunked_render_equals_one_piece(clip: Path, model: SwapModel, tmp_path: Path, settings: SwapSettings) -> None:
    whole = tmp_path / "whole.mkv"
    render_range(clip, whole, model_dir=Path(), model=model, settings=settings, first=0, last=FRAMES - 1,
                 swap_ranges=[(0, FRAMES - 1)], codec="ffv1")
    split = 17  # mid-segment: the second chunk decodes a 17-frame pre-roll
    assert 0 < split < SEGMENT_FRAMES and preroll_start(split, [(0, FRAMES - 1)], origin=0) == 0  # segment start
    parts = []
    for lo, hi in ((0, split - 1), (split, FRAMES - 1)):
        part = tmp_path / f"part{lo}.mkv"
        stats = render_range(clip, part, model_dir=Path(), model=model, settings=settings, first=lo, last=hi,
                             swap_ranges=[(0, FRAMES - 1)], codec="ffv1", origin=0)
        assert stats.preroll == (split if lo else 0)
        parts.append(frames_of(part))
    reference = frames_of(whole)
    for i in range(FRAMES):
        got = parts[0][i] if i < split else parts[1][i - split]
        assert np.array_equal(got, reference[i]), f"frame {i} differs between chunked and one-piece renders"


def test_frames_without_faces_pass_through(model: SwapModel, tmp_path: Path) -> None:
    src = make_numbered_clip(tmp_path / "noface.mkv", 6, 160, 96, codec="ffv1")
    out = tmp_path / "out.mkv"
    stats = render_range(src, out, model_dir=Path(), model=model, settings=SwapSettings(), first=1, last=4,
                         swap_ranges=[(0, 5)], codec="ffv1")
    assert stats.swapped == 0 and stats.passed_through["no face"] == 4
    src_frames, out_frames = frames_of(src), frames_of(out)
    assert all(np.array_equal(src_frames[i + 1], out_frames[i]) for i in range(4))


def test_range_outside_the_video_writes_nothing(clip: Path, model: SwapModel, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    with pytest.raises(InputError, match=r"outside .*allowed: 0-29"):
        render_range(clip, out, model_dir=Path(), model=model, settings=SwapSettings(), first=25, last=40,
                     swap_ranges=[(25, 40)], codec="ffv1")
    assert list(tmp_path.iterdir()) == []


def test_learned_mask_needs_a_model_that_learned_one(clip: Path, model: SwapModel, tmp_path: Path) -> None:
    if model.learns_mask:
        pytest.skip("this model learned a mask")
    with pytest.raises(InputError, match="learned mask"):
        render_range(clip, tmp_path / "o.mkv", model_dir=Path(), model=model, first=0, last=3,
                     settings=SwapSettings(composite=CompositeSettings(mask="learned")),
                     swap_ranges=[(0, 3)], codec="ffv1")
    assert not (tmp_path / "o.mkv").exists()


def test_model_without_rights_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    card = yaml.safe_load((copy / "model.yaml").read_text())
    card["rights"] = ""
    (copy / "model.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ModelError, match="rights"):
        SwapModel(copy, "a2b", "cpu")


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        SwapModel(tmp_path / "nope", "a2b", "cpu")


def test_identity_mode_needs_a_reference() -> None:
    with pytest.raises(InputError, match="reference"):
        SwapSettings(faces="identity")


def test_small_face_in_a_720p_frame_is_swapped_on_every_frame(model: SwapModel, tmp_path: Path) -> None:
    """The ~55 px face of a 720p screen-recording-like clip (ffmpeg CLI, real footage), with a
    3-frame camera shake just before a segment start: default settings swap it on every frame (the
    shaken frames held across the segment start), no frame flips back, and a chunk that ends inside
    the shake comes out as the one-piece render."""
    import cv2
    import dlib

    from tests import face_data as F

    n = 56
    src = F.small_face_clip(F.CACHE / "small_face_720p_shake46.mp4", n, blur=(45, 47))
    out = tmp_path / "out.mkv"
    stats = render_range(src, out, model_dir=Path(), model=model, settings=SwapSettings(), first=0, last=n - 1,
                         swap_ranges=[(0, n - 1)], codec="ffv1")
    assert stats.swapped == n and stats.lost == [] and stats.held >= 1, stats.to_json()
    reference = dlib.get_frontal_face_detector()  # the reference: HOG upsampled 2x
    corner = (slice(0, 200), slice(1000, 1280))  # the face's corner; the rest is a photo without faces
    region = (slice(40, 148), slice(1096, 1240))  # the overlaid 144x108 video holding the face
    seen, swapped = [], []
    for (_, a), (_, b) in zip(media.read_frames(src, 0, n - 1), media.read_frames(out, 0, n - 1)):
        rects = reference(cv2.cvtColor(a[corner], cv2.COLOR_RGB2GRAY), 2)
        seen.append(bool(rects))
        swapped.append(bool(np.any(a[region] != b[region])))
        if rects:
            assert 45 <= rects[0].width() <= 65  # the face really is about 55 px
    assert sum(seen) >= n - 4 and all(swapped), (seen, swapped)
    whole = frames_of(out)
    for lo, hi in ((0, 46), (47, n - 1)):
        part = tmp_path / f"part{lo}.mkv"
        render_range(src, part, model_dir=Path(), model=model, settings=SwapSettings(), first=lo, last=hi,
                     swap_ranges=[(0, n - 1)], codec="ffv1", origin=0)
        got = frames_of(part)
        assert all(np.array_equal(got[i - lo], whole[i]) for i in range(lo, hi + 1)), f"chunk {lo}-{hi} differs"


@pytest.mark.parametrize("grain", ["off", "match"])
def test_region_conversion_swaps_the_same_pixels_as_whole_frames(clip: Path, model: SwapModel, grain: str) -> None:
    """FaceSwapper reading frames through media.RegionRGB (its default: only the regions around
    faces converted) gives the very samples it gives from whole-frame RGB, for less conversion
    (grain=match reads a ring around each face too)."""
    from renderer.faces.picture import DensePicture
    from renderer.media.decode import _plane_arrays
    from renderer.swap import FaceSwapper
    from renderer.swap.settings import SwapStats

    info = media.probe(clip)
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)

    def render(dense: bool) -> tuple[dict[int, list[bytes]], list[float]]:
        settings = SwapSettings(composite=CompositeSettings(grain=grain))
        swapper = FaceSwapper(model, settings, info.fps, matrix, rng, SwapStats())
        out: dict[int, list[bytes]] = {}
        pictures = []
        for i, frame in media.read_av_frames(clip, 0, FRAMES - 1, info):
            pic = (DensePicture(media.frame_to_rgb(frame, matrix, rng)) if dense
                   else media.RegionRGB(frame, matrix, rng))
            pictures.append(pic)
            out.update((j, [p.tobytes() for p in _plane_arrays(f)]) for j, f, *_ in
                       swapper.push(i, frame, swap=True, emit=True, rgb=pic))
        out.update((j, [p.tobytes() for p in _plane_arrays(f)]) for j, f, *_ in swapper.flush())
        share = [getattr(p, "converted_px", 0) / (info.width * info.height) for p in pictures]
        return out, share

    whole, _ = render(dense=True)
    regional, share = render(dense=False)
    assert sorted(whole) == sorted(regional) == list(range(FRAMES))
    assert all(whole[i] == regional[i] for i in range(FRAMES)), "region conversion changed the swap"
    assert max(share) == 1.0  # key frames that search the whole frame convert all of it
    # the others only around the face (here 150 px in 480x360; grain=match adds its measuring ring)
    assert sorted(share)[FRAMES // 2] < (0.75 if grain == "off" else 0.9), share


def test_model_process_renders_the_same_frames_as_in_process(clip: Path, model: SwapModel, model_dir: Path,
                                                              tmp_path: Path) -> None:
    """With the network in its own process a batch runs there while the previous one is composited
    (SwapModel.submit): the frames are the in-process render's, bit for bit, across segment
    starts and a range end (every batch finished before the blend state resets)."""
    child = SwapModel(model_dir, "a2b", "cpu", process=True)
    try:
        outs = {}
        for name, m in (("here", model), ("child", child)):
            outs[name] = tmp_path / f"{name}.mkv"
            stats = render_range(clip, outs[name], model_dir=Path(), model=m, settings=SwapSettings(occlusion=OcclusionSettings("reconstruction")),
                                 first=0, last=FRAMES - 1, swap_ranges=[(2, 13), (15, FRAMES - 1)], codec="ffv1")
            assert stats.swapped == FRAMES - 3 and stats.faces == FRAMES - 3
        here, there = frames_of(outs["here"]), frames_of(outs["child"])
        assert all(np.array_equal(here[i], there[i]) for i in range(FRAMES))
        assert not all(np.array_equal(here[i], frames_of(clip)[i]) for i in range(2, 14))
    finally:
        child.close()
