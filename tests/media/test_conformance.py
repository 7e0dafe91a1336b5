"""Doppel reads files other tools wrote as FFmpeg presents them (the corpus: `conformance.py`).

For every file: `doppel probe`'s frame count is `ffprobe -count_frames`' and its pts index the
decoded pts (ffprobe's and PyAV's decoders); the last 5 frames read back as FFmpeg decodes
them; a whole-file `doppel swap` and a `doppel trim` of the last frame succeed with the same
frame count. Then the small print: edit lists in smart render, timecode through a tmcd
track and an edit list, audio alignment, field order, second video streams, open GOPs.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from renderer import media
from renderer.cli import main
from tests.media.conformance import (
    CORPUS,
    corpus_file,
    ffprobe_fields,
    ffprobe_frame_pts,
    ffprobe_json,
    ffprobe_video,
)
from tests.media.edit_list import read_timing
from tests.model_fixtures import trained_model

NAMES = sorted(CORPUS)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return trained_model()


def decoded(path: Path) -> list[av.VideoFrame]:
    """Every frame FFmpeg's decoder outputs for the first video stream, decoding from the start."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return list(container.decode(stream))


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def out_name(path: Path, info: media.MediaInfo) -> str:
    """An output name the source's own codec (or h264) can be written to."""
    if info.codec == "prores":
        return "out.mov"
    return "out.mkv" if path.suffix == ".mkv" else "out.mp4"


# ------------------------------------------------------------------------------ every file


@pytest.mark.parametrize("name", NAMES)
def test_probe_counts_and_orders_frames_as_ffmpeg(name: str) -> None:
    path = corpus_file(name)
    info = media.probe(path)
    ref = ffprobe_video(path)
    assert info.frames == int(ref["nb_read_frames"]), (name, CORPUS[name].about)
    frames = decoded(path)
    assert list(info.pts) == [f.pts for f in frames], name  # PyAV's FFmpeg 8
    assert list(info.pts) == ffprobe_frame_pts(path), name  # Debian's ffprobe
    assert (info.width, info.height) == (int(ref["width"]), int(ref["height"]))


@pytest.mark.parametrize("name", NAMES)
def test_last_five_frames_read_as_ffmpeg_decodes_them(name: str) -> None:
    path = corpus_file(name)
    info = media.probe(path)
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
    want = [media.frame_to_rgb(f, matrix, rng) for f in decoded(path)[-5:]]
    got = list(media.read_frames(path, info.frames - 5, info.frames - 1, info))
    assert [i for i, _ in got] == list(range(info.frames - 5, info.frames))
    for (i, rgb), ref in zip(got, want, strict=True):
        assert np.array_equal(rgb, ref), (name, i)


@pytest.mark.parametrize("name", ["cut_ss_copy.mp4", "cut_midgop.mp4", "two_edits.mp4", "tail_edit.mp4",
                                  "itsoffset.mp4", "mpegts_midgop.ts", "open_gop.mp4"])
def test_every_frame_reads_from_a_seek_as_decoded_from_the_start(name: str) -> None:
    """Two frames from every start: each seek (to the keyframe before, through hidden
    packets and edit boundaries) gives what decoding the whole file gives."""
    path = corpus_file(name)
    info = media.probe(path)
    want = [f.to_ndarray() for f in decoded(path)]
    for start in range(info.frames - 1):
        got = list(media.read_av_frames(path, start, start + 1, info))
        assert [i for i, _ in got] == [start, start + 1]
        for i, frame in got:
            assert np.array_equal(frame.to_ndarray(), want[i]), (name, start, i)


