"""`doppel swap` through the real CLI entry point, on a real talking-head clip.

Smart render (stream copy of untouched GOPs) is checked at the packet level: copied GOPs
carry the source's packet bytes, the output decodes frame-exact (painted numbers, and
FFmpeg's own decoder reports no error), timing, timecode, colour and audio follow the
source. The media-level pieces (`cut_points`, `gop_spans`, `splice`) are checked on
generated clips without faces first: they need no model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from renderer import media
from renderer.atomic import sha256_file
from renderer.cli import main
from tests import face_data as F
from tests.media_factory import cached_clip, make_numbered_clip, read_frame_number, vfr_pts
from tests.model_fixtures import SHIPPED_MODEL, movie_frames, paint_number, trained_model

NTSC = Fraction(24000, 1001)
FRAMES = 48
GOP = 12
SWAP = (20, 25)  # inside the GOPs 12-23 and 24-35: the smart span is 12-35
# Untouched pixels re-encoded in a spliced h264 span (crf 6, SPAN_OPTIONS) or as ProRes HQ stay
# >= 45 dB from the source (at media.CODECS' crf 18 they measured 41-46 dB).
H264_PSNR = 45.0
PRORES_PSNR = 45.0


# ------------------------------------------------------------------------------ helpers


def face_clip_gop(path: Path, frames: int, codec: str, *, gop: int | None = None, audio: bool = False,
                  timecode: str | None = "01:00:00:00") -> Path:
    """The real talking head (480x360, frame numbers painted) with a fixed GOP and optional audio.

    Audio: the sine of a generated clip of the same length (AAC in mp4, PCM elsewhere)."""
    source = movie_frames(3)
    order = np.concatenate([np.arange(len(source)), np.arange(len(source) - 2, 0, -1)])
    h, w = source.shape[1:3]
    audio_from = None
    if audio:
        tone = cached_clip("swap-cli-tone", frames=frames, width=64, height=48, fps=NTSC, codec="h264", audio=True,
                           suffix=".mov")
        audio_from = (tone, 0, frames - 1)
    options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop else None
    with media.VideoWriter(path, width=w, height=h, fps=NTSC, codec=codec, timecode=timecode,
                           audio_from=audio_from, options=options) as writer:
        for n in range(frames):
            img = source[order[n % len(order)]].copy()
            paint_number(img, n)
            writer.write(img)
    return path


def run_cli(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def packets(path: Path, kind: str = "video") -> list[tuple[int | None, bytes]]:
    """(pts, bytes) of every packet of the first `kind` stream, in decode order."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(p.pts, bytes(p)) for p in c.demux(stream) if p.size]


def decode_all(path: Path) -> list[np.ndarray]:
    info = media.probe(path)
    return [rgb for _, rgb in media.read_frames(path, 0, info.frames - 1, info)]


def ffmpeg_decode_errors(path: Path) -> str:
    """stderr of Debian's ffmpeg decoding every frame (an independent decoder); '' when clean."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is not installed")
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                          capture_output=True, text=True, check=False)
    return done.stderr.strip()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def face_box(rgb: np.ndarray) -> tuple[slice, slice]:
    """Rows/cols of the largest face's box grown by half its size each side (the region a swap may touch)."""
    from renderer.faces.track import find_faces

    faces = find_faces(rgb)
    assert faces, "no face found in a source frame of the face clip"
    x0, y0, x1, y1 = max(faces, key=lambda f: f.area).box
    w, h = x1 - x0, y1 - y0
    return slice(max(0, int(y0 - h / 2)), int(y1 + h / 2)), slice(max(0, int(x0 - w / 2)), int(x1 + w / 2))


# ------------------------------------------------------------------------------ media level (no model)


