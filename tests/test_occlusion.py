"""Occlusion: a hold-out matte is always respected, reconstruction keeps a pasted occluder, bad mattes are refused.

The face is real (kphotoalbum's talking head, 480x360); the occluder is a grey bar over the
mouth, the matte a grey or alpha clip made by the ffmpeg CLI (as a compositor's roto would be).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from renderer import media
from renderer.composite import OcclusionSettings
from renderer.composite.occlusion import keep_mask
from renderer.errors import InputError
from renderer.faces.track import find_faces
from renderer.presets import load_preset, parse_preset
from renderer.swap import SwapModel, SwapSettings, render_range, swap_settings
from tests.model_fixtures import movie_frames, trained_model

FRAMES = 6


@pytest.fixture(scope="module")
def model() -> SwapModel:
    return SwapModel(trained_model(), "a2b", "cpu")


@pytest.fixture(scope="module")
def occluded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[slice, slice]]]:
    """A lossless clip of the real talking head with a grey bar over the mouth; the bar's box per frame."""
    frames = movie_frames(3)[20:20 + FRAMES].copy()
    boxes = []
    for img in frames:
        mouth = find_faces(img)[0].landmarks[48:68]
        (x0, y0), (x1, y1) = mouth.min(0), mouth.max(0)
        w = x1 - x0
        box = (slice(int(y0) - 6, int(y1) + 6), slice(int(x0 - 0.3 * w), int(x1 + 0.3 * w)))
        img[box] = 128
        boxes.append(box)
    path = tmp_path_factory.mktemp("occlusion") / "occluded.mkv"
    h, w = frames.shape[1:3]
    with media.VideoWriter(path, width=w, height=h, fps=25, codec="ffv1", pix_fmt="yuv444p") as writer:
        for img in frames:
            writer.write(img)
    return path, boxes


def _render(src: Path, out: Path, model: SwapModel, settings: SwapSettings) -> dict[int, np.ndarray]:
    render_range(src, out, model_dir=Path(), model=model, settings=settings, first=0, last=FRAMES - 1,
                 swap_ranges=[(0, FRAMES - 1)], codec="ffv1", pix_fmt="yuv444p")
    return dict(media.read_frames(out, 0, FRAMES - 1))


def _untouched_share(src: dict[int, np.ndarray], out: dict[int, np.ndarray], boxes: list[tuple[slice, slice]]) -> float:
    same = [np.all(src[i][b] == out[i][b], axis=2).mean() for i, b in enumerate(boxes)]
    return float(np.mean(same))


def test_reconstruction_keeps_a_pasted_occluder_where_off_paints_over_it(
        occluded: tuple[Path, list[tuple[slice, slice]]], model: SwapModel, tmp_path: Path) -> None:
    clip, boxes = occluded
    src = dict(media.read_frames(clip, 0, FRAMES - 1))
    off = _render(clip, tmp_path / "off.mkv", model, SwapSettings(occlusion=OcclusionSettings("off")))
    rec = _render(clip, tmp_path / "rec.mkv", model, SwapSettings())
    # the default, auto, is reconstruction for a model without an occluder segmenter (the shipped one)
    assert SwapSettings().occlusion.mode == "auto" and load_preset("lossless").occlusion == "auto"
    assert not model.has_segmenter and SwapSettings().occlusion.resolved(model.has_segmenter).mode == "reconstruction"
    kept_off, kept_rec = _untouched_share(src, off, boxes), _untouched_share(src, rec, boxes)
    print(f"bar untouched: off {kept_off:.3f}, reconstruction {kept_rec:.3f}")
    assert kept_off < 0.5, f"off: {kept_off:.2f} of the bar untouched; the test's bar is not over the swapped face"
    assert kept_rec >= 0.9, f"reconstruction: only {kept_rec:.2f} of the bar left untouched"
    for i in range(FRAMES):  # the rest of the face is still swapped
        changed = np.any(src[i] != rec[i], axis=2).sum()
        assert changed > 0.5 * np.any(src[i] != off[i], axis=2).sum(), f"frame {i}: reconstruction swapped too little"


