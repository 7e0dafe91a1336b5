"""The render node: real edits (every format, through the real OTIO adapters) over real numbered media.

Planning, dry runs and every bad-input path run without the swap stage. The render tests use
numbered clips (no face in them: every frame passes through the real swap stage untouched),
which still checks exactly the ranges, handles, timecodes, return edits, resume and provenance.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from renderer.checkpoint import model_files
from renderer.errors import InputError, ModelError
from renderer.media import probe, read_frames, shift_timecode, timecode_to_frame
from renderer.render import RENDER_JSON, plan_render
from renderer.timeline import read_edit, read_timelines
from tests.media_factory import read_frame_number
from tests.timeline_factory import MEDIA_FRAMES, make_media, standard_edit, write_avid_edl, write_formats

NTSC = Fraction(24000, 1001)
ROOT = Path(__file__).resolve().parent.parent

PRESET = """\
description: test preset, small and fast
handles: 3
detect_every: 1
output:
  codec: h264
  container: mp4
  audio: none
  name: "{clip}_{start}-{end}.doppel"
"""


def make_model(folder: Path, rights: str | None = "Test media only: generated clips, no real person") -> Path:
    """A real (tiny, untrained) model directory: safetensors weights and a model card."""
    from renderer.model import ModelConfig, build_model, save_model
    from renderer.modelcard import ModelCard

    if (folder / "model.yaml").is_file():
        return folder
    cfg = ModelConfig.for_arch("lite", encoder_widths=(8, 8, 8, 8), bottleneck=16, latent_channels=8,
                               encoder_upscale=8, decoder_widths=(8, 8, 8))
    save_model(folder, build_model(cfg), ModelCard(config=cfg, name_a="alice", name_b="bob",
                                                    rights=rights or "placeholder rights text"))
    if rights is None:  # a card without rights: written by hand, as save_model refuses one
        card = folder / "model.yaml"
        card.write_text("\n".join(line for line in card.read_text().splitlines() if not line.startswith("rights:")))
    return folder


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("render")


@pytest.fixture(scope="module")
def model(work: Path) -> Path:
    return make_model(work / "model")


@pytest.fixture(scope="module")
def preset(work: Path) -> Path:
    path = work / "small.yaml"
    path.write_text(PRESET)
    return path


@pytest.fixture(scope="module")
def media(work: Path) -> dict:
    return make_media(work / "media", NTSC)


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No signing keys anywhere (hermetic: the machine's own keys folder is not used)."""
    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "no-keys"))
    monkeypatch.delenv("DOPPEL_SIGN_CERT", raising=False)
    monkeypatch.delenv("DOPPEL_SIGN_KEY", raising=False)
    return dict(os.environ)


def edit_file(work: Path, media: dict, ext: str, name: str = "cut") -> Path:
    folder = work / f"edits{ext}"
    if ext == ".edl":
        return write_avid_edl(folder.mkdir(parents=True, exist_ok=True) or folder / f"{name}.edl", [
            ("A", "01:00:00:05", "01:00:01:01", "01:00:00:00", "01:00:00:20", str(media["A"][0]),
             ["01:00:00:08 GREEN FACESWAP COLOUR=RCT"]),
            ("B", "02:00:10:03", "02:00:10:18", "01:00:00:20", "01:00:01:11", str(media["B"][0]), []),
        ], NTSC)
    if ext == ".otioz" and (folder / f"{name}.otioz").is_file():  # the otioz adapter never overwrites
        return folder / f"{name}.otioz"
    if ext == ".fcpxml":  # the FCPXML writer cannot write 23.976 (its frameDuration): use 25 fps media
        tl, _ = standard_edit(make_media(work / "media25", Fraction(25)), Fraction(25), transition=False)
    else:
        tl, _ = standard_edit(media, NTSC, transition=ext != ".aaf")  # the AAF writer refuses bare transitions
    return write_formats(tl, folder, name, (ext,))[ext]


# (clip name, marked first, marked last) the standard edit marks, per format (see test_timeline).
MARKED = {
    ".otio": [("shot_a", 5, 24), ("shot_c", 14, 18), ("shot_b2", 20, 31)],
    ".otioz": [("shot_a", 5, 24), ("shot_c", 14, 18), ("shot_b2", 20, 31)],
    ".xml": [("shot_a", 5, 24), ("shot_c", 14, 18)],
    ".fcpxml": [("shot_a", 5, 24), ("shot_c", 14, 18)],
    ".edl": [("A.mov", 5, 24)],  # EDL clips are named after the FROM CLIP NAME
    ".aaf": [],
}