@pytest.mark.parametrize("name", NAMES)
def test_trim_of_the_last_frame(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus_file(name)
    info = media.probe(path)
    last = info.frames - 1
    out = tmp_path / ("last.mov" if info.codec == "prores" else "last.mp4")
    code, stdout, err = cli(["trim", str(path), "--frames", f"{last}-{last}", "--out", str(out),
                             "--codec", "prores_hq" if out.suffix == ".mov" else "h264", "--json", "--quiet"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["frames"] == 1 and media.probe(out).frames == 1


@pytest.mark.parametrize("name", NAMES)
def test_swap_of_the_whole_file(name: str, model_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus_file(name)
    info = media.probe(path)
    out = tmp_path / out_name(path, info)
    code, stdout, err = cli(["swap", str(path), "--model", str(model_dir), "--out", str(out), "--json",
                             "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["frames"] == info.frames
    assert int(ffprobe_video(out)["nb_read_frames"]) == info.frames == media.probe(out).frames


# ------------------------------------------------------------------------------ edit lists


@pytest.mark.parametrize("name,hidden", [("cut_ss_copy.mp4", "discarded"), ("tail_edit.mp4", "discarded"),
                                         ("two_edits.mp4", "discarded"), ("cut_midgop.mp4", "undecodable"),
                                         ("mpegts_midgop.ts", "undecodable")])
def test_packets_that_are_no_frames_are_counted_apart(name: str, hidden: str) -> None:
    path = corpus_file(name)
    info = media.probe(path)
    with av.open(str(path)) as c:
        packets = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    assert getattr(info, hidden) == packets - info.frames > 0
    assert not info.truncated  # a hidden packet is not damage


@pytest.mark.parametrize("name", ["itsoffset.mp4", "timecode_offset.mov"])
def test_empty_edit_is_a_start_offset(name: str) -> None:
    """An empty edit (media_time -1) delays the video: frame 0 is still the first frame, at
    ffprobe's start_time; no frame is lost."""
    path = corpus_file(name)
    assert read_timing(path).edits[0].media_time == -1
    info = media.probe(path)
    ref = ffprobe_video(path)
    assert info.frame_time(0) == Fraction(ref["start_time"]) == Fraction(2, 5)
    assert info.frames == int(ref["nb_read_frames"]) == 50 and info.discarded == 0


def test_tail_edit_is_the_screen_recording_case(capsys: pytest.CaptureFixture[str]) -> None:
    """50 packets, 49 frames (the issue's 250/249): the last frame is 48 and it reads."""
    path = corpus_file("tail_edit.mp4")
    info = media.probe(path)
    ref = ffprobe_video(path)
    assert (info.frames, int(ref["nb_frames"]), int(ref["nb_read_frames"])) == (49, 50, 49)
    assert info.declared_frames == 49 and not info.truncated
    assert [i for i, _ in media.read_frames(path, 40, 48, info)] == list(range(40, 49))
    code, out, _ = cli(["probe", str(path)], capsys)
    assert code == 0 and "frames      49 (" in out and "1 packet(s) hidden by the edit list" in out


def test_extract_reads_real_footage_with_a_tail_edit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case in small: a real face video whose edit list hides the last packet was
    listed unreadable by `doppel extract` (after its faces were found); now every frame is read."""
    path = corpus_file("carphone_tail_edit.mp4")
    info = media.probe(path)
    assert (info.frames, info.discarded) == (119, 1)
    code, out, err = cli(["extract", str(path), "--out", str(tmp_path / "faces"), "--every", "10", "--json",
                          "--no-progress"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["bad_sources"] == [] and summary["faces_kept"] > 0, summary


@pytest.mark.parametrize("name", ["cut_ss_copy.mp4", "tail_edit.mp4", "two_edits.mp4", "cut_midgop.mp4"])
def test_smart_render_reencodes_the_gops_that_hold_hidden_packets(name: str, model_dir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The hidden packets' GOPs are re-encoded (a copy would show them); the rest is copied
    bit-exact, and the output shows exactly the source's frames."""
    path = corpus_file(name)
    info = media.probe(path)
    cuts = media.cut_points(info)
    assert cuts.reason is None and cuts.forced
    middle = info.frames // 2
    out = tmp_path / "out.mp4"
    code, stdout, err = cli(["swap", str(path), "--model", str(model_dir), "--out", str(out), "--frames",
                             f"{middle}-{middle}", "--json", "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["path"] == "smart", summary["reason"]
    spans = [tuple(s) for s in summary["spans"]]
    for g0, g1 in cuts.forced:
        assert any(s0 <= g0 and g1 <= s1 for s0, s1 in spans), (cuts.forced, spans)
    assert summary["frames_copied"] > 0
    assert int(ffprobe_video(out)["nb_read_frames"]) == info.frames
    src, got = decoded(path), decoded(out)
    copied = [i for i in range(info.frames) if not any(s0 <= i <= s1 for s0, s1 in spans)]
    for i in copied:
        assert np.array_equal(src[i].to_ndarray(), got[i].to_ndarray()), (name, i)


def test_open_gop_reason_says_open_gop(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus_file("open_gop.mp4")
    assert "open GOP" in (media.cut_points(media.probe(path)).reason or "")
    code, stdout, err = cli(["swap", str(path), "--model", str(model_dir), "--out", str(tmp_path / "o.mp4"),
                             "--frames", "20-21", "--json", "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["path"] == "reencode" and summary["reason"].startswith("open GOP")


# ------------------------------------------------------------------------------ timecode and audio


@pytest.mark.parametrize("name,frame0", [("timecode.mov", "01:00:00:00"), ("timecode_cut.mov", "01:00:00:00"),
                                         ("timecode_offset.mov", "01:00:00:10")])
def test_timecode_of_frame_zero_follows_the_edit_list(name: str, frame0: str, tmp_path: Path) -> None:
    """The tmcd sample names the timecode at its track's start; a video track starting later
    (an empty edit) starts that many frames later on the timecode clock."""
    path = corpus_file(name)
    info = media.probe(path)
    streams = ffprobe_json(path, "-show_entries", "stream=codec_type,start_time:stream_tags=timecode")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    tmcd = next(s for s in streams if s["codec_type"] == "data")
    shift = round((Fraction(video["start_time"]) - Fraction(tmcd["start_time"])) * info.fps)
    assert media.shift_timecode(tmcd["tags"]["timecode"], shift, info.fps) == frame0 == info.timecode
    out = media.trim(path, 3, 7, tmp_path / "cut.mov", "prores_hq", info=info)
    assert out.timecode == media.shift_timecode(frame0, 3, info.fps)


@pytest.mark.parametrize("name", ["timecode_cut.mov", "timecode_offset.mov"])
def test_smart_render_keeps_the_timecode_of_frame_zero(name: str, model_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The copied video keeps its start offset and the written tmcd starts at movie time 0:
    the timecode written is frame 0's moved back by that offset, so it reads back unchanged."""
    path = corpus_file(name)
    info = media.probe(path)
    out = tmp_path / "out.mov"
    code, stdout, err = cli(["swap", str(path), "--model", str(model_dir), "--out", str(out), "--frames", "14-15",
                             "--json", "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["path"] == "smart"
    back = media.probe(out)
    assert (back.timecode, back.frame_time(0), back.frames) == (info.timecode, info.frame_time(0), info.frames)


def _audio(path: Path) -> tuple[Fraction, np.ndarray]:
    """(start time of the first decoded sample, float64 (channels, n)) of the first audio stream."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        frames = list(c.decode(stream))
    start = Fraction(frames[0].pts) * Fraction(stream.time_base)
    data = [f.to_ndarray().astype(np.float64) for f in frames]
    if frames[0].format.name == "s32":  # pcm_s24le decodes as s32, interleaved
        channels = frames[0].layout.nb_channels
        data = [d.reshape(-1, channels).T / 2147483648.0 for d in data]
    return start, np.concatenate(data, axis=1)


@pytest.mark.parametrize("name", ["h264_bframes_aac.mp4", "itsoffset.mp4", "cut_ss_copy.mp4", "melt.mp4"])
def test_trim_carries_the_audio_of_the_same_frames(name: str, tmp_path: Path) -> None:
    """Sample-aligned (PCM out): the trimmed audio is the source's decoded audio (AAC priming
    skipped, as FFmpeg does) from the start of the first trimmed frame to the end of the last.
    The sines move ~7e-3 a sample, so 1e-3 tells a one-sample shift from float->s24 rounding."""
    path = corpus_file(name)
    info = media.probe(path)
    out = media.trim(path, 5, 14, tmp_path / "cut.mov", "prores_hq", info=info)
    src_t0, src = _audio(path)
    _, got = _audio(out.path)
    rate = info.audio[0].sample_rate
    first = round((info.frame_time(5) - src_t0) * rate)
    assert got.shape[1] == round((info.frame_end_time(14) - info.frame_time(5)) * rate)
    assert np.abs(got - src[:, first:first + got.shape[1]]).max() < 1e-3, name


# ------------------------------------------------------------------------------ small print


@pytest.mark.parametrize("name", ["interlaced_tff.mp4", "interlaced_bff.mov", "interlaced_face_tff.mov"])
def test_field_order_is_probed_and_kept(name: str, model_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Stream and container say the source's field order, and every coded frame keeps the
    source's field flags, swapped frames too (ffprobe's per-frame interlaced/top_field_first)."""
    path = corpus_file(name)
    info = media.probe(path)
    order = CORPUS[name].facts["field_order"]
    assert info.field_order == ffprobe_video(path)["field_order"] == order and info.interlaced
    fields = ffprobe_fields(path)
    code, out, _ = cli(["probe", str(path)], capsys)
    assert code == 0 and ("top field first" if order == "tt" else "bottom field first") in out
    suffix, codec = (".mov", "prores_hq") if info.codec == "prores" else (".mp4", "h264")
    trimmed = media.trim(path, 2, 9, tmp_path / f"cut{suffix}", codec, info=info)
    assert trimmed.field_order == ffprobe_video(trimmed.path)["field_order"] == order
    assert ffprobe_fields(trimmed.path) == fields[2:10]
    swapped = tmp_path / f"swapped{suffix}"
    code, stdout, err = cli(["swap", str(path), "--model", str(model_dir), "--out", str(swapped), "--no-progress",
                             "--device", "cpu", "--codec", codec, "--json"], capsys)
    assert code == 0, err
    if name == "interlaced_face_tff.mov":
        assert json.loads(stdout)["swapped"] > 0  # the real face: these frames were patched
    assert ffprobe_video(swapped)["field_order"] == order
    assert ffprobe_fields(swapped) == fields


def test_second_video_stream_is_named_and_a_warning_says_it_is_not_carried(
        model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus_file("two_video.mkv")
    info = media.probe(path)
    assert info.video_index == 0 and info.other_video == (media.VideoStreamInfo(1, "h264", 80, 48),)
    code, out, _ = cli(["probe", str(path)], capsys)
    assert code == 0 and "#1 h264 80x48  NOT CARRIED" in out
    code, out, _ = cli(["probe", str(path), "--json"], capsys)
    assert json.loads(out)["other_video"] == [{"index": 1, "codec": "h264", "width": 80, "height": 48}]
    code, out, err = cli(["trim", str(path), "--frames", "0-4", "--out", str(tmp_path / "t.mkv"), "--quiet",
                          "--json"], capsys)
    assert code == 0 and "warning: two_video" in err and "stream #1 (h264 80x48) is not carried" in err
    assert json.loads(out)["warnings"] == info.warnings()
    code, out, err = cli(["swap", str(path), "--model", str(model_dir), "--out", str(tmp_path / "s.mkv"),
                          "--no-progress", "--device", "cpu", "--json"], capsys)
    assert code == 0 and "stream #1 (h264 80x48) is not carried" in err
    with av.open(str(tmp_path / "s.mkv")) as c:
        assert len(c.streams.video) == 1
