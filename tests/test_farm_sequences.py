"""Render farms over image sequences: an OTIO edit whose marked clip is a real talking head as a float
EXR sequence (ffmpeg CLI, numbered from 1001), chunked by the Open Job Description reference runner
(`openjd run`, Render then Publish) with its matte pass. Chunks write disjoint frame ranges of one
sequence; Publish assembles the frames (no pixel decoded or re-encoded: each EXR frame's chunks
are copied byte for byte under the delivery label) and signs the sequence once.

Checked against `doppel render` of the same edit: the same frame numbers (ffprobe on the pattern),
the same float samples in every frame of the render and of its matte (read with `OpenEXR`), and
the same return edit; the published sequences verify with one sidecar each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from renderer import farm, media
from renderer.cli import main
from tests.media.test_sequences import ffmpeg, ffprobe_count, ffprobe_has_frame
from tests.test_farm import use_keys, worker_env

VENV_BIN = Path(sys.executable).parent
RATE = 25
START = 1001
FRAMES = 12
CHUNK = 5

PRESET = """\
description: farm sequence test preset
detector: hog
blend: alpha
smoothing: {landmarks: true, temporal: 0.5}
detect_every: 2
handles: 1
output:
  name: "{clip}_{start}-{end}.doppel"
  matte: true
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("farm_sequences")


@pytest.fixture(scope="module")
def env(work: Path) -> dict[str, str]:
    """A real signing chain (the render node's keys folder), this checkout's `doppel` on PATH."""
    from renderer import provenance as prov

    made = prov.init_keys(work / "keys", common_name="Farm Sequence Node")
    e = worker_env(work / "keys")
    e["DOPPEL_TEST_CA"] = str(made.ca_cert)
    return e


@pytest.fixture(autouse=True)
def _keys(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(env, monkeypatch)


@pytest.fixture(scope="module")
def edit(work: Path) -> tuple[Path, Path]:
    """(edit, preset): one marked clip over frames 1003-1011 of a 12-frame real-face EXR sequence."""
    from tests.model_fixtures import face_clip

    clip = face_clip(work / "face.mkv", frames=FRAMES, codec="ffv1")
    plates = work / "plates" / "F001"
    plates.mkdir(parents=True)
    ffmpeg("-i", str(clip), "-pix_fmt", "gbrpf32le", "-c:v", "exr", "-start_number", str(START),
           str(plates / "F001.%04d.exr"))
    ref = otio.schema.ImageSequenceReference(
        target_url_base=plates.resolve().as_uri() + "/", name_prefix="F001.", name_suffix=".exr", start_frame=START,
        frame_step=1, rate=RATE, frame_zero_padding=4)
    shot = otio.schema.Clip(name="F001", media_reference=ref, source_range=TR(RT(2, RATE), RT(9, RATE)))
    shot.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=shot.source_range))
    timeline = otio.schema.Timeline(name="farmseq")
    timeline.tracks.append(otio.schema.Track(children=[shot]))
    path = work / "farmseq.otio"
    otio.adapters.write_to_file(timeline, str(path))
    preset = work / "seq.yaml"
    preset.write_text(PRESET)
    return path, preset


@pytest.fixture(scope="module")
def model() -> Path:
    from tests.model_fixtures import trained_model

    return trained_model()


def exr_pixels(pattern: Path) -> dict[int, np.ndarray]:
    import OpenEXR

    out = {}
    for number, path in media.parse_sequence(pattern).scan().items():
        with OpenEXR.File(str(path)) as f:
            out[number] = np.concatenate([np.asarray(c.pixels).reshape(*np.asarray(c.pixels).shape[:2], -1)
                                          for _, c in sorted(f.channels().items())], axis=-1)
    return out


def exr_label(path: Path) -> str:
    """An EXR frame's comment and description attributes, their continuations joined."""
    import OpenEXR

    header = OpenEXR.File(str(path), header_only=True).header()
    return " | ".join("".join(str(header[k]) for k in sorted(header, key=lambda k: (len(k), k))
                              if k.split(".")[0] == base) for base in ("comment", "description"))