# --------------------------------------------------------------------------- planning (no swap needed)


@pytest.mark.parametrize("ext", list(MARKED))
def test_plan_in_every_format(work, media, model, preset, env, ext):
    edit = edit_file(work, media, ext)
    plan = plan_render(edit, preset, work / f"out{ext}", model=model, edl_rate=NTSC if ext == ".edl" else None)
    got = [(j.clip.clip_name, j.clip.source_first_frame, j.clip.source_last_frame) for j in plan.jobs]
    assert got == MARKED[ext]
    for job in plan.jobs:
        # handles: 3 each side, clamped to the media's frames 0..MEDIA_FRAMES-1
        assert (job.first, job.last) == (max(0, job.clip.source_first_frame - 3),
                                         min(MEDIA_FRAMES - 1, job.clip.source_last_frame + 3))
        assert job.output.parent == work / f"out{ext}" / "media" and job.output.suffix == ".mp4"
        assert ".mov" not in job.output.name  # EDL clips are named 'A.mov': the name keeps no source extension
        if job.clip.media_timecode:
            assert job.timecode == shift_timecode(job.clip.media_timecode, job.first, job.clip.rate)
            assert "01_00_00" in job.output.name or "02_00_10" in job.output.name
        else:
            assert job.timecode is None
        assert job.model.path == model.resolve() and job.model.origin == "--model"
        assert job.signing is None
    assert len({j.output for j in plan.jobs}) == len(plan.jobs)
    assert [p.name for p in plan.return_edits] == ["cut.doppel.otio"] + ([f"cut.doppel{ext}"] if ext != ".otio" else [])
    assert not (work / f"out{ext}").exists()  # planning writes nothing


def test_overrides_change_the_per_clip_preset_and_inputs(work, media, model, preset, env):
    plan = plan_render(edit_file(work, media, ".otio"), preset, work / "ovr", model=model)
    a, c, b2 = plan.jobs
    assert (a.preset.colour, c.preset.mask.kind, b2.preset.blend) == ("rct", "ellipse", "poisson")
    assert len({a.preset_sha256, c.preset_sha256, b2.preset_sha256}) == 3
    flipped = plan_render(edit_file(work, media, ".otio"), preset, work / "ovr", model=model, direction="b2a")
    assert all(j.preset.direction == "b2a" for j in flipped.jobs)
    assert flipped.jobs[0].inputs_sha256 != a.inputs_sha256  # a different render: not skipped on resume


def test_model_from_marker_relative_to_the_edit_and_from_preset(work, media, preset, env):
    folder = work / "marker_model"
    make_model(folder / "models" / "jane")
    src = folder / "cut.otio"
    tl, _ = standard_edit(media, NTSC)
    for clip in tl.find_clips():
        for m in clip.markers:
            if m.name.upper().startswith("FACESWAP"):
                m.name += " model=models/jane"
    otio.adapters.write_to_file(tl, str(src))
    b2_missing = pytest.raises(InputError, match="no model for track V2 clip 'shot_b2'")
    with b2_missing:  # shot_b2 is marked by metadata, without model=: it has none
        plan_render(src, preset, folder / "out")
    with_model = folder / "with_model.yaml"
    make_model(folder / "preset_model")
    with_model.write_text(PRESET + "model: preset_model\n")
    plan = plan_render(src, with_model, folder / "out")
    origins = [(j.clip.clip_name, j.model.path.name) for j in plan.jobs]
    assert origins == [("shot_a", "jane"), ("shot_c", "jane"), ("shot_b2", "preset_model")]


