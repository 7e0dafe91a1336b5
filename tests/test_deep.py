"""Deep sources (10/12-bit YUV, 16-bit RGB, HDR10) through a swap: no 8-bit step inside the mask.

The media is made by the ffmpeg CLI (Debian's, FFmpeg 5.1): the real talking-head video of the
kphotoalbum demo, upscaled, with a 16-bit gradient (geq) blended over it, coded as ProRes 422 HQ
10-bit, ProRes 4444 (decodes as 12-bit), FFV1 16-bit RGB, and HEVC HDR10 (libx265, PQ, mastering
display and content light level SEI). What comes back is compared at the source's depth, and the
HDR10 metadata with ffprobe, not with Doppel's own reader.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from renderer import media
from renderer.atomic import sha256_file
from renderer.composite import CompositeSettings, paste_face
from renderer.faces.track import find_faces
from renderer.media.decode import _plane_arrays
from renderer.swap import SwapModel, SwapSettings, render_range
from tests import face_data as F
from tests.model_fixtures import trained_model

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="needs the ffmpeg CLI")

FRAMES = 4
# 16-bit diagonal ramp (geq on gray16le: FFmpeg 5.1's `gradients` source is 8-bit inside).
_RAMP = "color=black:s=480x360,format=gray16le,geq=lum='(X+Y)*65535/839',format=rgba64le"
_MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def _cli_clip(out: Path, codec_args: list[str]) -> Path:
    """FRAMES frames of the real talking head at 480x360 with the 16-bit ramp blended in, coded by the CLI."""
    movie = F.kphotoalbum_file(F.MOVIE)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(movie), "-f", "lavfi", "-i", _RAMP, "-filter_complex",
                    "[0:v]scale=480:360:flags=bicubic,format=rgba64le[a];[a][1:v]blend=all_mode=average:all_opacity=0.3",
                    "-frames:v", str(FRAMES), "-an", *codec_args, str(out)], check=True)
    return out


SOURCES = {
    "prores422_10bit": (".mov", ["-pix_fmt", "yuv422p10le", "-c:v", "prores_ks", "-profile:v", "3"], "yuv422p10le"),
    "prores4444_12bit": (".mov", ["-pix_fmt", "yuv444p10le", "-c:v", "prores_ks", "-profile:v", "4"], "yuv444p12le"),
    "ffv1_rgb16": (".mkv", ["-pix_fmt", "gbrp16le", "-c:v", "ffv1"], "gbrp16le"),
}


@pytest.fixture(scope="module")
def model() -> SwapModel:
    return SwapModel(trained_model(), "a2b", "cpu")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("deep")
    return {name: _cli_clip(tmp / f"{name}{ext}", args) for name, (ext, args, _) in SOURCES.items()}


def _planes(frame) -> list[np.ndarray]:
    return [p.copy() for p in _plane_arrays(frame)]


def _decoded(path: Path) -> list[list[np.ndarray]]:
    return [_planes(f) for _, f in media.read_av_frames(path, 0, FRAMES - 1)]


def _swap(src: Path, out: Path, model: SwapModel) -> media.MediaInfo:
    stats = render_range(src, out, model_dir=Path(), model=model, settings=SwapSettings(), first=0, last=FRAMES - 1,
                         swap_ranges=[(0, FRAMES - 1)], codec="ffv1", audio=False)
    assert stats.swapped == FRAMES, stats.to_json()
    return media.probe(out)


@pytest.mark.parametrize("name", list(SOURCES))
def test_deep_source_keeps_its_depth_inside_the_mask_and_every_sample_outside(
        name: str, sources: dict[str, Path], model: SwapModel, tmp_path: Path) -> None:
    src = sources[name]
    info = media.probe(src)
    assert info.pix_fmt == SOURCES[name][2] and media.is_deep(info.pix_fmt)
    out_info = _swap(src, tmp_path / "out.mkv", model)
    assert out_info.pix_fmt == info.pix_fmt, "the lossless output is not at the source's depth and layout"
    before, after = _decoded(src), _decoded(tmp_path / "out.mkv")
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
    rgb8 = [media.frame_to_rgb(f, matrix, rng) for _, f in media.read_av_frames(src, 0, FRAMES - 1)]
    for i in range(FRAMES):
        x0, y0, x1, y1 = find_faces(rgb8[i])[0].box
        w, h = x1 - x0, y1 - y0
        near = np.zeros((info.height, info.width), bool)
        near[max(0, int(y0 - h)): int(y1 + h), max(0, int(x0 - w)): int(x1 + w)] = True
        changed = np.zeros_like(near)
        for k, (a, b) in enumerate(zip(before[i], after[i])):
            sy, sx = info.height // a.shape[0], info.width // a.shape[1]
            moved = np.repeat(np.repeat(a != b, sy, axis=0), sx, axis=1)[: info.height, : info.width]
            assert not moved[~near].any(), f"frame {i} plane {k}: samples far from the face changed"
            changed |= moved if k == 0 else False
        # The first plane is luma (YUV) or green (planar RGB); an 8-bit composite leaves at most
        # 256 of its levels among the changed samples of a grey picture, and rgb24 through
        # swscale a quantised set; at depth the blended face keeps its own.
        levels = len(np.unique(after[i][0][changed]))
        assert changed.sum() > 2000 and levels > 256, (name, i, int(changed.sum()), levels)


def test_deep_composite_matches_the_8bit_one_within_rounding(sources: dict[str, Path], model: SwapModel,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deep path composites the same picture as the 8-bit one (same masks, model output and
    blend), only without its rounding: read back as RGB they agree within about one code value."""
    src = sources["prores422_10bit"]
    _swap(src, tmp_path / "deep.mkv", model)
    monkeypatch.setattr(media, "is_deep", lambda pix_fmt: False)  # what Doppel did before deep sources
    _swap(src, tmp_path / "8bit.mkv", model)
    deep = dict(media.read_frames(tmp_path / "deep.mkv", 0, FRAMES - 1))
    eight = dict(media.read_frames(tmp_path / "8bit.mkv", 0, FRAMES - 1))
    source = dict(media.read_frames(src, 0, FRAMES - 1))
    for i in range(FRAMES):
        face = np.any(deep[i] != source[i], axis=2) | np.any(eight[i] != source[i], axis=2)
        diff = np.abs(deep[i][face].astype(int) - eight[i][face].astype(int))
        assert face.sum() > 2000 and diff.mean() < 1.0 and np.percentile(diff, 99) <= 3, (i, diff.mean())