def test_cut_points_follow_closed_gops_and_refuse_open_ones(tmp_path: Path) -> None:
    closed = make_numbered_clip(tmp_path / "closed.mp4", 48, 160, 96, gop=12, bframes=3)
    cuts = media.cut_points(media.probe(closed))
    assert cuts.reason is None and cuts.cuts == (0, 12, 24, 36, 48)
    assert media.gop_spans(cuts, [(20, 25)]) == [(12, 35)]
    assert media.gop_spans(cuts, [(12, 23)]) == [(12, 23)]
    assert media.gop_spans(cuts, [(3, 5), (11, 13)]) == [(0, 23)]  # touching spans merge
    # Open GOP: the B-frames before each I-frame reference the GOP before: no safe cut inside.
    opened = make_numbered_clip(tmp_path / "open.mp4", 48, 160, 96, gop=12, bframes=3, open_gop=True)
    assert media.cut_points(media.probe(opened)).cuts == (0, 48)
    intra = make_numbered_clip(tmp_path / "intra.mov", 6, 160, 96, codec="prores")
    assert media.cut_points(media.probe(intra)).cuts == (0, 1, 2, 3, 4, 5, 6)
    mpeg4 = make_numbered_clip(tmp_path / "m.mp4", 6, 160, 96, codec="mpeg4")
    assert "mpeg4" in (media.cut_points(media.probe(mpeg4)).reason or "")
    with pytest.raises(media.InputError, match="outside"):
        media.gop_spans(cuts, [(40, 48)])


def test_splice_copies_packets_and_decodes_frame_exact(tmp_path: Path) -> None:
    src = make_numbered_clip(tmp_path / "src.mp4", 48, 160, 96, fps=NTSC, gop=12, bframes=3,
                             timecode="01:00:00:00", audio=True)
    info = media.probe(src)
    before = sha256_file(src)
    part = tmp_path / "part.mp4"
    media.trim(src, 12, 35, part, codec="h264")  # another encoder setup (medium, 3 B-frames): other SPS/PPS
    out = tmp_path / "out.mp4"
    result = media.splice(src, out, [(12, 35, part)], info=info, metadata={"comment": "spliced"})
    assert sha256_file(src) == before
    assert (result.copied, result.encoded, result.parameter_sets_at) == (24, 24, (36,))
    got = result.info
    assert got.frames == 48 and got.pts == info.pts and got.fps == NTSC and got.timecode == "01:00:00:00"
    assert got.color == info.color
    assert [read_frame_number(f) for f in decode_all(out)] == list(range(48))
    assert ffmpeg_decode_errors(out) == ""
    src_pk, out_pk, part_pk = dict(packets(src)), dict(packets(out)), packets(part)
    for i, pts in enumerate(info.pts):
        if 12 <= i <= 35:
            assert out_pk[pts] != src_pk[pts]
        elif i == 36:  # the source's SPS/PPS ride in-band ahead of the unchanged access unit
            assert out_pk[pts].endswith(src_pk[pts]) and len(out_pk[pts]) > len(src_pk[pts])
        else:
            assert out_pk[pts] == src_pk[pts], f"copied packet of frame {i} differs"
    # The span: the part's packets in the part's decode order, its own SPS/PPS ahead of the first.
    span_pts = set(info.pts[12:36])
    out_span = [b for pts, b in packets(out) if pts in span_pts]
    assert len(part_pk) == 24 and out_span[1:] == [b for _, b in part_pk[1:]]
    assert out_span[0].endswith(part_pk[0][1]) and len(out_span[0]) > len(part_pk[0][1])
    assert packets(out, "audio") == packets(src, "audio")
    with av.open(str(out)) as c:
        assert c.metadata.get("comment") == "spliced"