def test_openjd_chunks_an_exr_sequence_into_the_same_signed_sequence_as_doppel_render(work, edit, model, env):
    edit_path, preset = edit
    ref_out = work / "ref"
    ref = subprocess.run([str(VENV_BIN / "doppel"), "render", str(edit_path), "--preset", str(preset), "--out",
                          str(ref_out), "--model", str(model), "--quiet"], env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    bundle = work / "bundle"
    assert main(["farm", "export", str(edit_path), "--preset", str(preset), "--out", str(bundle), "--model", str(model),
                 "--chunk-frames", str(CHUNK)]) == 0
    assert subprocess.run([str(VENV_BIN / "openjd"), "check", str(bundle / farm.TEMPLATE)]).returncode == 0
    import yaml

    assets = yaml.safe_load((bundle / farm.ASSET_REFERENCES).read_text())["assetReferences"]["inputs"]
    assert str((work / "plates" / "F001").resolve()) in assets["directories"]  # a sequence travels as its folder
    out = work / "openjd-out"
    values = {**farm.load_parameter_values(bundle), "OutputDir": str(out), "DoppelCommand": str(VENV_BIN / "doppel")}
    args = [a for k, v in values.items() for a in ("-p", f"{k}={v}")]
    for step in ("Render", "Publish"):
        run = subprocess.run([str(VENV_BIN / "openjd"), "run", str(bundle / farm.TEMPLATE), "--step", step,
                              "--no-run-dependencies", *args], capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]

    (got,), (want,) = (json.loads((o / "render.json").read_text())["clips"] for o in (out, ref_out))
    assert got["status"] == "ok" and got["render_range"] == want["render_range"]
    assert [(c["first_frame"], c["last_frame"]) for c in got["chunks"]] == [(1, 4), (5, 8), (9, 11)]  # 11 frames, 3 tasks
    numbers = tuple(range(START + 1, START + 12))
    for kind in ("output", "matte"):
        g = Path(got["output"]["path"] if kind == "output" else got["output"]["matte"]["path"])
        w = Path(want["output"]["path"] if kind == "output" else want["output"]["matte"]["path"])
        assert g.relative_to(out) == w.relative_to(ref_out)
        assert int(ffprobe_count(g, numbers[0])["nb_read_frames"]) == len(numbers)
        assert not ffprobe_has_frame(g, numbers[0] - 1) and not ffprobe_has_frame(g, numbers[-1] + 1)
        gp, wp = exr_pixels(g), exr_pixels(w)
        assert tuple(gp) == tuple(wp) == numbers
        for n in numbers:
            assert np.array_equal(gp[n], wp[n]), f"{g.name} frame {n} differs from doppel render"
        folder = sorted(p.name for p in g.parent.iterdir())
        assert folder == sorted([media.parse_sequence(g).name(n) for n in numbers] + [media.parse_sequence(g).sidecar.name])
        verify = subprocess.run([str(VENV_BIN / "doppel"), "verify", str(g.parent), "--trust",
                                 env["DOPPEL_TEST_CA"]], env=env, capture_output=True, text=True)
        assert verify.returncode == 0 and "signer trusted" in verify.stdout, verify.stdout + verify.stderr
        got_label, want_label = (exr_label(media.parse_sequence(x).file(numbers[3])) for x in (g, w))
        assert got_label == want_label and "farm chunk" not in got_label  # relabelled for delivery
        assert "signed by the render node" in got_label
    masks = exr_pixels(Path(got["output"]["matte"]["path"]))
    assert sum(bool(m.any()) for m in masks.values()) == got["frames"]["swapped"] >= 8
    ga = otio.adapters.read_from_file(str(out / "farmseq.doppel.otio")).to_json_string()
    wa = otio.adapters.read_from_file(str(ref_out / "farmseq.doppel.otio")).to_json_string()
    assert ga.replace(out.resolve().as_uri(), "OUT") == wa.replace(ref_out.resolve().as_uri(), "OUT")
    # Run again: chunks and clip up to date; Publish leaves the sequence as it was.
    before = {p: p.stat().st_mtime_ns for p in (out / "media").rglob("*")}
    assert main(["farm", "run", str(bundle), "--out", str(out), "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "media").rglob("*")} == before


def test_a_killed_sequence_chunk_leaves_nothing_and_its_retry_writes_it_whole(work, edit, model, env):
    import signal

    edit_path, preset = edit
    out = work / "kill-out"
    cmd = [str(VENV_BIN / "doppel"), "farm", "task", "--edit", str(edit_path), "--preset", str(preset), "--out",
           str(out), "--model", str(model), "--frames", "1-11"]  # the whole clip as one chunk
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # kill once frames are being written
        if line.startswith("openjd_progress:") and float(line.split(":")[1]) > 0:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    chunks = out / farm.CHUNKS_DIR / "F001_2-10.doppel"
    assert chunks.is_dir() and not [p for p in chunks.rglob("*") if not any(part.startswith(".") for part in p.relative_to(chunks).parts)
                and p.is_file()]  # no frame, no record under a final name
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(out.rglob(".*partial*"))
    (chunk,) = [p for p in chunks.rglob("0000001-0000011") if p.is_dir()]
    assert sorted(p.name for p in chunk.iterdir()) == [f"F001_2-10.doppel.{n}.exr" for n in range(1002, 1013)]
    assert sorted(p.name for p in chunk.with_name("0000001-0000011.matte").iterdir()) == [
        f"F001_2-10.doppel.matte.{n}.exr" for n in range(1002, 1013)]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "chunk up to date, skipped" in again.stdout