def test_deep_swap_is_deterministic(sources: dict[str, Path], model: SwapModel, tmp_path: Path) -> None:
    src = sources["prores4444_12bit"]
    _swap(src, tmp_path / "a.mkv", model)
    _swap(src, tmp_path / "b.mkv", model)
    assert sha256_file(tmp_path / "a.mkv") == sha256_file(tmp_path / "b.mkv")


def test_grey_gradient_keeps_more_than_256_levels_where_8_bits_keep_256(tmp_path: Path) -> None:
    """The paste itself on a 10-bit grey ramp made by the CLI, with a grey face: the 8-bit path (rgb24
    box, uint8 blend) can give at most 256 luma codes (one per grey level); the deep one keeps the ramp's."""
    src = tmp_path / "ramp.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=black:s=192x768,format=gray16le,geq=lum='Y*65535/767'", "-frames:v", "1",
                    "-pix_fmt", "yuv444p10le", "-c:v", "ffv1", str(src)], check=True)
    info = media.probe(src)
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
    size = 64
    ramp = np.linspace(0.9, 0.1, size, dtype=np.float32)  # the "face": a grey ramp the other way
    face = np.repeat(np.repeat(ramp[:, None, None], size, axis=1), 3, axis=2)
    yy, xx = np.mgrid[:size, :size]
    mask = np.clip(1.2 - np.hypot((xx - 31.5) / 30, (yy - 31.5) / 30), 0, 1).astype(np.float32)
    frame_from_crop = np.array([[2.5, 0.0, 16.0], [0.0, 10.0, 60.0]])  # the crop over most of the ramp
    settings = CompositeSettings(colour="none", blend="alpha")

    def levels(deep: bool) -> tuple[int, np.ndarray, list[np.ndarray]]:
        frame = next(media.read_av_frames(src, 0, 0, info))[1]
        before = _planes(frame)
        if deep:
            box = media.read_box(frame, (0, 0, info.width, info.height), matrix, rng)
            patch = paste_face(box, face, frame_from_crop, mask, settings)
            out = media.patch_regions(frame, box, [(patch.x0, patch.y0, patch.changed)], matrix, rng)
        else:
            rgb = media.frame_to_rgb(frame, matrix, rng)
            patch = paste_face(rgb, face, frame_from_crop, mask, settings)
            out = media.patch_regions(frame, rgb, [(patch.x0, patch.y0, patch.changed)], matrix, rng)
        after = _planes(out)
        changed = after[0] != before[0]
        for a, b in zip(before, after):
            assert np.array_equal(a[~changed], b[~changed])  # 4:4:4: a sample is a pixel
        return len(np.unique(after[0][changed])), changed, after

    n8, changed8, _ = levels(False)
    n_deep, changed_deep, after = levels(True)
    print(f"grey ramp: 8-bit path {n8} luma codes, deep path {n_deep}")
    assert n8 <= 256 < n_deep, (n8, n_deep)
    assert changed_deep.sum() > 40000
    assert np.all(after[1][changed_deep] == 512) and np.all(after[2][changed_deep] == 512)  # grey stays grey


