"""Render farms: OpenJD job bundles over a real face clip and a trained model.

The edit marks two clips of a real talking-head clip (h264 source, one 40-frame GOP, so every
chunk boundary splits a source GOP): a 24-frame clip with 2-frame handles (28 frames rendered,
with stateful tracking, landmark smoothing, temporal blending and detect-every-2) and a clip
of one frame. The lossless preset (ffv1, intra) lets us compare decoded pixels byte for byte
with `doppel render` of the same edit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import yaml

from renderer import farm
from renderer.cli import main
from renderer.errors import InputError
from renderer.media import decode_matte, probe, read_frames, timecode_to_frame
from tests.media_factory import read_frame_number

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
FPS = Fraction(25)
TC = "01:00:00:00"
CHUNK = 10

PRESET = """\
description: farm test preset (lossless, stateful smoothing)
detector: hog
blend: alpha
colour: mean
smoothing: {landmarks: true, temporal: 0.5}
detect_every: 2
handles: 2
output:
  codec: ffv1
  container: mkv
  audio: none
  name: "{clip}_{start}-{end}.doppel"
  matte: true
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("farm")


@pytest.fixture(scope="module")
def model() -> Path:
    from tests.model_fixtures import trained_model

    return trained_model()


def worker_env(keys_dir: Path) -> dict[str, str]:
    """The environment of the farm's workers: this process's, signing keys from `keys_dir` only
    (no DOPPEL_SIGN_CERT / _KEY override), and this checkout's `doppel` first on PATH."""
    e = dict(os.environ)
    e["DOPPEL_KEYS_DIR"] = str(keys_dir)
    e.pop("DOPPEL_SIGN_CERT", None)
    e.pop("DOPPEL_SIGN_KEY", None)
    e["PATH"] = f"{VENV_BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def use_keys(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process commands sign as the workers do: `env`'s keys folder, no certificate override."""
    for key in ("DOPPEL_SIGN_CERT", "DOPPEL_SIGN_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOPPEL_KEYS_DIR", env["DOPPEL_KEYS_DIR"])


@pytest.fixture(scope="module")
def env(work: Path) -> dict[str, str]:
    """No signing keys (hermetic), and this checkout importable by the workers' `doppel`."""
    return worker_env(work / "no-keys")


@pytest.fixture(autouse=True)
def _keys(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(env, monkeypatch)
    monkeypatch.setenv("PATH", env["PATH"])


def _clip(name: str, src: Path, first: int, frames: int, marker: str) -> otio.schema.Clip:
    rate, origin = float(FPS), timecode_to_frame(TC, FPS)
    clip = otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(
        target_url=src.resolve().as_uri(), available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(origin, rate), otio.opentime.RationalTime(40, rate))),
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(origin + first, rate),
                                             otio.opentime.RationalTime(frames, rate)))
    clip.markers.append(otio.schema.Marker(name=marker, marked_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(origin + first, rate), otio.opentime.RationalTime(0, rate))))
    return clip


@pytest.fixture(scope="module")
def edit(work: Path) -> Path:
    from tests.model_fixtures import face_clip

    media = work / "media"
    media.mkdir()
    src = face_clip(media / "face.mov", 40, FPS, TC, "h264")
    tl = otio.schema.Timeline(name="farm")
    tl.tracks.append(otio.schema.Track(children=[
        _clip("face_a", src, 4, 24, "FACESWAP"),
        _clip("plain", src, 28, 4, "note"),
        _clip("face_one", src, 33, 1, "FACESWAP handles=0"),
    ]))
    path = work / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    (work / "lossless_small.yaml").write_text(PRESET)
    return path


@pytest.fixture(scope="module")
def preset(work: Path, edit: Path) -> Path:
    return work / "lossless_small.yaml"


@pytest.fixture(scope="module")
def reference(work: Path, edit: Path, preset: Path, model: Path, env: dict[str, str]) -> Path:
    """`doppel render` of the same edit, in one piece per clip."""
    out = work / "ref"
    code = subprocess.run([str(VENV_BIN / "doppel"), "render", str(edit), "--preset", str(preset), "--out", str(out),
                           "--model", str(model), "--quiet"], env=env, capture_output=True, text=True)
    assert code.returncode == 0, code.stderr
    return out