def test_splice_keeps_vfr_timing_and_intra_frames(tmp_path: Path) -> None:
    vfr = make_numbered_clip(tmp_path / "vfr.mp4", 36, 160, 96, gop=6, bframes=2, pts=vfr_pts(36),
                             time_base=Fraction(1, 1000))
    info = media.probe(vfr)
    assert info.vfr
    spans = media.gop_spans(media.cut_points(info), [(14, 15)])
    assert spans == [(12, 17)]
    media.trim(vfr, 12, 17, tmp_path / "part.mp4", codec="h264")
    got = media.splice(vfr, tmp_path / "out.mp4", [(12, 17, tmp_path / "part.mp4")], info=info).info
    assert got.pts == info.pts and [read_frame_number(f) for f in decode_all(got.path)] == list(range(36))
    prores = make_numbered_clip(tmp_path / "p.mov", 12, 160, 96, codec="prores", timecode="00:10:00:00")
    info = media.probe(prores)
    media.trim(prores, 5, 6, tmp_path / "part.mov", codec="prores_hq")
    result = media.splice(prores, tmp_path / "out.mov", [(5, 6, tmp_path / "part.mov")], info=info)
    assert (result.copied, result.encoded, result.info.timecode) == (10, 2, "00:10:00:00")
    src_pk, out_pk = packets(prores), packets(result.info.path)
    assert [out_pk[i] == src_pk[i] for i in range(12)] == [i not in (5, 6) for i in range(12)]
    assert [read_frame_number(f) for f in decode_all(result.info.path)] == list(range(12))


def test_splice_refuses_a_span_that_does_not_fit(tmp_path: Path) -> None:
    src = make_numbered_clip(tmp_path / "src.mp4", 24, 160, 96, gop=12)
    wrong = tmp_path / "wrong.mp4"
    make_numbered_clip(wrong, 12, 160, 96, codec="h264_444")  # another pixel format
    out = tmp_path / "out.mp4"
    with pytest.raises(media.SpliceError, match="pixel format yuv444p"):
        media.splice(src, out, [(12, 23, wrong)])
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src.mp4", "wrong.mp4"]


# ------------------------------------------------------------------------------ doppel swap (real faces)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return trained_model()


@pytest.fixture(scope="module")
def h264_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_clip_gop(tmp_path_factory.mktemp("swapcli") / "face.mp4", FRAMES, "h264", gop=GOP, audio=True)


