"""renderer.media on real generated clips: probe, exact-range decode, writer, trim, timecode."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from renderer import media
from renderer.errors import InputError
from tests.media_factory import PATCH_RGB, cached_clip, patch_box, paint_frame, read_frame_number, vfr_pts

NTSC = Fraction(24000, 1001)


# ---------------------------------------------------------------------------------------------
# Clips (cached under .cache/media; each takes well under a second to make)


@pytest.fixture(scope="module")
def h264_clip() -> Path:
    """H.264, 3 B-frames, closed 48-frame GOP, 24000/1001, timecode 01:00:00:00, AAC sine."""
    return cached_clip("h264-bframes", frames=100, width=192, height=108, fps=NTSC, codec="h264",
                       timecode="01:00:00:00", audio=True, gop=48, bframes=3, suffix=".mp4")


@pytest.fixture(scope="module")
def open_gop_clip() -> Path:
    return cached_clip("h264-opengop", frames=80, width=192, height=108, fps=NTSC, codec="h264",
                       gop=24, bframes=3, open_gop=True, suffix=".mp4")


@pytest.fixture(scope="module")
def prores_clip() -> Path:
    """ProRes 422 HQ 10-bit, 25 fps, timecode 10:00:00:00, PCM s16 audio."""
    return cached_clip("prores10", frames=40, width=192, height=108, fps=Fraction(25), codec="prores",
                       timecode="10:00:00:00", audio=True, suffix=".mov")


@pytest.fixture(scope="module")
def vfr_clip() -> Path:
    """H.264 in mkv, a 30/20/30 fps mix, time base 1/1000."""
    return cached_clip("vfr", frames=60, width=192, height=108, fps=Fraction(30), codec="h264",
                       pts=vfr_pts(60), time_base=Fraction(1, 1000), bframes=2, gop=30, suffix=".mkv")


@pytest.fixture(scope="module")
def odd_clip() -> Path:
    return cached_clip("odd", frames=30, width=318, height=178, fps=Fraction(25), codec="h264_444", suffix=".mp4")


@pytest.fixture(scope="module")
def offset_clip() -> Path:
    """A mov whose streams start at 10 s (video and PCM audio), B-frames, 20-frame GOP."""
    return cached_clip("offset", frames=50, width=192, height=108, fps=Fraction(25), codec="h264",
                       start_pts=250, bframes=2, gop=20, audio=True, suffix=".mov")


@pytest.fixture(scope="module")
def offset_ts_clip() -> Path:
    """MPEG-TS starting at 10 s: a byte-seeking demuxer whose seeks land after the target."""
    return cached_clip("offset-ts", frames=50, width=192, height=108, fps=Fraction(25), codec="h264",
                       start_pts=250, bframes=2, gop=20, suffix=".ts")


def numbers(path: Path, info: media.MediaInfo | None = None) -> list[int]:
    info = info or media.probe(path)
    return [read_frame_number(rgb) for _, rgb in media.read_frames(path, 0, info.frames - 1, info)]


def assert_random_ranges(path: Path, count: int = 50, seed: int = 7) -> None:
    info = media.probe(path)
    rnd = random.Random(seed)
    for _ in range(count):
        start = rnd.randrange(info.frames)
        end = min(info.frames - 1, start + rnd.randrange(4))
        got = [(i, read_frame_number(rgb), rgb.shape, rgb.dtype) for i, rgb in media.read_frames(path, start, end, info)]
        assert [g[0] for g in got] == list(range(start, end + 1)), (path.name, start, end)
        assert [g[1] for g in got] == list(range(start, end + 1)), (path.name, start, end, got)
        assert all(g[2] == (info.height, info.width, 3) and g[3] == np.uint8 for g in got)


# ---------------------------------------------------------------------------------------------
# probe


def test_probe_h264_bframes(h264_clip: Path) -> None:
    info = media.probe(h264_clip)
    assert (info.codec, info.width, info.height, info.pix_fmt) == ("h264", 192, 108, "yuv420p")
    assert info.fps == NTSC and info.frames == 100 and not info.vfr
    assert info.timecode == "01:00:00:00" and not info.drop_frame
    assert info.keyframes == (0, 48, 96)
    assert info.pts == tuple(sorted(info.pts)) and len(set(info.pts)) == 100
    assert info.color == media.ColorTags("bt709", "bt709", "bt709", "tv")
    assert len(info.audio) == 1 and info.audio[0].codec == "aac" and info.audio[0].sample_rate == 48000
    assert info.audio[0].channels == 2 and abs(info.audio[0].duration_s - 100 * 1001 / 24000) < 0.03
    assert not info.truncated and info.rotation == 0


def test_probe_prores_10bit(prores_clip: Path) -> None:
    info = media.probe(prores_clip)
    assert info.codec == "prores" and info.pix_fmt == "yuv422p10le"
    assert info.fps == 25 and info.frames == 40 and info.timecode == "10:00:00:00"
    assert info.audio[0].codec == "pcm_s16le" and info.audio[0].duration_s == pytest.approx(1.6)


def test_probe_vfr(vfr_clip: Path) -> None:
    info = media.probe(vfr_clip)
    assert info.vfr and info.frames == 60
    assert info.time_base == Fraction(1, 1000)
    assert list(info.pts) == vfr_pts(60)
    assert 20 < float(info.fps) < 30  # the mean rate, not a container's guess


def test_probe_non_zero_start(offset_clip: Path) -> None:
    info = media.probe(offset_clip)
    assert info.start_pts * info.time_base == 10 and info.fps == 25 and info.frames == 50 and not info.vfr


def test_probe_odd_size(odd_clip: Path) -> None:
    info = media.probe(odd_clip)
    assert (info.width, info.height, info.frames) == (318, 178, 30)


def test_probe_json_is_plain(h264_clip: Path) -> None:
    data = media.probe(h264_clip).to_json()
    assert data["fps"] == "24000/1001" and data["frames"] == 100 and data["timecode"] == "01:00:00:00"
    assert data["audio"][0]["sample_rate"] == 48000


# ---------------------------------------------------------------------------------------------
# read_frames: exact for every kind of clip


@pytest.mark.parametrize("clip", ["h264_clip", "open_gop_clip", "prores_clip", "vfr_clip", "odd_clip",
                                  "offset_clip", "offset_ts_clip"])
def test_read_frames_exact_random_ranges(clip: str, request: pytest.FixtureRequest) -> None:
    assert_random_ranges(request.getfixturevalue(clip))


def test_read_frames_full_length_big_odd(tmp_path: Path) -> None:
    path = cached_clip("big-odd", frames=4, width=1918, height=1078, fps=Fraction(25), codec="h264_444",
                       suffix=".mp4")
    info = media.probe(path)
    assert (info.width, info.height) == (1918, 1078)
    got = list(media.read_frames(path, 1, 3, info))
    assert [read_frame_number(rgb) for _, rgb in got] == [1, 2, 3]
    assert got[0][1].shape == (1078, 1918, 3)  # no padding, no cropping


def test_read_frames_uses_source_matrix(h264_clip: Path) -> None:
    """The BT.709 patch comes back as painted (BT.601 would give about 187,45,32)."""
    info = media.probe(h264_clip)
    _, rgb = next(media.read_frames(h264_clip, 5, 5, info))
    rows, cols = patch_box(info.width, info.height)
    mean = rgb[rows, cols].reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(mean - np.array(PATCH_RGB)) < 3), mean


def test_read_frames_deterministic(h264_clip: Path) -> None:
    a = [rgb for _, rgb in media.read_frames(h264_clip, 50, 53)]
    b = [rgb for _, rgb in media.read_frames(h264_clip, 50, 53)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("start,end", [(-1, 3), (5, 4), (0, 100), (100, 100)])
def test_read_frames_out_of_range(h264_clip: Path, start: int, end: int) -> None:
    with pytest.raises(InputError, match=r"allowed: 0-99"):
        list(media.read_frames(h264_clip, start, end))


# ---------------------------------------------------------------------------------------------
# VideoWriter


@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("h265", ".mkv"), ("prores_hq", ".mov"), ("prores_4444", ".mov"),
                                          ("prores_xq", ".mov"), ("dnxhr_hq", ".mxf"), ("dnxhr_hqx", ".mxf"),
                                          ("dnxhr_444", ".mov"), ("ffv1", ".mkv")])
def test_writer_every_profile(tmp_path: Path, codec: str, suffix: str) -> None:
    out = tmp_path / f"w{suffix}"
    w, h = (192, 108) if not codec.startswith("dnxhr") else (256, 144)
    with media.VideoWriter(out, width=w, height=h, fps=NTSC, codec=codec, timecode="00:59:59:23") as writer:
        for n in range(6):
            writer.write(paint_frame(n, w, h))
    info = media.probe(out)
    assert info.frames == 6 and info.fps == NTSC and info.timecode == "00:59:59:23"
    assert info.color == media.ColorTags("bt709", "bt709", "bt709", "tv")  # prores_ks too: tags on every frame
    assert numbers(out, info) == list(range(6))
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left


def test_writer_odd_size_not_padded(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    with media.VideoWriter(out, width=317, height=177, fps=Fraction(25)) as writer:
        for n in range(3):
            writer.write(paint_frame(n, 317, 177))
    info = media.probe(out)
    assert (info.width, info.height, info.pix_fmt) == (317, 177, "yuv444p")
    assert numbers(out, info) == [0, 1, 2]


def test_writer_odd_size_refused_where_impossible(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="odd size 317x177"):
        media.VideoWriter(tmp_path / "odd.mov", width=317, height=177, fps=Fraction(25), codec="prores_hq")


def test_writer_lossless_rgb_round_trip(tmp_path: Path) -> None:
    """FFV1 4:4:4 from RGB: every pixel back within 1 code value (BT.709 both ways)."""
    out = tmp_path / "l.mkv"
    frames = [paint_frame(n, 96, 64) for n in range(3)]
    with media.VideoWriter(out, width=96, height=64, fps=Fraction(25), codec="ffv1") as writer:
        for rgb in frames:
            writer.write(rgb)
    back = [rgb for _, rgb in media.read_frames(out, 0, 2)]
    for a, b in zip(frames, back, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
        rows, cols = patch_box(96, 64)
        assert np.abs(a[rows, cols].astype(int) - b[rows, cols].astype(int)).max() <= 1


def test_writer_error_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoWriter(out, width=64, height=64, fps=Fraction(25)) as writer:
            writer.write(paint_frame(0, 64, 64))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_frame(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"uint8 \(64, 64, 3\)"):
        with media.VideoWriter(tmp_path / "x.mp4", width=64, height=64, fps=Fraction(25)) as writer:
            writer.write(np.zeros((64, 64, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_container(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"allowed: \.mov"):
        media.VideoWriter(tmp_path / "x.mp4", width=64, height=64, fps=Fraction(25), codec="prores_hq")


# ---------------------------------------------------------------------------------------------
# trim


def _audio_samples(path: Path) -> int:
    import av  # test-side check of the audio actually stored

    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(c.streams.audio[0]))


def test_trim_h264_aac(h264_clip: Path, tmp_path: Path) -> None:
    out = media.trim(h264_clip, 30, 70, tmp_path / "cut.mp4", "h264")
    assert out.frames == 41 and out.fps == NTSC and out.timecode == "01:00:01:06"
    assert numbers(out.path, out) == list(range(30, 71))
    want = round(41 * Fraction(1001, 24000) * 48000)
    assert out.audio[0].codec == "aac" and abs(_audio_samples(out.path) - want) <= 1024


def test_trim_prores_pcm_exact_audio(prores_clip: Path, tmp_path: Path) -> None:
    src_bytes = prores_clip.read_bytes()
    out = media.trim(prores_clip, 7, 26, tmp_path / "cut.mov", "prores_hq")
    assert out.frames == 20 and out.timecode == "10:00:00:07" and out.pix_fmt == "yuv422p10le"
    assert numbers(out.path, out) == list(range(7, 27))
    assert _audio_samples(out.path) == 20 * 48000 // 25  # exact for PCM
    assert prores_clip.read_bytes() == src_bytes  # the source is never written


@pytest.mark.parametrize("layout", ["mono", "5.1(side)"])
def test_trim_carries_mono_and_surround_audio(layout: str, tmp_path: Path) -> None:
    from tests.media_factory import make_numbered_clip

    src = make_numbered_clip(tmp_path / "src.mov", 12, 64, 48, codec="prores", audio=True, audio_layout=layout)
    channels = media.probe(src).audio[0].channels
    for suffix, codec in ((".mov", "prores_hq"), (".mp4", "h264")):
        out = media.trim(src, 2, 9, tmp_path / f"cut{suffix}", codec)
        assert out.frames == 8 and out.audio[0].channels == channels == (1 if layout == "mono" else 6)


def test_trim_audio_is_the_right_slice(prores_clip: Path, tmp_path: Path) -> None:
    """The carried samples are the source's samples at the same time, not just the right count."""
    import av

    out = media.trim(prores_clip, 10, 19, tmp_path / "cut.mkv", "ffv1")
    with av.open(str(prores_clip)) as c:
        src = np.concatenate([f.to_ndarray().reshape(-1, 2).T for f in c.decode(c.streams.audio[0])], axis=1)
    with av.open(str(out.path)) as c:
        got = np.concatenate([f.to_ndarray().reshape(-1, 2).T for f in c.decode(c.streams.audio[0])], axis=1)
    first = 10 * 48000 // 25
    assert got.shape[1] == 10 * 48000 // 25
    assert np.array_equal(got.astype(np.int64) >> 16, src[:, first:first + got.shape[1]].astype(np.int64))