def test_bad_models_are_listed_before_rendering(work, media, preset, env):
    edit = edit_file(work, media, ".otio")
    with pytest.raises(ModelError, match=r"nope \(from --model\) does not exist"):
        plan_render(edit, preset, work / "bad", model=work / "nope")
    (work / "a-file").write_text("x")
    with pytest.raises(ModelError, match=r"a-file \(from --model\) is not a directory"):
        plan_render(edit, preset, work / "bad", model=work / "a-file")
    no_rights = make_model(work / "norights", rights=None)
    with pytest.raises(ModelError, match="rights statement is required"):
        plan_render(edit, preset, work / "bad", model=no_rights)
    no_weights = work / "noweights"
    make_model(no_weights)
    (model_files(no_weights) / "model.safetensors").unlink()  # in the current checkpoint, not just the link to it
    with pytest.raises(ModelError, match="model.safetensors is missing"):
        plan_render(edit, preset, work / "bad", model=no_weights)


def test_missing_media_unknown_keys_and_unreadable_edits(work, media, model, preset, env):
    folder = work / "broken"
    folder.mkdir()
    tl, _ = standard_edit(media, NTSC)
    for clip in tl.find_clips():
        if clip.name in ("shot_a", "shot_c"):
            clip.media_reference.target_url = (folder / f"gone_{clip.name}.mov").as_uri()
    otio.adapters.write_to_file(tl, str(folder / "missing.otio"))
    with pytest.raises(InputError, match="2 media file") as err:
        plan_render(folder / "missing.otio", preset, folder / "out", model=model)
    assert "gone_shot_a.mov" in str(err.value) and "gone_shot_c.mov" in str(err.value)
    tl, _ = standard_edit(media, NTSC)
    tl.find_clips()[0].markers[0].name = "FACESWAP colur=rct"
    otio.adapters.write_to_file(tl, str(folder / "typo.otio"))
    with pytest.raises(InputError, match="unknown key 'colur'.*did you mean 'colour'"):
        plan_render(folder / "typo.otio", preset, folder / "out", model=model)
    (folder / "garbage.xml").write_text("<xmeml><sequence>not closed")
    with pytest.raises(InputError, match="cannot read edit"):
        plan_render(folder / "garbage.xml", preset, folder / "out", model=model)
    with pytest.raises(InputError, match="no preset 'prores_qh'.*did you mean 'prores_hq'"):
        plan_render(edit_file(work, media, ".otio"), "prores_qh", folder / "out", model=model)
    assert not (folder / "out").exists()


