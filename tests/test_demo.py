"""The built-in demo: `make demo` in a fresh copy of the checkout, and its parts on real sample media.

The end-to-end test copies the checkout's files (tracked and untracked-but-not-ignored,
without models/) into a temporary folder, links the real .venv into it (no reinstall), and
runs `make demo` there with the fetch cache pointed at the real one (DOPPEL_CACHE) and a
short fallback training (DEMO_ARGS="--train-iterations N"), since models/demo is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import opentimelineio as otio
import pytest

from renderer import demo, media, sample
from renderer.contact_sheet import sheet_size
from renderer.cli import main
from renderer.timeline import find_marked_clips, read_edit

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
QUICK_ITERATIONS = 8


def _sources() -> demo.DemoSources:
    try:
        return demo.fetch_sources(CACHE)
    except sample.SampleUnavailable as err:
        pytest.skip(f"sample media unavailable: {err}")


def _clean_env(tmp: Path) -> dict[str, str]:
    """The environment of a machine with no signing identity configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env["HOME"] = str(tmp / "home")
    env["XDG_CONFIG_HOME"] = str(tmp / "home" / ".config")
    return env


def _checkout_copy(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if name.startswith(("models/", "bench/")) or not src.is_file():
            continue
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    (dst / ".venv").symlink_to(ROOT / ".venv")
    return dst


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_in_a_fresh_copy_trains_the_fallback_and_delivers_every_output(tmp_path: Path) -> None:
    _sources()  # fetch once here, so an unreachable registry skips instead of failing
    copy = _checkout_copy(tmp_path / "checkout")
    assert not (copy / "models" / "demo").exists()
    env = _clean_env(tmp_path)
    env.update(DOPPEL_CACHE=str(CACHE), PYTHONPATH=str(copy))  # this copy's code, the shared fetch cache
    # -o: the linked .venv is installed already; never reinstall it from the copy.
    proc = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "demo",
         f"DEMO_ARGS=--train-iterations {QUICK_ITERATIONS} --frames-per-clip 2 --json --docs-sheet docs-copy.png"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TRAINING A QUICK ONE INSTEAD" in proc.stderr
    summary = json.loads(proc.stdout)
    out = copy / "demo-out"
    assert summary["status"] == "ok" and Path(summary["out_dir"]) == Path("demo-out")
    assert summary["model"]["trained_here"] is True
    assert (out / "quick-model" / "model.safetensors").is_file()

    # the sample edit: 4 clips, two marked (one whole clip, one sub-range), media timecode 01:00:00:00
    edit = out / "sample" / "cut.otio"
    tl = read_edit(edit)
    assert [c.name for c in tl.find_clips()] == ["presenter_take1", "broll", "presenter_take2", "astronaut"]
    marked = {m.clip_name: m for m in find_marked_clips(tl, edit)}
    assert sorted(marked) == ["presenter_take1", "presenter_take2"]
    assert (marked["presenter_take1"].source_first_frame, marked["presenter_take1"].source_last_frame) == (0, 39)
    assert (marked["presenter_take2"].source_first_frame, marked["presenter_take2"].source_last_frame) == (56, 75)
    assert media.probe(out / "sample" / "media" / "talking_head.mov").timecode == "01:00:00:00"

    # rendered clips: one per marker, exact lengths, signed and verified under the demo-local CA
    outputs = [Path(p) if Path(p).is_absolute() else copy / p for p in summary["outputs"]]
    assert len(outputs) == 2
    assert sorted(media.probe(p).frames for p in outputs) == [20, 40]
    assert all(p.parent == (out / "media").resolve() or p.parent == out / "media" for p in outputs)
    assert (out / "keys" / "ca.pem").is_file()
    assert [v["status"] for v in summary["verified"]] == ["valid", "valid"]
    assert [v["trusted"] for v in summary["verified"]] == [True, True]
    assert all(v["signer"] == "Doppel demo signer" for v in summary["verified"])

    # return edits (.otio and FCP7 XML) with the FACESWAP track, and render.json
    for name in ("cut.doppel.otio", "cut.doppel.xml"):
        back = otio.adapters.read_from_file(str(out / name))
        top = [t for t in back.video_tracks() if "FACESWAP" in (t.name or "")] or [back.video_tracks()[-1]]
        assert len(list(top[0].find_clips())) == 2, name
    record = json.loads((out / "render.json").read_text())
    assert record["status"] == "ok" and [c["status"] for c in record["clips"]] == ["ok", "ok"]

    # the contact sheet: a PNG of the promised size (2 clips x 2 frames = 4 rows), not blank
    sheet = out / "contact_sheet.png"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(sheet))
    assert img is not None and (img.shape[1], img.shape[0]) == sheet_size(4)
    assert summary["contact_sheet"]["rows"] == 4
    assert img.std() > 20
    docs_copy = copy / "docs-copy.png"
    assert docs_copy.is_file() and docs_copy.stat().st_size <= 500_000
    assert not list(out.rglob(".*partial-*"))