def test_trim_ffv1_lossless_pixels(h264_clip: Path, tmp_path: Path) -> None:
    out = media.trim(h264_clip, 45, 52, tmp_path / "cut.mkv", "ffv1")
    assert out.timecode == "01:00:01:21"
    src = [rgb for _, rgb in media.read_frames(h264_clip, 45, 52)]
    got = [rgb for _, rgb in media.read_frames(out.path, 0, 7, out)]
    for a, b in zip(src, got, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_trim_dnxhr_mxf(offset_clip: Path, tmp_path: Path) -> None:
    src = cached_clip("dnx-src", frames=12, width=256, height=144, fps=Fraction(25), codec="h264",
                      timecode="00:00:10:00", audio=True, suffix=".mov")
    out = media.trim(src, 2, 9, tmp_path / "cut.mxf", "dnxhr_hq")
    assert out.frames == 8 and out.timecode == "00:00:10:02" and out.codec == "dnxhd"
    assert numbers(out.path, out) == list(range(2, 10))
    assert _audio_samples(out.path) == 8 * 48000 // 25


def test_trim_vfr_keeps_timing(vfr_clip: Path, tmp_path: Path) -> None:
    src = media.probe(vfr_clip)
    out = media.trim(vfr_clip, 10, 45, tmp_path / "cut.mkv", "ffv1")
    assert out.vfr and numbers(out.path, out) == list(range(10, 46))
    src_steps = np.diff(np.array(src.pts[10:46]) * float(src.time_base))
    out_steps = np.diff(np.array(out.pts) * float(out.time_base))
    assert np.allclose(src_steps, out_steps, atol=0.0011)


def test_trim_non_zero_start(offset_clip: Path, tmp_path: Path) -> None:
    out = media.trim(offset_clip, 21, 33, tmp_path / "cut.mov", "prores_hq")
    assert numbers(out.path, out) == list(range(21, 34))
    assert _audio_samples(out.path) == 13 * 48000 // 25


def test_trim_odd_size(odd_clip: Path, tmp_path: Path) -> None:
    out = media.trim(odd_clip, 3, 8, tmp_path / "cut.mp4", "h264")
    assert (out.width, out.height) == (318, 178) and numbers(out.path, out) == list(range(3, 9))


# ---------------------------------------------------------------------------------------------
# Damaged media


def test_truncated_file_decodes_then_names_last_good_frame(h264_clip: Path, tmp_path: Path) -> None:
    whole = media.trim(h264_clip, 0, 59, tmp_path / "whole.mkv", "ffv1")
    data = whole.path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    info = media.probe(cut)
    assert info.frames < 60
    got = []
    with pytest.raises(media.CorruptMediaError, match=r"last good frame (is )?39") as err:
        for i, rgb in media.read_frames(cut, 0, 59, info):
            got.append(read_frame_number(rgb))
    assert got == list(range(len(got))) and len(got) >= 30
    assert err.value.exit_code == 2
    # The numbers in the message agree with each other and with what was yielded.
    assert f"frames 0-{len(got) - 1} decoded" in str(err.value) and "frame is -1" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Timecode


@pytest.mark.parametrize("frame,fps,drop,tc", [
    (0, NTSC, False, "00:00:00:00"),
    (86400, Fraction(24), False, "01:00:00:00"),
    (1800, Fraction(30000, 1001), True, "00:01:00;02"),
    (17982, Fraction(30000, 1001), True, "00:10:00;00"),
    (107892, Fraction(30000, 1001), True, "01:00:00;00"),
    (3600, Fraction(60000, 1001), True, "00:01:00;04"),
    (90000, Fraction(25), False, "01:00:00:00"),
])
def test_timecode_round_trip(frame: int, fps: Fraction, drop: bool, tc: str) -> None:
    assert media.frame_to_timecode(frame, fps, drop) == tc
    assert media.timecode_to_frame(tc, fps) == frame


def test_timecode_drop_frame_every_frame() -> None:
    fps = Fraction(30000, 1001)
    for n in range(0, 200000, 37):
        assert media.timecode_to_frame(media.frame_to_timecode(n, fps, True), fps) == n


@pytest.mark.parametrize("tc", ["01:00:00", "aa:00:00:00", "00:00:00:30", "00:01:00;00"])
def test_timecode_bad(tc: str) -> None:
    with pytest.raises(InputError, match="timecode"):
        media.timecode_to_frame(tc, Fraction(30000, 1001))