# --------------------------------------------------------------------------- the CLI without rendering


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    from renderer.cli import main

    code = main(["render", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_dry_run_lists_and_writes_nothing(work, media, model, preset, env, capsys):
    edit = edit_file(work, media, ".xml")
    out = work / "dry"
    code, stdout, _ = cli([edit, "--preset", preset, "--out", out, "--model", model, "--dry-run", "--json"], capsys)
    assert code == 0
    data = json.loads(stdout)
    assert [c["clip"] for c in data["clips"]] == ["shot_a", "shot_c"]
    assert [c["would"] for c in data["clips"]] == ["render", "render"]
    assert data["clips"][0]["render_range"] == {"first_frame": 2, "last_frame": 27, "frames": 26, "handles": [3, 3],
                                                "timecode": "01:00:00:02"}
    assert not out.exists()
    code, stdout, _ = cli([edit, "--preset", preset, "--out", out, "--model", model, "--dry-run"], capsys)
    assert code == 0 and "2 clip(s)" in stdout and "shot_c" in stdout and not out.exists()


@pytest.mark.parametrize("words, message", [
    ("erode=nan", r"bad value nan for .*marker .* key 'erode'; allowed: a number >= 0 and <= 0.5"),
    ("feather=NaN", r"bad value nan for .*key 'feather'"),
    ("temporal=nan", r"bad value nan for .*key 'temporal'; allowed: a number >= 0 and <= 1"),
    ("name=", r"empty name pattern ''"),
])
def test_dry_run_refuses_nan_and_empty_marker_overrides(work, media, model, preset, env, capsys, words, message):
    """`presets validate` passed these and the clip failed mid-render; now the plan (and --dry-run) refuse them."""
    import re

    tl, _ = standard_edit(media, NTSC)
    tl.find_clips()[0].markers[0].name = f"FACESWAP {words}"
    edit = work / f"nan-{words.split('=')[0]}.otio"
    otio.adapters.write_to_file(tl, str(edit))
    out = work / "nan-out"
    code, _, err = cli([edit, "--preset", preset, "--out", out, "--model", model, "--dry-run"], capsys)
    assert code == 2 and re.search(message, err), err  # one line per bad clip, under a heading
    assert f"clip '{tl.find_clips()[0].name}'" in err and not out.exists()


def test_cli_bad_input_exits_2(work, media, model, preset, env, capsys):
    edit = edit_file(work, media, ".otio")
    for args, message in [
        ([work / "none.otio", "--preset", preset, "--model", model], "does not exist"),
        ([edit, "--preset", "reveiw", "--model", model], "did you mean 'review'"),
        ([edit, "--preset", preset], "no model for"),
        ([edit, "--preset", preset, "--model", make_model(work / "norights2", rights=None)], "rights"),
        ([edit_file(work, media, ".edl"), "--preset", preset, "--model", model, "--edl-rate", "fast"], "--edl-rate"),
    ]:
        code, _, err = cli([*args, "--out", work / "bad-cli"], capsys)
        assert code == 2, (args, err)
        assert message in err and err.startswith("doppel render: error:")
    assert not (work / "bad-cli").exists()


def test_cli_nothing_marked_exits_0_with_empty_return_track(work, media, model, preset, env, capsys):
    edit = edit_file(work, media, ".aaf")  # AAF writing drops markers: nothing is marked
    out = work / "nothing"
    code, stdout, err = cli([edit, "--preset", preset, "--out", out, "--model", model, "--json"], capsys)
    assert code == 0 and "nothing marked" in err
    summary = json.loads(stdout)
    assert summary["status"] == "nothing marked" and summary["clips"] == 0
    back = read_edit(out / "cut.doppel.otio")
    assert back.video_tracks()[-1].name == "FACESWAP" and not list(back.video_tracks()[-1].find_clips())
    assert (out / "cut.doppel.aaf").is_file()
    assert json.loads((out / RENDER_JSON).read_text())["clips"] == []


# --------------------------------------------------------------------------- rendering (needs swap.py)


def check_outputs(out: Path, edit: Path, plan_jobs, original) -> None:
    """Every rendered file: frame N == source frame first+N, timecode == source TC at first,
    and each sits in the return edit's FACESWAP track at its original's record time."""
    for job in plan_jobs:
        info = probe(job.output)
        assert info.frames == job.frames and info.fps == NTSC
        assert info.timecode == job.timecode
        numbers = [read_frame_number(rgb) for _, rgb in read_frames(job.output, 0, info.frames - 1, info)]
        assert numbers == list(range(job.first, job.last + 1)), job.clip.clip_name
        if job.clip.media_timecode:
            assert timecode_to_frame(info.timecode, NTSC) == timecode_to_frame(job.clip.media_timecode, NTSC) + job.first
    # The OTIO return edit, and FCP7 XML (the input's own format) read back through its adapter:
    # each rendered file sits on a return track at exactly its original's record time.
    for name in (f"{edit.stem}.doppel.otio", f"{edit.stem}.doppel.xml"):
        if not (out / name).is_file():
            continue
        back = read_edit(out / name)
        assert len(back.video_tracks()) > len(original.video_tracks())
        placed = {}
        outputs = {j.output.resolve() for j in plan_jobs}
        for track in back.video_tracks():
            clips = [c for c in track.find_clips() if getattr(c.media_reference, "target_url", None)
                     and Path(otio.url_utils.filepath_from_url(c.media_reference.target_url)).resolve() in outputs]
            if not clips:
                continue
            assert track.name.startswith("FACESWAP") or name.endswith(".xml")  # FCP7 XML drops track names
            for c in clips:
                path = Path(otio.url_utils.filepath_from_url(c.media_reference.target_url))
                placed[path.resolve()] = (round(c.range_in_parent().start_time.value), round(c.duration().value))
        assert placed == {j.output.resolve(): (round(j.clip.record_range.start_time.value), j.clip.frames)
                          for j in plan_jobs}, name


@pytest.mark.parametrize("ext", [".otio", ".otioz", ".xml", ".edl"])
def test_render_every_clip_frame_exact_and_resume(work, media, model, preset, env, capsys, ext):
    edit = edit_file(work, media, ext)
    out = work / f"render{ext}"
    extra = ["--edl-rate", "24000/1001"] if ext == ".edl" else []
    code, stdout, err = cli([edit, "--preset", preset, "--out", out, "--model", model, "--json", *extra], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["rendered"] == len(MARKED[ext]) and summary["failed"] == 0
    assert "is NOT signed" in err  # no keys configured: a warning, an unsigned label
    plan = plan_render(edit, preset, out, model=model, edl_rate=NTSC if ext == ".edl" else None)
    check_outputs(out, edit, plan.jobs, read_edit(edit, edl_rate=NTSC))
    record = json.loads((out / RENDER_JSON).read_text())
    assert record["status"] == "ok" and len(record["clips"]) == len(plan.jobs)
    for entry, job in zip(record["clips"], plan.jobs):
        assert entry["status"] == "ok" and entry["output"]["path"] == str(job.output)
        assert entry["output"]["sha256"] == __import__("renderer.atomic").atomic.sha256_file(job.output)
        assert entry["model"]["card_sha256"] == job.model.card_sha256 and entry["preset_sha256"] == job.preset_sha256
        assert entry["frames"]["swapped"] == 0  # no face in a numbered clip: every frame passed through
        assert sum(entry["frames"]["passed_through"].values()) == job.frames
        assert probe(job.output).to_json() and "SYNTHETIC MEDIA" in _metadata(job.output).get("comment", "")
    assert (out / f"cut.doppel{ext}").is_file() or ext == ".otio"
    mtimes = {j.output: j.output.stat().st_mtime_ns for j in plan.jobs}
    code, stdout, _ = cli([edit, "--preset", preset, "--out", out, "--model", model, "--json", *extra], capsys)
    assert code == 0 and json.loads(stdout)["skipped"] == len(plan.jobs)
    assert {j.output: j.output.stat().st_mtime_ns for j in plan.jobs} == mtimes
    assert not list(out.rglob(".*partial*"))


def _metadata(path: Path) -> dict[str, str]:
    import av

    with av.open(str(path)) as c:
        return dict(c.metadata)


def test_render_swaps_a_real_face(work, env, capsys):
    """A real face clip and the trained demo model: faces are swapped over the marked range and its
    handles, frame numbers and timecode stay exact, the source is never written."""
    import numpy as np

    from tests.model_fixtures import face_clip, trained_model

    folder = work / "face"
    folder.mkdir()
    src = face_clip(folder / "face.mov", frames=24, fps=NTSC, timecode="01:00:00:00")
    before = src.read_bytes()
    rate = float(NTSC)
    origin = timecode_to_frame("01:00:00:00", NTSC)
    clip = otio.schema.Clip(name="face", media_reference=otio.schema.ExternalReference(
        target_url=src.resolve().as_uri(), available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(origin, rate), otio.opentime.RationalTime(24, rate))),
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(origin + 4, rate),
                                             otio.opentime.RationalTime(16, rate)))
    clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(origin + 8, rate), otio.opentime.RationalTime(6, rate))))
    tl = otio.schema.Timeline(name="face")
    tl.tracks.append(otio.schema.Track(children=[clip]))
    edit = folder / "face.otio"
    otio.adapters.write_to_file(tl, str(edit))
    small = folder / "p.yaml"
    small.write_text(PRESET)
    out = folder / "out"
    code, stdout, err = cli([edit, "--preset", small, "--out", out, "--model", trained_model(), "--json"], capsys)
    assert code == 0, err
    assert src.read_bytes() == before
    entry = json.loads((out / RENDER_JSON).read_text())["clips"][0]
    assert entry["render_range"] == {"first_frame": 5, "last_frame": 16, "frames": 12, "handles": [3, 3],
                                     "timecode": "01:00:00:05"}
    assert entry["frames"]["swapped"] >= 10  # handles are swapped too
    path = Path(entry["output"]["path"])
    info = probe(path)
    assert info.timecode == "01:00:00:05" and info.frames == 12
    out_frames = [rgb for _, rgb in read_frames(path, 0, 11, info)]
    src_frames = [rgb for _, rgb in read_frames(src, 5, 16)]
    assert [read_frame_number(f) for f in out_frames] == list(range(5, 17))
    changed = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(out_frames, src_frames)]
    assert sum(c > 1.0 for c in changed) >= 10, changed