def _ffprobe(path: Path) -> tuple[dict, list[dict]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-show_frames",
                          "-read_intervals", "%+#1", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    stream = {k: data["streams"][0].get(k) for k in ("color_space", "color_transfer", "color_primaries", "color_range",
                                                      "pix_fmt")}
    side = [{k: v for k, v in sd.items()} for sd in data["frames"][0].get("side_data_list", [])
            if sd.get("side_data_type") in ("Mastering display metadata", "Content light level metadata")]
    return stream, side


def test_hdr10_pq_clip_keeps_tags_and_mastering_metadata(model: SwapModel, tmp_path: Path) -> None:
    src = _cli_clip(tmp_path / "hdr10.mkv", [
        "-pix_fmt", "yuv420p10le", "-c:v", "libx265", "-color_primaries", "bt2020", "-color_trc", "smpte2084",
        "-colorspace", "bt2020nc",
        "-x265-params", f"log-level=error:hdr10=1:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:"
                        f"master-display={_MASTER}:max-cll=1000,400"])
    stream_before, side_before = _ffprobe(src)
    assert {sd["side_data_type"] for sd in side_before} == {"Mastering display metadata", "Content light level metadata"}
    info = media.probe(src)
    assert info.hdr is not None and info.hdr.max_cll == 1000 and info.hdr.max_fall == 400
    assert any("HDR10" in w for w in info.warnings("ffv1")) and not info.warnings("h265")
    out = tmp_path / "swapped.mkv"
    stats = render_range(src, out, model_dir=Path(), model=model, settings=SwapSettings(), first=0, last=FRAMES - 1,
                         swap_ranges=[(0, FRAMES - 1)], codec="h265", audio=False)
    assert stats.swapped == FRAMES
    stream_after, side_after = _ffprobe(out)
    assert stream_after == stream_before == {"color_space": "bt2020nc", "color_transfer": "smpte2084",
                                             "color_primaries": "bt2020", "color_range": "tv", "pix_fmt": "yuv420p10le"}
    assert side_after == side_before
    assert media.probe(out).hdr == info.hdr


def test_output_pixel_format_keeps_the_source_depth() -> None:
    from renderer.media.encode import _choose_pix_fmt

    chosen = {(codec, fmt): _choose_pix_fmt(media.CODECS[codec], 64, 64, fmt) for codec, fmt in [
        ("ffv1", "yuv422p12le"), ("ffv1", "gbrp16le"), ("ffv1", "rgb48le"), ("h265", "yuv444p12le"),
        ("prores_4444", "yuv444p12le"), ("dnxhr_444", "gbrp10le"), ("h264", "yuv420p12le"), ("ffv1", "yuv420p")]}
    assert list(chosen.values()) == ["yuv422p12le", "gbrp16le", "gbrp16le", "yuv444p12le", "yuv444p10le", "gbrp10le",
                                     "yuv420p10le", "yuv420p"]
    # Every pixel format a preset may name is one its encoder takes.
    from renderer.presets import CODEC_PIX_FMTS

    import av

    for codec, fmts in CODEC_PIX_FMTS.items():
        encoder = av.codec.Codec(media.CODECS[codec].encoder, "w")
        assert set(fmts) <= set(media.CODECS[codec].pix_fmts) <= {f.name for f in encoder.video_formats}, codec


@pytest.mark.parametrize("blend", ["alpha", "poisson"])
def test_float_exr_frame_is_pasted_in_float_and_untouched_samples_keep_their_bits(tmp_path: Path, blend: str) -> None:
    """A float frame (an OpenEXR image the CLI wrote, decoded as gbrpf32le): read_box is the frame
    itself, the paste is float, and the float samples outside the mask keep their exact bits."""
    src = tmp_path / "frame.exr"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120", "-frames:v", "1",
                    "-pix_fmt", "gbrpf32le", "-c:v", "exr", "-compression", "0", str(src)], check=True)
    info = media.probe(src)
    assert info.pix_fmt == "gbrpf32le" and media.is_deep(info.pix_fmt)
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
    frame = next(media.read_av_frames(src, 0, 0, info))[1]
    before = _planes(frame)
    box = media.read_box(frame, (20, 10, 140, 110), matrix, rng)
    assert box.dtype == np.float32 and np.array_equal(box[..., 1], before[0][10:110, 20:140])  # G plane, as decoded
    size = 64
    yy, xx = np.mgrid[:size, :size]
    face = np.stack([xx / 63.0, yy / 63.0, np.full((size, size), 0.3)], axis=2).astype(np.float32)
    mask = np.clip(1.3 - np.hypot((xx - 31.5) / 28, (yy - 31.5) / 28), 0, 1).astype(np.float32)
    box_from_crop = np.array([[1.5, 0.0, 12.0], [0.0, 1.4, 5.0]])
    patch = paste_face(box, face, box_from_crop, mask, CompositeSettings(colour="rct", blend=blend))
    assert patch is not None and patch.changed.sum() > 3000
    out = media.patch_regions(frame, box, [(20 + patch.x0, 10 + patch.y0, patch.changed)], matrix, rng, origin=(20, 10))
    after = _planes(out)
    changed = np.zeros((info.height, info.width), bool)
    changed[10 + patch.y0: 10 + patch.y0 + patch.changed.shape[0], 20 + patch.x0: 20 + patch.x0 + patch.changed.shape[1]] = patch.changed
    for a, b in zip(before, after):
        assert np.array_equal(a[~changed].view(np.uint32), b[~changed].view(np.uint32))
    got = np.stack([after[2], after[0], after[1]], axis=2)[changed]  # gbrp planes -> RGB
    assert np.allclose(got, box[changed[10:110, 20:140]], atol=1e-6)
    assert len(np.unique(got[:, 0])) > 1000  # float, never rounded to 256 steps