@pytest.fixture(scope="module")
def bundle(work: Path, edit: Path, preset: Path, model: Path) -> Path:
    path = work / "bundle"
    assert main(["farm", "export", str(edit), "--preset", str(preset), "--out", str(path), "--model", str(model),
                 "--chunk-frames", str(CHUNK), "--json"]) == 0
    return path


def frames_of(path: Path) -> list[np.ndarray]:
    info = probe(path)
    return [rgb for _, rgb in read_frames(path, 0, info.frames - 1, info)]


def assert_same_results(out: Path, ref: Path) -> None:
    """Every clip's decoded pixels identical; timecodes, frame counts and return edits equal."""
    got = json.loads((out / "render.json").read_text())
    want = json.loads((ref / "render.json").read_text())
    assert got["status"] == want["status"] == "ok"
    assert len(got["clips"]) == len(want["clips"]) == 2
    for g, w in zip(got["clips"], want["clips"]):
        assert g["render_range"] == w["render_range"]
        assert g["inputs_sha256"] == w["inputs_sha256"] or g["output"]["path"] != w["output"]["path"]
        gp, wp = Path(g["output"]["path"]), Path(w["output"]["path"])
        assert gp.name == wp.name and gp.parent == out / "media"
        gi, wi = probe(gp), probe(wp)
        assert (gi.frames, gi.timecode, gi.pts, gi.codec, gi.pix_fmt) == (wi.frames, wi.timecode, wi.pts, wi.codec,
                                                                            wi.pix_fmt)
        a, b = frames_of(gp), frames_of(wp)
        for k, (x, y) in enumerate(zip(a, b)):
            assert np.array_equal(x, y), f"{gp.name} frame {k} differs from doppel render"
        assert g["frames"]["swapped"] == w["frames"]["swapped"]
        assert "SYNTHETIC MEDIA" in probe_comment(gp)
        # The matte pass: joined from the chunks' mattes, the same masks as one piece, every frame.
        gm, wm = Path(g["output"]["matte"]["path"]), Path(w["output"]["matte"]["path"])
        assert gm.name == wm.name == gp.stem + ".matte.mov" and "SYNTHETIC MEDIA MATTE" in probe_comment(gm)
        assert (probe(gm).frames, probe(gm).timecode) == (gi.frames, gi.timecode)
        ga, wa = decode_matte(gm), decode_matte(wm)
        assert len(ga) == gi.frames and all(np.array_equal(x, y) for x, y in zip(ga, wa))
    for name in ("cut.doppel.otio",):
        ga = otio.adapters.read_from_file(str(out / name)).to_json_string()
        wa = otio.adapters.read_from_file(str(ref / name)).to_json_string()
        assert ga.replace(out.resolve().as_uri(), "OUT") == wa.replace(ref.resolve().as_uri(), "OUT")


def probe_comment(path: Path) -> str:
    import av

    with av.open(str(path)) as c:
        return c.metadata.get("comment", "") or c.metadata.get("COMMENT", "")


# --------------------------------------------------------------------------- pure parts


def test_chunk_values_round_trip_and_bad_values():
    assert farm.parse_chunk("10000012-10000035") == (1, 12, 35)
    assert farm.parse_chunk("7") == (0, 7, 7)
    for bad in ("x-3", "5-2", "9999999-10000001", "-3", ""):
        with pytest.raises(InputError, match="chunk"):
            farm.parse_chunk(bad)
    assert farm.chunk_spans(2, 29, 10) == [(2, 11), (12, 20), (21, 29)]  # OpenJD evens sizes out
    assert farm.chunk_spans(0, 0, 10) == [(0, 0)]
    assert farm.chunk_spans(3, 20, 1000) == [(3, 20)]