# --------------------------------------------------------------------------- real NLE exports (adapters' sample edits)


def test_failing_return_writer_keeps_the_render_and_the_otio(work, preset, env, capsys):
    """Avid's multiple_top_level_mobs.aaf holds two compositions, and the AAF writer writes one: the AAF
    return edit cannot be written. The dry run says so, the render keeps the .otio, exits 1 with one
    line, and render.json and the --json summary are final. (Avid's 29.97 DF sample over 23.976 media,
    which the writer refused until renderer.timeline.aaf_return mended it, now writes: last lines.)"""
    from tests.sample_edits import sample_edits

    edit = sample_edits() / "otio-aaf-adapter" / "multiple_top_level_mobs.aaf"
    out = work / "aaf_return_fails"
    aaf = str(out / "multiple_top_level_mobs.doppel.aaf")
    code, stdout, err = cli([edit, "--preset", preset, "--out", out, "--dry-run", "--json"], capsys)
    assert code == 1 and not out.exists()
    assert json.loads(stdout)["return_errors"][aaf].startswith("cannot write AAF (Avid)")
    assert "would NOT be written" in err
    code, stdout, err = cli([edit, "--preset", preset, "--out", out, "--json"], capsys)
    assert code == 1
    summary = json.loads(stdout)
    assert summary["status"] == "return edit failed" and summary["return_edits"] == [
        str(out / "multiple_top_level_mobs.doppel.otio")]
    reason = summary["return_errors"][aaf]
    assert "2 top-level compositions" in reason and "\n" not in reason
    assert [line for line in err.splitlines() if "NOT written" in line] == [
        f"doppel render: return edit {aaf} NOT written: {reason}"]
    record = json.loads((out / RENDER_JSON).read_text())
    assert record["status"] == "return edit failed" and record["return_errors"] == summary["return_errors"]
    assert len(read_timelines(out / "multiple_top_level_mobs.doppel.otio")) == 2
    assert not Path(aaf).exists() and not list(out.glob(".*partial*"))
    edit = sample_edits() / "otio-aaf-adapter" / "2997fps-DFTC.aaf"
    out = work / "aaf_return_mended"
    code, stdout, err = cli([edit, "--preset", preset, "--out", out, "--json"], capsys)
    assert code == 0, err
    back = read_edit(out / "2997fps-DFTC.doppel.aaf")
    assert back.global_start_time.rate == pytest.approx(30000 / 1001)