def _ffmpeg_matte(out: Path, size: tuple[int, int], frames: int, box: tuple[int, int, int, int], alpha: bool) -> Path:
    """A matte clip made by the ffmpeg CLI: white (or opaque) inside `box` (x, y, w, h), black (clear) outside."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is not installed")
    w, h = size
    x, y, bw, bh = box
    inside = f"between(X,{x},{x + bw - 1})*between(Y,{y},{y + bh - 1})"
    if alpha:  # ProRes 4444 with alpha, as Nuke writes a roto
        graph = f"color=black:s={w}x{h}:r=25,format=rgba,geq=r=0:g=0:b=0:a='if({inside},255,0)'"
        codec = ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"]
    else:  # a grey luma matte, FFV1
        graph = f"color=black:s={w}x{h}:r=25,format=gray,geq=lum='if({inside},255,0)'"
        codec = ["-c:v", "ffv1"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-frames:v", str(frames), *codec,
                    str(out)], check=True)
    return out


@pytest.mark.parametrize("alpha", [False, True], ids=["grey-ffv1", "alpha-prores4444"])
def test_a_holdout_matte_keeps_the_covered_pixels_bit_identical(
        occluded: tuple[Path, list[tuple[slice, slice]]], model: SwapModel, tmp_path: Path, alpha: bool) -> None:
    clip, boxes = occluded
    info = media.probe(clip)
    ys, xs = boxes[0]
    box = (xs.start, ys.start - 20, xs.stop - xs.start, ys.stop - ys.start + 20)  # the bar and the lip above it
    matte = _ffmpeg_matte(tmp_path / ("matte.mov" if alpha else "matte.mkv"), (info.width, info.height), info.frames,
                          box, alpha)
    src = dict(media.read_frames(clip, 0, FRAMES - 1))
    off_mode = OcclusionSettings("off")  # the matte alone keeps the pixels it covers
    out = _render(clip, tmp_path / "held.mkv", model, SwapSettings(occlusion=off_mode, holdout=matte))
    off = _render(clip, tmp_path / "off.mkv", model, SwapSettings(occlusion=off_mode))
    covered = (slice(box[1], box[1] + box[3]), slice(box[0], box[0] + box[2]))
    for i in range(FRAMES):
        assert np.array_equal(src[i][covered], out[i][covered]), f"frame {i}: a pixel under the matte changed"
        assert np.any(src[i] != out[i]), f"frame {i}: nothing was swapped at all"
    assert any(np.any(src[i][covered] != off[i][covered]) for i in range(FRAMES)), "the matte's box is not on the face"


def test_doppel_swap_takes_a_holdout_and_an_occlusion_mode_on_the_command_line(
        occluded: tuple[Path, list[tuple[slice, slice]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from renderer.cli import main

    clip, boxes = occluded
    info = media.probe(clip)
    ys, xs = boxes[0]
    box = (xs.start, ys.start - 20, xs.stop - xs.start, ys.stop - ys.start + 20)
    matte = _ffmpeg_matte(tmp_path / "roto.mkv", (info.width, info.height), info.frames, box, False)
    out = tmp_path / "held.mkv"
    code = main(["swap", str(clip), "--model", str(trained_model()), "--out", str(out), "--codec", "ffv1",
                 "--holdout", str(matte), "--occlusion", "off", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    src, got = dict(media.read_frames(clip, 0, FRAMES - 1)), dict(media.read_frames(out, 0, FRAMES - 1))
    covered = (slice(box[1], box[1] + box[3]), slice(box[0], box[0] + box[2]))
    for i in range(FRAMES):
        assert np.array_equal(src[i][covered], got[i][covered]), f"frame {i}: a pixel under --holdout changed"
        assert np.any(src[i] != got[i]), f"frame {i}: nothing was swapped at all"
    capsys.readouterr()
    code = main(["swap", str(clip), "--model", str(trained_model()), "--out", str(tmp_path / "m.mkv"),
                 "--occlusion", "matte", "--no-progress"])
    assert code == 2 and "occlusion=matte needs a hold-out matte" in capsys.readouterr().err
    assert not (tmp_path / "m.mkv").exists()


def test_a_matte_that_does_not_fit_the_shot_is_refused_before_any_frame(
        occluded: tuple[Path, list[tuple[slice, slice]]], model: SwapModel, tmp_path: Path) -> None:
    clip, _ = occluded
    info = media.probe(clip)
    short = _ffmpeg_matte(tmp_path / "short.mkv", (info.width, info.height), info.frames - 1, (0, 0, 8, 8), False)
    small = _ffmpeg_matte(tmp_path / "small.mkv", (info.width // 2, info.height), info.frames, (0, 0, 8, 8), False)
    for matte, words in ((short, f"{info.frames - 1} frames, the shot has {info.frames}"),
                         (small, f"{info.width // 2}x{info.height} pixels, the shot is {info.width}x{info.height}"),
                         (tmp_path / "missing.mov", "does not exist")):
        out = tmp_path / "out.mkv"
        with pytest.raises(InputError, match="matte") as err:
            render_range(clip, out, model_dir=Path(), model=model, settings=SwapSettings(holdout=matte), first=0,
                         last=FRAMES - 1, swap_ranges=[(0, FRAMES - 1)], codec="ffv1")
        assert words in str(err.value) and str(matte) in str(err.value)
        assert not out.exists() and not list(tmp_path.glob(".out*")), "a refused render left a file behind"


def test_keep_mask_is_zero_on_the_occluder_and_cleans_specks() -> None:
    occ = np.zeros((64, 64), bool)
    occ[40:52, 16:48] = True  # an occluder
    occ[10, 10] = True  # a speck
    keep = keep_mask(occ, OcclusionSettings("reconstruction"))
    assert keep.dtype == np.float32 and keep.shape == (64, 64)
    assert np.all(keep[40:52, 16:48] == 0.0) and keep[10, 10] == 1.0 and keep[5, 60] == 1.0
    assert 0.0 < keep[38, 30] < 1.0 or keep[37, 30] < 1.0, "no feather at the occluder's edge"
    assert np.all(keep_mask(np.zeros((64, 64), bool), OcclusionSettings("reconstruction")) == 1.0)


def test_occlusion_preset_keys_are_validated_and_reach_the_swap(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        parse_preset("occlusion: hands\n", name="x", path="x.yaml")
    assert "occlusion" in str(err.value) and "auto, learned, reconstruction, matte, off" in str(err.value)
    assert "line 1" in str(err.value)
    preset = parse_preset("occlusion: reconstruction\nocclusion_matte: roto/shot.mov\n", name="x", path=str(tmp_path / "x.yaml"))
    assert preset.occlusion == "reconstruction" and preset.occlusion_matte == "roto/shot.mov"
    settings = swap_settings(preset, base_dir=tmp_path)
    assert settings.occlusion.mode == "reconstruction" and settings.holdout == tmp_path / "roto" / "shot.mov"
    marked = load_preset("lossless").with_overrides({"holdout": "/mattes/a.mov", "occlusion": "matte"}, "marker 'FACESWAP'")
    assert marked.occlusion == "matte" and marked.occlusion_matte == "/mattes/a.mov"
    with pytest.raises(InputError, match="allowed: one of auto, learned, reconstruction, matte, off"):
        load_preset("lossless").with_overrides({"occlusion": "hands"}, "marker 'FACESWAP occlusion=hands'")
    with pytest.raises(InputError, match="occlusion=matte needs a hold-out matte"):
        swap_settings(load_preset("lossless").with_overrides({"occlusion": "matte"}, "marker"))


def test_learned_occlusion_needs_a_segmenter_or_a_learned_mask(model: SwapModel, tmp_path: Path,
                                                               occluded: tuple[Path, list[tuple[slice, slice]]]) -> None:
    assert not model.learns_mask and not model.has_segmenter
    with pytest.raises(InputError, match="occlusion=learned needs a model with an occluder segmenter.*train-segmenter"):
        render_range(occluded[0], tmp_path / "o.mkv", model_dir=Path(), model=model,
                     settings=SwapSettings(occlusion=OcclusionSettings("learned")), first=0, last=1,
                     swap_ranges=[(0, 1)], codec="ffv1")
    assert not (tmp_path / "o.mkv").exists()


def test_a_marker_matte_is_found_beside_the_edit_and_checked_when_planning(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

    from renderer.render import plan_render
    from tests.media_factory import make_numbered_clip

    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "no-keys"))
    monkeypatch.delenv("DOPPEL_SIGN_CERT", raising=False)
    monkeypatch.delenv("DOPPEL_SIGN_KEY", raising=False)
    shot = make_numbered_clip(tmp_path / "shot.mov", 12, 160, 96)
    matte = _ffmpeg_matte(tmp_path / "roto.mkv", (160, 96), 12, (16, 16, 32, 32), False)
    _ffmpeg_matte(tmp_path / "short.mkv", (160, 96), 11, (16, 16, 32, 32), False)  # the marker names it
    preset = tmp_path / "p.yaml"
    preset.write_text("output:\n  codec: ffv1\n  container: mkv\n  audio: none\n")

    def edit(marker: str) -> Path:
        clip = otio.schema.Clip(name="shot", media_reference=otio.schema.ExternalReference(
            target_url=str(shot), available_range=TR(RT(0, 25), RT(12, 25))), source_range=TR(RT(0, 25), RT(12, 25)))
        clip.markers.append(otio.schema.Marker(name=marker, marked_range=TR(RT(0, 25), RT(1, 25))))
        track = otio.schema.Track()
        track.append(clip)
        tl = otio.schema.Timeline(name="cut")
        tl.tracks.append(track)
        path = tmp_path / "cut.otio"
        otio.adapters.write_to_file(tl, str(path))
        return path

    plan = plan_render(edit("FACESWAP holdout=roto.mkv occlusion=matte"), preset, tmp_path / "out", model=trained_model())
    job = plan.jobs[0]
    assert job.preset.occlusion == "matte" and job.preset.occlusion_matte == str(matte)
    assert job.inputs["occlusion_matte"]["path"] == str(matte.resolve())  # a new roto means a new render
    assert swap_settings(job.preset, base_dir=job.preset_dir).holdout == matte
    with pytest.raises(InputError, match="short.mkv does not fit shot shot.mov: it has 11 frames, the shot has 12"):
        plan_render(edit("FACESWAP holdout=short.mkv"), preset, tmp_path / "out", model=trained_model())


def test_swap_and_rebuild_gives_the_same_swap_and_the_source_persons_rebuild(model: SwapModel) -> None:
    import cv2

    frames = movie_frames(3)[20:23]
    crops = np.stack([cv2.warpAffine(img, find_faces(img, crop_size=model.size, coverage=model.config.coverage)[0]
                                     .crop_from_frame, (model.size, model.size)) for img in frames])
    swapped, learned = model(crops)
    same, learned2, rebuilt, rebuilt_mask = model.swap_and_rebuild(crops)
    assert np.array_equal(swapped, same) and learned is None and learned2 is None and rebuilt_mask is None
    assert rebuilt.shape == swapped.shape and rebuilt.dtype == np.float32
    target = crops.astype(np.float32) / 255
    # decoder A rebuilds A's own face far better than decoder B's swap resembles it
    assert np.abs(rebuilt - target).mean() < 0.6 * np.abs(swapped - target).mean()


def test_a_holdout_matte_is_respected_by_the_deep_paste(model: SwapModel, tmp_path: Path) -> None:
    """A 16-bit RGB source (FFV1 gbrp16le, made by the ffmpeg CLI) is pasted in float boxes: the
    samples under the matte keep all their bits, where a swap without it changes them."""
    from renderer.media.decode import _plane_arrays

    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is not installed")
    from tests import face_data as F

    src = tmp_path / "deep.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(F.kphotoalbum_file(F.MOVIE)), "-vf",
                    "scale=480:360:flags=bicubic", "-frames:v", "4", "-pix_fmt", "gbrp16le", "-c:v", "ffv1", str(src)],
                   check=True)
    info = media.probe(src)
    first = next(iter(media.read_frames(src, 0, 0)))[1]
    mouth = find_faces(first)[0].landmarks[48:68]
    (x0, y0), (x1, y1) = (np.floor(mouth.min(0) / 2) * 2).astype(int), (np.ceil(mouth.max(0) / 2) * 2).astype(int)
    box = (int(x0) - 4, int(y0) - 6, int(x1 - x0) + 8, int(y1 - y0) + 12)
    matte = _ffmpeg_matte(tmp_path / "roto.mkv", (info.width, info.height), info.frames, box, False)
    covered = (slice(box[1], box[1] + box[3]), slice(box[0], box[0] + box[2]))
    off = OcclusionSettings("off")
    planes = {}
    for name, settings in (("held", SwapSettings(occlusion=off, holdout=matte)), ("free", SwapSettings(occlusion=off))):
        out = tmp_path / f"{name}.mkv"
        render_range(src, out, model_dir=Path(), model=model, settings=settings, first=0, last=info.frames - 1,
                     swap_ranges=[(0, info.frames - 1)], codec="ffv1", pix_fmt=info.pix_fmt)
        planes[name] = [[p.copy() for p in _plane_arrays(f)] for _, f in media.read_av_frames(out, 0, info.frames - 1)]
    source = [[p.copy() for p in _plane_arrays(f)] for _, f in media.read_av_frames(src, 0, info.frames - 1)]
    assert source[0][0].dtype == np.uint16
    for i in range(info.frames):
        for k in range(len(source[i])):
            assert np.array_equal(source[i][k][covered], planes["held"][i][k][covered]), f"frame {i} plane {k} changed"
        assert any(np.any(source[i][k] != planes["held"][i][k]) for k in range(len(source[i]))), "nothing swapped"
    assert any(np.any(source[i][k][covered] != planes["free"][i][k][covered])
               for i in range(info.frames) for k in range(len(source[i]))), "the matte's box is not on the face"


def test_rebuild_error_is_the_float32_channel_mean() -> None:
    """rebuild_error's plane-wise sum gives numpy's float32 mean over RGB bit for bit (before the blur),
    also on permuted (non-contiguous) crops like the error prior's."""
    import cv2

    from renderer.composite.occlusion import rebuild_error

    rng = np.random.default_rng(5)
    for s in (64, 65):
        crop = rng.random((3, s, s), dtype=np.float32).transpose(1, 2, 0)
        rebuilt = (crop + rng.normal(0, 0.05, crop.shape)).astype(np.float32)
        want = cv2.GaussianBlur(np.abs(crop - rebuilt).mean(axis=2).astype(np.float32), (0, 0),
                                sigmaX=max(0.5, s / 64.0))
        assert np.array_equal(rebuild_error(crop, rebuilt), want)