def test_smart_render_h264(h264_clip: Path, model_dir: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "swapped.mp4"
    before = sha256_file(h264_clip)
    code, stdout, _ = run_cli(["swap", h264_clip, "--model", model_dir, "--out", out,
                               "--frames", f"{SWAP[0]}-{SWAP[1]}", "--json", "--no-progress", "--precision", "fp32",
                               "--runtime", "torch"],
                              capsys)
    assert code == 0
    assert sha256_file(h264_clip) == before, "the source was modified"
    summary = json.loads(stdout)
    assert summary["model_precision"] == "fp32" and summary["model_runtime"] == "torch"
    assert summary["path"] == "smart" and summary["reason"] is None
    assert summary["spans"] == [[12, 35]]
    assert (summary["frames_copied"], summary["frames_encoded"], summary["frames"]) == (24, 24, FRAMES)
    assert summary["swapped"] == 6 and summary["passed_through"]["outside range"] == FRAMES - 6
    assert summary["seconds"]["model_process"] > 0  # the network's own time, in its process
    src_info, info = media.probe(h264_clip), media.probe(out)
    assert info.frames == FRAMES and info.pts == src_info.pts and info.fps == NTSC
    assert info.timecode == "01:00:00:00" and info.color == src_info.color and info.codec == "h264"
    # Untouched GOPs: the source's packet bytes (frame 36 also carries the source's SPS/PPS in-band).
    src_pk, out_pk = dict(packets(h264_clip)), dict(packets(out))
    for i, pts in enumerate(src_info.pts):
        if i < 12 or i > 36:
            assert out_pk[pts] == src_pk[pts], f"copied packet of frame {i} differs from the source's"
    assert out_pk[src_info.pts[36]].endswith(src_pk[src_info.pts[36]])
    assert packets(out, "audio") == packets(h264_clip, "audio")
    with av.open(str(out)) as c:
        assert "SYNTHETIC MEDIA" in c.metadata.get("comment", "")
    # Decodes cleanly and frame-exact.
    assert ffmpeg_decode_errors(out) == ""
    src, dst = decode_all(h264_clip), decode_all(out)
    assert [read_frame_number(f) for f in dst] == list(range(FRAMES))
    for i in range(FRAMES):
        if i < 12 or i > 35:
            assert np.array_equal(src[i], dst[i]), f"stream-copied frame {i} decodes differently"
        elif not SWAP[0] <= i <= SWAP[1]:
            assert psnr(src[i], dst[i]) >= H264_PSNR, f"re-encoded untouched frame {i}: {psnr(src[i], dst[i]):.1f} dB"
        else:
            rows, cols = face_box(src[i])
            outside = np.ones(src[i].shape[:2], bool)
            outside[rows, cols] = False
            assert psnr(src[i][outside], dst[i][outside]) >= H264_PSNR, f"frame {i}: pixels away from the face changed"
            inner = np.abs(src[i][rows, cols].astype(int) - dst[i][rows, cols].astype(int)).mean()
            assert inner > 1.0, f"frame {i}: the face region barely changed ({inner:.2f})"


def test_other_codec_reencodes_everything(h264_clip: Path, model_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "swapped.mov"
    code, stdout, _ = run_cli(["swap", h264_clip, "--model", model_dir, "--out", out, "--frames", "40-43",
                               "--codec", "prores_hq", "--json", "--no-progress"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["path"] == "reencode" and "prores_hq" in summary["reason"]
    assert summary["frames_copied"] == 0 and summary["frames_encoded"] == FRAMES and summary["swapped"] == 4
    info, src_info = media.probe(out), media.probe(h264_clip)
    assert info.codec == "prores" and info.pts == src_info.pts and info.timecode == "01:00:00:00"
    assert info.audio and info.audio[0].codec == "pcm_s24le"
    src, dst = decode_all(h264_clip), decode_all(out)
    assert [read_frame_number(f) for f in dst] == list(range(FRAMES))
    for i in range(40):
        assert psnr(src[i], dst[i]) >= PRORES_PSNR, f"frame {i} outside --frames: {psnr(src[i], dst[i]):.1f} dB"


def test_lossless_ffv1_is_exact_outside_the_face(model_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    clip = face_clip_gop(tmp_path / "face.mkv", 24, "ffv1")
    out = tmp_path / "swapped.mkv"
    code, stdout, _ = run_cli(["swap", clip, "--model", model_dir, "--out", out, "--frames", "8-11",
                               "--json", "--no-progress"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["path"] == "smart", summary["reason"]
    assert summary["spans"] == [[8, 11]] and summary["frames_copied"] == 20 and summary["swapped"] == 4
    assert [p for p in packets(out)][:8] == [p for p in packets(clip)][:8]
    src, dst = decode_all(clip), decode_all(out)
    assert [read_frame_number(f) for f in dst] == list(range(24))
    for i in range(24):
        if not 8 <= i <= 11:
            assert np.array_equal(src[i], dst[i]), f"frame {i} outside --frames changed"
            continue
        rows, cols = face_box(src[i])
        outside = np.ones(src[i].shape[:2], bool)
        outside[rows, cols] = False
        assert np.array_equal(src[i][outside], dst[i][outside]), f"frame {i}: pixels away from the face changed"
        assert not np.array_equal(src[i][rows, cols], dst[i][rows, cols]), f"frame {i}: face unchanged"


def test_swapped_face_moves_towards_person_b(h264_clip: Path, model_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from renderer.faces.identity import embed, identity_distance, reference_embedding
    from renderer.faces.track import find_faces

    if model_dir != SHIPPED_MODEL:
        pytest.skip("identity check needs the shipped demo model (models/demo, absent here): the tiny fallback "
                    "model (40 iterations) changes the face but moves it away from person B (measured: dlib "
                    "distance to Jesper's photos 0.57 before, 0.74 after the swap)")
    person_b = reference_embedding(F.read_rgb(F.astronaut()))
    out = tmp_path / "swapped.mp4"
    code, _, _ = run_cli(["swap", h264_clip, "--model", model_dir, "--out", out, "--frames", "20-25",
                          "--no-progress"], capsys)
    assert code == 0
    src, dst = decode_all(h264_clip), decode_all(out)
    for i in range(20, 26):
        face = find_faces(src[i])[0]
        before = identity_distance(embed(src[i], face), person_b)
        after = identity_distance(embed(dst[i], face), person_b)
        assert after < before, f"frame {i}: distance to person B {before:.3f} -> {after:.3f}"


def test_video_without_faces_passes_through(model_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_numbered_clip(tmp_path / "noface.mkv", 12, 160, 96, codec="ffv1")
    out = tmp_path / "out.mkv"
    code, stdout, _ = run_cli(["swap", clip, "--model", model_dir, "--out", out, "--json", "--no-progress"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["swapped"] == 0 and summary["passed_through"]["no face"] == 12 and summary["frames"] == 12
    # Start-up timeline, seconds since the process (here: pytest's) started, in the order things happen.
    points = summary["timeline"]
    assert points["render_start"] <= points["first_decoded"] <= points["first_passed"] <= points["first_encoded"]
    assert "model_ready" in points and summary["seconds"]["startup"] == points["first_decoded"]
    # The network ran in a process of its own (torch imported there): both peaks are reported.
    import torch

    from renderer.model_process import resolve_precision, resolve_runtime

    assert summary["model_precision"] == resolve_precision("auto", torch.device("cpu"))  # the default: auto
    assert summary["model_runtime"] == resolve_runtime("auto", None, "auto", False)  # OpenVINO on a CPU
    peaks = summary["peak_rss_mib"]
    assert set(peaks) == {"render", "model_process"} and peaks["model_process"] > 100 and peaks["render"] > 50, peaks
    assert [np.array_equal(a, b) for a, b in zip(decode_all(clip), decode_all(out))] == [True] * 12


def _only(folder: Path, names: list[str]) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_bad_input(h264_clip: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sha256_file(h264_clip)
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(["swap", h264_clip, "--model", model_dir, "--out", out, "--frames", "40-48"], capsys)
    assert code == 2 and "outside the video" in err and "0-47" in err
    code, _, err = run_cli(["swap", h264_clip, "--model", model_dir, "--out", out, "--frames", "9"], capsys)
    assert code == 2 and "START-END" in err
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    code, _, err = run_cli(["swap", h264_clip, "--model", empty, "--out", out], capsys)
    assert code == 2 and "not-a-model" in err
    no_rights = tmp_path / "no-rights"
    shutil.copytree(model_dir, no_rights)
    import yaml

    card = yaml.safe_load((no_rights / "model.yaml").read_text())
    card.pop("rights", None)
    (no_rights / "model.yaml").write_text(yaml.safe_dump(card))
    code, _, err = run_cli(["swap", h264_clip, "--model", no_rights, "--out", out], capsys)
    assert code == 2 and "rights" in err
    code, _, err = run_cli(["swap", tmp_path / "missing.mp4", "--model", model_dir, "--out", out], capsys)
    assert code == 2 and "missing.mp4" in err
    code, _, err = run_cli(["swap", h264_clip, "--model", model_dir, "--out", h264_clip], capsys)
    assert code == 2 and "source" in err
    _only(tmp_path, ["not-a-model", "no-rights"])
    assert sha256_file(h264_clip) == before


@pytest.mark.parametrize("faces", [True, False], ids=["faces", "no-faces"])
def test_model_whose_weights_fail_to_load_fails_the_swap(h264_clip: Path, model_dir: Path, tmp_path: Path,
                                                         faces: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """The network loads in its own process while decoding starts (the card is read at once):
    corrupt weights still end the swap with the loader's one-line error, exit 2, nothing written,
    also when no frame ever reaches the model (no faces)."""
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = next(broken.rglob("model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    clip = h264_clip if faces else make_numbered_clip(tmp_path / "noface.mkv", 12, 160, 96, codec="ffv1")
    out = tmp_path / f"out{clip.suffix}"
    code, stdout, err = run_cli(["swap", clip, "--model", broken, "--out", out, "--no-progress"], capsys)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and "does not match the SHA-256" in err and "broken" in err, err
    _only(tmp_path, ["broken"] if faces else ["broken", "noface.mkv"])