def test_edl_rate_names_ntsc_rates_exactly():
    from renderer.commands.render import _rate

    assert _rate("23.976") == _rate("24000/1001") == Fraction(24000, 1001)
    assert _rate("29.97") == Fraction(30000, 1001) and _rate("25") == 25 and _rate("24") == 24


def test_every_fcpxml_project_comes_back(work, preset, env, capsys):
    """Final Cut Pro's library export (fcpx_library.fcpxml: two projects): the return edits, .otio and
    .fcpxml, hold both projects, the first with its FACESWAP track, the second unchanged. The library
    has cross dissolves, which the FCPXML adapter neither reads nor writes: its .fcpxml return is refused
    in one line (exit 1, the .otio written); the same library without them comes back in both formats."""
    import re

    from renderer.timeline import read_timelines
    from tests.sample_edits import sample_edits

    edit = sample_edits() / "otio-fcpx-xml-adapter" / "fcpx_library.fcpxml"
    out = work / "fcpx_library"
    code, stdout, err = cli([edit, "--preset", preset, "--out", out, "--json"], capsys)
    assert code == 1 and not (out / "fcpx_library.doppel.fcpxml").exists()
    said = [line for line in err.splitlines() if "fcpx_library.doppel.fcpxml" in line]
    assert len(said) == 1 and "neither reads nor writes transitions" in said[0], err
    plain = work / "no_dissolves" / "fcpx_library.fcpxml"
    plain.parent.mkdir(parents=True, exist_ok=True)
    plain.write_text(re.sub(r"<transition\b.*?</transition>", "", edit.read_text("utf-8"), flags=re.S), "utf-8")
    out = work / "fcpx_library_plain"
    code, stdout, err = cli([plain, "--preset", preset, "--out", out, "--json"], capsys)
    assert code == 0, err
    original = read_timelines(plain)
    assert len(original) == 2
    for name in ("fcpx_library.doppel.otio", "fcpx_library.doppel.fcpxml"):
        back = read_timelines(out / name)
        assert [t.name for t in back] == [t.name for t in original], name
        assert [c.name for c in back[1].find_clips()] == [c.name for c in original[1].find_clips()]