def test_export_writes_a_portable_bundle_openjd_accepts(work, bundle, edit, preset, model):
    text = (bundle / farm.TEMPLATE).read_text()
    template = yaml.safe_load(text)
    assert template["specificationVersion"] == "jobtemplate-2023-09" and template["extensions"] == ["TASK_CHUNKING"]
    body = text.split("\n", 1)[1]  # the header comment names the bundle folder; the template does not
    assert str(work) not in body and str(ROOT) not in body and "/tmp" not in body
    render, publish = template["steps"]
    frames = render["parameterSpace"]["taskParameterDefinitions"][0]
    assert frames["type"] == "CHUNK[INT]" and frames["chunks"]["rangeConstraint"] == "CONTIGUOUS"
    assert frames["range"] == "2-29,10000033-10000033"
    assert publish["dependencies"] == [{"dependsOn": "Render"}]
    kinds = {p["name"]: (p["type"], p.get("dataFlow")) for p in template["parameterDefinitions"]}
    assert kinds["EditFile"] == kinds["PresetFile"] == kinds["ModelDir"] == kinds["MediaRoot1"] == ("PATH", "IN")
    assert kinds["OutputDir"] == ("PATH", "OUT") and kinds["DoppelCommand"] == ("STRING", None)
    values = farm.load_parameter_values(bundle)
    assert values["EditFile"] == str(edit.resolve()) and values["ModelDir"] == str(model.resolve())
    assets = yaml.safe_load((bundle / farm.ASSET_REFERENCES).read_text())["assetReferences"]
    assert str(edit.resolve()) in assets["inputs"]["filenames"]
    assert str((work / "media" / "face.mov").resolve()) in assets["inputs"]["filenames"]
    assert str(preset.resolve()) in assets["inputs"]["filenames"]
    assert assets["inputs"]["directories"] == [str(model.resolve())]
    check = subprocess.run([str(VENV_BIN / "openjd"), "check", str(bundle / farm.TEMPLATE)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # A chunk bigger than every clip: one Render task per clip.
    big = farm.export_bundle(edit, preset, work / "bundle-big", model=model, chunk_frames=1000)
    assert (big.clips, big.tasks, big.frames) == (2, 2, 29)
    assert subprocess.run([str(VENV_BIN / "openjd"), "check", str(big.path / farm.TEMPLATE)]).returncode == 0


def test_export_bad_input(work, edit, preset, model, capsys):
    assert main(["farm", "export", str(edit), "--preset", str(preset), "--out", str(work / "b0"),
                 "--model", str(model), "--chunk-frames", "0"]) == 2
    assert "--chunk-frames 0 is not allowed" in capsys.readouterr().err
    assert main(["farm", "export", str(edit), "--preset", str(preset), "--out", str(work / "b1"),
                 "--model", str(work / "nope")]) == 2
    assert "nope" in capsys.readouterr().err and not (work / "b1" / farm.TEMPLATE).exists()
    assert main(["farm", "run", str(work / "not-a-bundle")]) == 2
    assert "template.yaml is missing" in capsys.readouterr().err


def test_export_warns_when_each_worker_would_pick_the_precision(work, edit, preset, model, capsys):
    """precision auto lets every worker choose bf16 or fp32 for itself: export says so (stderr and --json);
    a preset that names the arithmetic exports without the warning."""
    assert main(["farm", "export", str(edit), "--preset", str(preset), "--out", str(work / "b-auto"),
                 "--model", str(model), "--json"]) == 0
    out = capsys.readouterr()
    (warning,) = json.loads(out.out)["warnings"]
    assert "precision is auto for 2 clip(s)" in warning and "precision: fp32" in warning
    assert f"doppel farm: warning: {warning}" in out.err
    pinned = work / "lossless_fp32.yaml"
    pinned.write_text(PRESET + "precision: fp32\n")
    assert main(["farm", "export", str(edit), "--preset", str(pinned), "--out", str(work / "b-fp32"),
                 "--model", str(model), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["warnings"] == [] and "warning" not in out.err
    # bf16 is OpenVINO's on a worker that computes it and torch's elsewhere, unless the runtime is named
    for name, extra, warned in (("bf16", "precision: bf16\n", True), ("bf16_torch", "precision: bf16\nruntime: torch\n", False)):
        named = work / f"{name}.yaml"
        named.write_text(PRESET + extra)
        assert main(["farm", "export", str(edit), "--preset", str(named), "--out", str(work / f"b-{name}"),
                     "--model", str(model), "--json"]) == 0
        warnings = json.loads(capsys.readouterr().out)["warnings"]
        assert (warnings != []) is warned, (name, warnings)
        if warned:
            assert "bf16 with runtime auto for 2 clip(s)" in warnings[0] and "runtime: torch" in warnings[0]


# --------------------------------------------------------------------------- running bundles


def test_farm_run_with_two_workers_equals_doppel_render(work, bundle, reference):
    out = work / "farm-out"
    assert main(["farm", "run", str(bundle), "--workers", "2", "--out", str(out), "--quiet"]) == 0
    assert_same_results(out, reference)
    entry = json.loads((out / "render.json").read_text())["clips"][0]
    chunks = entry["chunks"]
    assert [(c["first_frame"], c["last_frame"]) for c in chunks] == [(2, 11), (12, 20), (21, 29)]
    assert [c["preroll_frames"] for c in chunks] == [0, 10, 19]  # mid-segment chunks decode a pre-roll
    logs = "".join(p.read_text() for p in (out / "logs").glob("Render-*.log"))
    assert "openjd_progress: 100.0" in logs and "openjd_status: clip 0 'face_a' frames 12-20" in logs
    # Run again: every chunk and clip is up to date, the outputs stay as they were.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "media").iterdir()}
    assert main(["farm", "run", str(bundle), "--out", str(out), "--quiet"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "media").iterdir()} == before


def test_openjd_cli_runs_the_bundle(work, bundle, reference, env):
    out = work / "openjd-out"
    values = {**farm.load_parameter_values(bundle), "OutputDir": str(out), "DoppelCommand": str(VENV_BIN / "doppel")}
    args = [a for k, v in values.items() for a in ("-p", f"{k}={v}")]
    for step in ("Render", "Publish"):
        run = subprocess.run([str(VENV_BIN / "openjd"), "run", str(bundle / farm.TEMPLATE), "--step", step,
                              "--no-run-dependencies", *args], capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "openjd_progress" in run.stdout or "Publish" in run.stdout
    assert_same_results(out, reference)


def test_killed_task_retried_gives_the_same_output(work, edit, preset, model, reference, env):
    out = work / "kill-out"
    cmd = [str(VENV_BIN / "doppel"), "farm", "task", "--edit", str(edit), "--preset", str(preset), "--out", str(out),
           "--model", str(model), "--frames", "2-29"]  # the whole first clip as one chunk
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # kill once frames are being encoded
        if line.startswith("openjd_progress:") and float(line.split(":")[1]) > 0:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = out / farm.CHUNKS_DIR
    leftovers = list(folder.rglob("*"))
    assert not [p for p in leftovers if p.is_file() and not p.name.startswith(".")], leftovers  # nothing final
    for frames in ("2-29", "10000033-10000033"):
        done = subprocess.run([*cmd[:-1], frames], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert not list(out.rglob(".*partial*"))
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "chunk up to date, skipped" in again.stdout
    pub = subprocess.run([str(VENV_BIN / "doppel"), "farm", "publish", *cmd[3:-2]], env=env, capture_output=True,
                         text=True)
    assert pub.returncode == 0, pub.stderr
    assert_same_results(out, reference)
    assert not list(out.rglob(".*partial*"))
    assert [read_frame_number(f) for f in frames_of(out / "media" / "face_one_01_00_01_08-01_00_01_08.doppel.mkv")
            ] == [33]


def test_publish_names_missing_chunks(work, edit, preset, model):
    plan = farm.plan(farm.FarmInputs(edit, preset, work / "empty-out", model))
    report = farm.publish(plan)
    assert report.exit_code == 1
    assert "chunks do not cover frames 2-29" in report.failed[0].error
    with pytest.raises(InputError, match="outside the frames it renders"):
        farm.run_task(plan, "0-40")
    with pytest.raises(InputError, match="no marked clip 5"):
        farm.run_task(plan, "50000000-50000001")