def test_swap_keeps_a_deep_intra_source_in_its_own_layout_by_default(sources: dict[str, Path], tmp_path: Path) -> None:
    """`doppel swap` without --codec: a 12-bit ProRes 4444 source stays ProRes 4444 (not 4:2:2 HQ), a
    10-bit 4:2:2 one stays ProRes HQ (and keeps smart render), and .mkv means lossless FFV1 at depth."""
    from renderer.commands.swap import choose_codec

    p4444, p422 = media.probe(sources["prores4444_12bit"]), media.probe(sources["prores422_10bit"])
    assert choose_codec(None, p4444, tmp_path / "o.mov") == "prores_4444"
    assert choose_codec(None, p422, tmp_path / "o.mov") == "prores_hq"
    assert choose_codec(None, p4444, tmp_path / "o.mkv") == "ffv1"
    assert choose_codec("prores_xq", p4444, tmp_path / "o.mov") == "prores_xq"


def test_lossless_preset_writes_at_the_source_depth(sources: dict[str, Path], model: SwapModel, tmp_path: Path) -> None:
    """The shipped `lossless` preset says `pix_fmt: source`: a 16-bit RGB source comes back 16-bit RGB
    and a 12-bit 4:4:4 one 12-bit 4:4:4 (a fixed yuv444p10le would drop bits from both)."""
    from renderer.presets import load_preset

    preset = load_preset("lossless")
    assert preset.output.pix_fmt == "source" and preset.output.writer_pix_fmt is None
    for name in ("ffv1_rgb16", "prores4444_12bit"):
        out = tmp_path / f"{name}.mkv"
        render_range(sources[name], out, model_dir=Path(), model=model, settings=SwapSettings(), first=0, last=0,
                     swap_ranges=[], codec=preset.output.codec, pix_fmt=preset.output.writer_pix_fmt, audio=False)
        assert media.probe(out).pix_fmt == SOURCES[name][2]
    with pytest.raises(Exception, match="allowed for ffv1: source, "):
        preset.with_overrides({"pix_fmt": "yuv411p"}, source="marker")