def test_sample_edit_marks_two_clips_over_real_media(tmp_path: Path) -> None:
    sources = _sources()
    clips = demo.make_sample_media(sources, tmp_path / "media")
    assert {k: media.probe(c.path).frames for k, c in clips.items()} == {"head": 96, "broll": 30, "person_b": 30}
    info = media.probe(clips["head"].path)
    assert (info.width, info.height, info.timecode) == (480, 360, "01:00:00:00")
    edit = demo.build_sample_edit(clips, tmp_path / "cut.otio")
    marked = find_marked_clips(read_edit(edit), edit)
    assert [(m.clip_name, m.source_first_frame, m.source_last_frame) for m in marked] == [
        ("presenter_take1", 0, 39), ("presenter_take2", 56, 75)]
    assert marked[1].overrides == {"colour": "mean"}
    # a second call keeps the finished clips as they are (a re-run finds its renders up to date)
    before = {k: c.path.stat().st_mtime_ns for k, c in clips.items()}
    again = demo.make_sample_media(sources, tmp_path / "media")
    assert {k: c.path.stat().st_mtime_ns for k, c in again.items()} == before


def test_off_debian_fallback_uses_pypi_photos_and_centres_the_face(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sources()
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copytree(CACHE / "skimage", cache / "skimage")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no apt-get, no dpkg-deb: as on a non-Debian machine
    assert not sample.debian_tools()
    with pytest.raises(sample.SampleUnavailable, match="Debian package"):
        sample.kphotoalbum_demo(cache)
    sources = demo.fetch_sources(cache)
    assert sources.talking_head is None and sources.person_a_photo is not None
    assert sources.person_a_photo.name == "astronaut.png" and sources.broll.name == "rocket.jpg"
    assert sources.direction == "b2a"  # the stand-in shows person B: swap her face to A's, no third person
    assert "NOT ON DEBIAN" in sources.notes[0]
    frames = demo.pan_frames(sources.person_a_photo, 5, centre_face=True)
    assert frames.shape == (5, 360, 480, 3) and frames.dtype == np.uint8
    from renderer.faces.detect import detect

    box = detect(frames[2])[0].box
    cx, cy, height = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[3] - box[1]
    assert abs(cx - 240) < 40 and abs(cy - 180) < 40 and 60 < height < 180
    assert np.array_equal(frames, demo.pan_frames(sources.person_a_photo, 5, centre_face=True))  # deterministic


def test_signing_env_makes_demo_keys_only_when_none_are_configured(tmp_path: Path) -> None:
    from renderer import provenance as P

    env = _clean_env(tmp_path)
    render_env, trust, note = demo.signing_env(tmp_path / "out", env)
    assert trust == tmp_path / "out" / "keys" / "ca.pem" and trust.is_file()
    assert render_env[P.ENV_CERT].endswith("signer-chain.pem") and "demo-local" in note
    assert P.ENV_CERT not in env  # the caller's mapping is not changed
    keys = P.init_keys(tmp_path / "studio")
    env2 = {**env, P.ENV_CERT: str(keys.cert_chain), P.ENV_KEY: str(keys.key)}
    render_env2, trust2, note2 = demo.signing_env(tmp_path / "out2", env2)
    assert trust2 == keys.ca_cert and "configured identity" in note2
    assert not (tmp_path / "out2" / "keys").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--train-iterations", "0"], "--train-iterations must be at least 1, got 0"),
    (["--train-minutes", "-1"], "--train-minutes must be positive"),
    (["--frames-per-clip", "40"], "--frames-per-clip must be 1..12, got 40"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                                needle: str) -> None:
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo-out"
    target.write_text("not a folder")
    assert main(["demo", "--out", str(target)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert target.read_text() == "not a folder"


def test_help_explains_the_demo() -> None:
    proc = subprocess.run([sys.executable, "-m", "renderer.cli", "demo", "--help"], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0
    for word in ("contact sheet", "--train-iterations", "FACESWAP", "demo-out", "--json"):
        assert word in proc.stdout
