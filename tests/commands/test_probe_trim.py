"""`doppel probe` and `doppel trim` through the real CLI entry point, on generated clips."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from renderer import media
from renderer.cli import main
from tests.media_factory import cached_clip, read_frame_number

NTSC = Fraction(24000, 1001)


@pytest.fixture(scope="module")
def clip() -> Path:
    return cached_clip("cli-h264", frames=60, width=160, height=96, fps=NTSC, codec="h264",
                       timecode="01:00:00:00", audio=True, gop=48, bframes=3, suffix=".mp4")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_probe_text(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["probe", str(clip)], capsys)
    assert code == 0
    assert "24000/1001" in out and "60 (" in out and "01:00:00:00 .. 01:00:02:11" in out and "aac 48000 Hz" in out


def test_probe_json(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["probe", str(clip), "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert data["frames"] == 60 and data["fps"] == "24000/1001" and data["width"] == 160 and data["height"] == 96
    assert data["timecode"] == "01:00:00:00" and data["vfr"] is False
    assert data["audio"][0]["codec"] == "aac" and data["audio"][0]["channels"] == 2
    assert "pts" not in data
    code, out, _ = run_cli(["probe", str(clip), "--json", "--pts"], capsys)
    assert len(json.loads(out)["pts"]) == 60


def test_trim_json(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "cut.mov"
    code, out, _ = run_cli(["trim", str(clip), "--frames", "12-35", "--out", str(out_path), "--codec",
                            "prores_hq", "--json", "--quiet"], capsys)
    data = json.loads(out)
    assert code == 0 and data["frames"] == 24 and data["timecode"] == "01:00:00:12" and data["fps"] == "24000/1001"
    assert data["audio"][0]["codec"] == "pcm_s24le"
    got = [read_frame_number(rgb) for _, rgb in media.read_frames(out_path, 0, 23)]
    assert got == list(range(12, 36))


def _no_output(folder: Path) -> None:
    assert list(folder.iterdir()) == [], list(folder.iterdir())


@pytest.mark.parametrize("frames,codec,suffix,message", [
    ("10-200", "h264", ".mp4", r"frame range 10-200 is outside .* \(allowed: 0-59"),
    ("20-10", "h264", ".mp4", r"END \(10\) is before START \(20\)"),
    ("ten-20", "h264", ".mp4", r"--frames 'ten-20' is not START-END"),
    ("0-10", "vp9", ".mp4", r"unknown codec 'vp9' \(allowed: h264, h265, prores_hq, prores_4444, prores_xq, dnxhr_hq, dnxhr_hqx, dnxhr_444, "
     r"ffv1\)"),
    ("0-10", "prores_hq", ".mp4", r"suffix '.mp4', which prores_hq cannot be written to \(allowed: .mov\)"),
])
def test_trim_bad_arguments(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], frames: str,
                            codec: str, suffix: str, message: str) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run_cli(["trim", str(clip), "--frames", frames, "--out", str(out_dir / f"x{suffix}"),
                            "--codec", codec, "--quiet"], capsys)
    assert code == 2
    assert err.startswith("doppel trim: error: ") and err.count("\n") == 1
    import re

    assert re.search(message, err), err
    _no_output(out_dir)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["probe", str(tmp_path / "nope.mov")], capsys)
    assert code == 2 and "media not found: " in err and "nope.mov" in err
    code, _, err = run_cli(["trim", str(tmp_path / "nope.mov"), "--frames", "0-1", "--out",
                            str(tmp_path / "o.mp4"), "--quiet"], capsys)
    assert code == 2 and "media not found" in err
    assert [p.name for p in tmp_path.iterdir()] == []


def test_not_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.mov"
    bogus.write_text("this is not a movie\n" * 50)
    code, _, err = run_cli(["probe", str(bogus)], capsys)
    assert code == 2 and "not a readable media file" in err and "notes.mov" in err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run_cli(["trim", str(bogus), "--frames", "0-1", "--out", str(out_dir / "o.mp4"), "--quiet"],
                           capsys)
    assert code == 2 and "not a readable media file" in err
    _no_output(out_dir)


def test_audio_only_is_not_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import wave

    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 8000)
    code, _, err = run_cli(["probe", str(path)], capsys)
    assert code == 2 and "no video stream" in err and "found: audio" in err


def test_truncated_file(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = media.trim(clip, 0, 59, tmp_path / "whole.mkv", "ffv1")
    cut = tmp_path / "cut.mkv"
    data = whole.path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run_cli(["trim", str(cut), "--frames", "0-59", "--out", str(out_dir / "o.mkv"), "--codec", "ffv1",
                            "--quiet"], capsys)
    assert code == 2 and "ended early" in err and "last good frame is" in err
    _no_output(out_dir)


def test_source_is_never_the_output(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.mp4"
    src.write_bytes(clip.read_bytes())
    before = src.read_bytes()
    code, _, err = run_cli(["trim", str(src), "--frames", "0-5", "--out", str(src), "--quiet"], capsys)
    assert code == 2 and "is the source itself" in err
    assert src.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["src.mp4"]


def test_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["trim", "--help"])
    out = capsys.readouterr().out
    assert "inclusive" in out and "prores_4444" in out and "temporary name" in out