def test_two_faces_apart_each_get_their_own_deep_box(model: SwapModel, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two faces side by side (the talking head twice, hstack by the CLI, 10-bit 4:2:2): both are
    swapped at depth, each in its own box, and nothing between or around them changes."""
    movie = F.kphotoalbum_file(F.MOVIE)
    src = tmp_path / "two.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(movie), "-filter_complex",
                    "[0:v]scale=480:360:flags=bicubic,split[a][b];[b]hflip[c];[a][c]hstack", "-frames:v", "2", "-an",
                    "-pix_fmt", "yuv422p10le", "-c:v", "prores_ks", "-profile:v", "3", str(src)], check=True)
    out = tmp_path / "two.mkv"
    read = media.read_box
    boxes: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(media, "read_box", lambda frame, box, *a: boxes.append(box) or read(frame, box, *a))
    stats = render_range(src, out, model_dir=Path(), model=model, settings=SwapSettings(faces="all"), first=0,
                         last=1, swap_ranges=[(0, 1)], codec="ffv1", audio=False)
    assert stats.swapped == 2 and stats.faces == 4, stats.to_json()
    assert len(boxes) == 4 and all(x1 - x0 < 480 for x0, _, x1, _ in boxes), boxes  # one box per face, not the union
    before = [_planes(f) for _, f in media.read_av_frames(src, 0, 1)]
    after = [_planes(f) for _, f in media.read_av_frames(out, 0, 1)]
    for b, a in zip(before, after):
        changed = b[0] != a[0]
        left, right = changed[:, :480], changed[:, 480:]
        assert left.sum() > 2000 and right.sum() > 2000
        assert not changed[:, 440:520].any()  # the seam between the two faces is untouched
        for side in (left, right):
            assert len(np.unique((a[0][:, :480] if side is left else a[0][:, 480:])[side])) > 256
