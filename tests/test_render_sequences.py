"""Image sequences through the render node and the swap: an OTIO edit whose clips are
ImageSequenceReferences (written by the real OTIO adapter) over EXR and DPX sequences the ffmpeg CLI
wrote renders frame-exact and comes back as sequences with the source's frame numbers, placed by
ImageSequenceReferences in the return edit; a real face in an EXR sequence is swapped with every
pixel outside the changed region kept sample for sample.

Frame numbers are checked three ways: the file names (ffprobe on the pattern from the expected
start number), the numbers painted into the pixels, and OTIO's own `frame_for_time` on the
return edit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from renderer import media
from renderer.cli import main as cli_main
from renderer.render import RENDER_JSON
from tests.media.test_sequences import decoded, ffmpeg, ffprobe_count, ffprobe_has_frame, planes
from tests.media_factory import make_numbered_clip, read_frame_number
from tests.test_render import PRESET, make_model

RATE = 24
FRAMES = 12


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("render_sequences")


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "no-keys"))
    monkeypatch.delenv("DOPPEL_SIGN_CERT", raising=False)
    monkeypatch.delenv("DOPPEL_SIGN_KEY", raising=False)


def _plates(work: Path) -> tuple[Path, Path]:
    clip = make_numbered_clip(work / "numbered.mkv", FRAMES, 96, 64, codec="ffv1")
    exr, dpx = work / "edit" / "plates" / "exr", work / "dpx_plates"
    exr.mkdir(parents=True)
    dpx.mkdir()
    ffmpeg("-i", str(clip), "-pix_fmt", "gbrapf32le", "-c:v", "exr", "-format", "half", "-start_number", "1001",
           str(exr / "A001.%04d.exr"))
    ffmpeg("-i", str(clip), "-pix_fmt", "gbrp10le", "-start_number", "2001", str(dpx / "B002_%05d.dpx"))
    return exr / "A001.%04d.exr", dpx / "B002_%05d.dpx"


def _edit(work: Path, dpx_folder: Path) -> Path:
    """Two marked clips: an EXR plate (relative URL, available range at 01:00:00:00, frames 1003-1008
    shown) and a DPX plate (absolute URL, no available range, numbers from 2001, frames 2005-2009)."""
    exr_ref = otio.schema.ImageSequenceReference(
        target_url_base="plates/exr/", name_prefix="A001.", name_suffix=".exr", start_frame=1001, frame_step=1,
        rate=RATE, frame_zero_padding=4, available_range=TR(RT(86400, RATE), RT(FRAMES, RATE)))
    dpx_ref = otio.schema.ImageSequenceReference(
        target_url_base=dpx_folder.resolve().as_uri() + "/", name_prefix="B002_", name_suffix=".dpx",
        start_frame=2001, frame_step=1, rate=RATE, frame_zero_padding=5)
    a = otio.schema.Clip(name="A001", media_reference=exr_ref, source_range=TR(RT(86402, RATE), RT(6, RATE)))
    b = otio.schema.Clip(name="B002", media_reference=dpx_ref, source_range=TR(RT(4, RATE), RT(5, RATE)))
    for clip in (a, b):
        clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=clip.source_range))
    timeline = otio.schema.Timeline(name="plates")
    timeline.tracks.append(otio.schema.Track(children=[a, b]))
    path = work / "edit" / "plates.otio"
    otio.adapters.write_to_file(timeline, str(path))
    return path


@pytest.fixture()
def keys(tmp_path, monkeypatch):
    """A real local signing chain, the render node's default keys folder."""
    from renderer import provenance as prov

    made = prov.init_keys(tmp_path / "keys", common_name="Sequence Render Node")
    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("DOPPEL_SIGN_CERT", raising=False)
    monkeypatch.delenv("DOPPEL_SIGN_KEY", raising=False)
    return made


@pytest.fixture(scope="module")
def plates_edit(work: Path) -> tuple[Path, Path, Path]:
    exr, dpx = _plates(work)
    return exr, dpx, _edit(work, dpx.parent)


def test_otio_edit_renders_exr_and_dpx_sequences_frame_exact(work, plates_edit, keys, capsys):
    exr, dpx, edit = plates_edit
    before = {p: p.read_bytes() for folder in (exr.parent, dpx.parent) for p in folder.iterdir()}
    preset = work / "p.yaml"
    preset.write_text(PRESET)  # handles: 3
    out = work / "out"
    args = ["render", str(edit), "--preset", str(preset), "--out", str(out), "--model", str(make_model(work / "m")),
            "--json"]
    assert cli_main(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["refused"] == [] and report["rendered"] == 2
    assert all(p.read_bytes() == data for p, data in before.items())  # sources never written
    clips = json.loads((out / RENDER_JSON).read_text())["clips"]
    # (source pattern, first number rendered, frames rendered, first index, first number marked)
    expect = {"A001": (exr, 1001, 11, 0, 1003), "B002": (dpx, 2002, 11, 1, 2005)}
    for entry in clips:
        src, first_number, frames, first_index, marked = expect[entry["clip"]]
        assert entry["render_range"]["first_frame"] == first_index and entry["render_range"]["frames"] == frames
        pattern = Path(entry["output"]["path"])
        assert pattern.suffix == src.suffix and pattern.parent.parent == out / "media"
        ref = ffprobe_count(pattern, first_number)  # the file names, as FFmpeg reads them
        assert int(ref["nb_read_frames"]) == frames and not ffprobe_has_frame(pattern, first_number - 1)
        assert ref["codec_name"] == ffprobe_count(src, first_number)["codec_name"]
        info = media.probe(pattern, rate=RATE)
        assert info.sequence.numbers == tuple(range(first_number, first_number + frames))
        painted = [read_frame_number(rgb) for _, rgb in media.read_frames(pattern, 0, frames - 1, info)]
        assert painted == list(range(first_index, first_index + frames))
        src_info = media.probe(src, rate=RATE)
        for k in (0, frames - 1):  # no face in these plates: every frame passes through sample for sample
            n = first_number + k
            a = decoded(src_info.sequence.pattern.file(n))
            b = decoded(info.sequence.pattern.file(n))
            assert all(np.array_equal(x, y) for x, y in zip(planes(a), planes(b)))
        assert sorted(p.name for p in pattern.parent.iterdir()) == sorted(
            [info.sequence.pattern.name(n) for n in info.sequence.numbers] + [info.sequence.pattern.sidecar.name])
        assert entry["output"]["signed"] and entry["output"]["manifest"] == "sidecar"
        assert cli_main(["verify", str(pattern.parent), "--trust", str(keys.ca_cert)]) == 0
        assert "VALID, signer trusted (sidecar manifest)" in capsys.readouterr().out
    back = otio.adapters.read_from_file(str(out / "plates.doppel.otio"))
    returned = {c.metadata["doppel"]["source_clip"]: c for c in back.video_tracks()[1].find_clips()}
    for name, (src, first_number, frames, _, marked) in expect.items():
        clip = returned[name]
        ref = clip.media_reference
        assert isinstance(ref, otio.schema.ImageSequenceReference)
        assert (ref.start_frame, ref.name_suffix, ref.rate) == (first_number, src.suffix, RATE)
        assert ref.frame_for_time(clip.source_range.start_time) == marked  # OTIO finds the marked frame's file
        shown = ref.frame_range_for_time_range(clip.source_range)
        assert shown == (marked, marked + round(clip.source_range.duration.value) - 1)
        assert Path(otio.url_utils.filepath_from_url(ref.target_url_for_image_number(0))).is_file()
    # resume: the same inputs and intact sequences are not rendered again
    assert cli_main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["rendered"], again["skipped"]) == (0, 2)


def test_a_stepped_sequence_is_refused_alone_in_an_edit_and_trims_by_number(work, plates_edit, env):
    """Every other frame on disk (1001, 1003, ...) with frame_step 2 in the edit: that clip is refused
    by name, the other clip is a job; trim keeps the stepped numbers."""
    import shutil

    from renderer.timeline import find_jobs, read_edit

    exr, _, _ = plates_edit
    stepped = work / "stepped"
    stepped.mkdir()
    for k, n in enumerate(range(1001, 1013, 2)):
        shutil.copy(exr.parent / f"A001.{n}.exr", stepped / f"S.{1001 + 2 * k}.exr")
    info = media.probe(stepped)
    assert (info.frames, info.sequence.step) == (6, 2)
    cut = media.trim(stepped, 1, 3, work / "stepped_cut" / "S.%04d.exr")
    assert cut.sequence.numbers == (1003, 1005, 1007) and cut.sequence.step == 2
    ref = otio.schema.ImageSequenceReference(target_url_base=stepped.resolve().as_uri() + "/", name_prefix="S.",
                                             name_suffix=".exr", start_frame=1001, frame_step=2, rate=RATE,
                                             frame_zero_padding=4)
    a = otio.schema.Clip(name="stepped", media_reference=ref, source_range=TR(RT(0, RATE), RT(4, RATE)))
    b = otio.schema.Clip(name="plain", media_reference=otio.schema.ImageSequenceReference(
        target_url_base=exr.parent.resolve().as_uri() + "/", name_prefix="A001.", name_suffix=".exr",
        start_frame=1001, rate=RATE, frame_zero_padding=4), source_range=TR(RT(2, RATE), RT(4, RATE)))
    for clip in (a, b):
        clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=clip.source_range))
    timeline = otio.schema.Timeline(name="stepped")
    timeline.tracks.append(otio.schema.Track(children=[a, b]))
    path = work / "stepped.otio"
    otio.adapters.write_to_file(timeline, str(path))
    jobs, refused = find_jobs(read_edit(path), path)
    assert [(j.clip_name, j.source_first_frame, j.source_last_frame) for j in jobs] == [("plain", 2, 5)]
    assert [r.clip_name for r in refused] == ["stepped"]
    assert "steps by 2 in the edit and by 2 on disk" in refused[0].reason


def test_missing_sequence_is_listed_before_rendering(work, env, capsys):
    ref = otio.schema.ImageSequenceReference(target_url_base="file:///nowhere/plates/", name_prefix="C003.",
                                             name_suffix=".exr", start_frame=1001, rate=RATE, frame_zero_padding=4)
    clip = otio.schema.Clip(name="C003", media_reference=ref, source_range=TR(RT(0, RATE), RT(4, RATE)))
    clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=clip.source_range))
    timeline = otio.schema.Timeline(name="missing")
    timeline.tracks.append(otio.schema.Track(children=[clip]))
    path = work / "missing.otio"
    otio.adapters.write_to_file(timeline, str(path))
    preset = work / "p2.yaml"
    preset.write_text(PRESET)
    code = cli_main(["render", str(path), "--preset", str(preset), "--out", str(work / "out_missing"), "--model",
                     str(make_model(work / "m")), "--dry-run"])
    assert code == 2
    assert "file:///nowhere/plates/C003.####.exr (image sequence for track V1 clip 'C003'" in capsys.readouterr().err
    assert not (work / "out_missing" / "media").exists()


def test_swap_replaces_a_real_face_in_an_exr_sequence(work, env, capsys):
    """A real talking head as a float EXR sequence (ffmpeg CLI) through `doppel swap` with the demo model:
    faces change, frame numbers stay, the face is composited in float (no 8-bit step: the deep box
    path), and every pixel outside the pasted region is the source's own float value."""
    from tests.model_fixtures import face_clip, trained_model

    clip = face_clip(work / "face.mkv", frames=4, codec="ffv1")
    plates = work / "face_plates"
    plates.mkdir()
    ffmpeg("-i", str(clip), "-pix_fmt", "gbrpf32le", "-c:v", "exr", "-start_number", "1001",
           str(plates / "face.%04d.exr"))
    out = work / "face_swapped" / "face.%04d.exr"
    code = cli_main(["swap", str(plates), "--model", str(trained_model()), "--out", str(out), "--rate", "25",
                     "--json", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["swapped"] >= 3 and summary["frames"] == 4
    info = media.probe(out)
    assert info.sequence.numbers == (1001, 1002, 1003, 1004) and info.sequence.exr.pixel_type == "float"
    faces = work / "faces_from_exr"
    assert cli_main(["extract", str(plates), "--out", str(faces), "--json", "--no-progress"]) == 0
    extracted = json.loads(capsys.readouterr().out)
    assert extracted["files"] == 1 and extracted["faces_kept"] >= 1  # the sequence is one source, read as frames
    index = json.loads((faces / "faceset.json").read_text())
    assert {r["source"] for r in index["faces"]} == {str(plates / "face.%04d.exr")}
    changed_frames = 0
    for n in info.sequence.numbers:
        a = np.stack([x.view(np.float32) for x in planes(decoded(plates / f"face.{n}.exr"))])  # (3, H, W)
        b = np.stack([x.view(np.float32) for x in planes(decoded(out.parent / f"face.{n}.exr"))])
        diff = np.any(a != b, axis=0)
        if diff.any():
            changed_frames += 1
            rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
            box = np.zeros_like(diff)
            box[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1] = True
            assert box.mean() < 0.5  # the face region, not the frame
            assert np.array_equal(a[:, ~box], b[:, ~box])  # outside it: the source's float samples
            new = b[:, diff]  # inside: composited in float32 (the 8-bit path would put every value on k/255)
            assert np.isclose(new * 255, np.round(new * 255), atol=1e-3).mean() < 0.5
    assert changed_frames >= 3


def test_render_writes_matte_sequences_and_the_return_edit_references_them(work, plates_edit, keys, capsys):
    """`output.matte`/`plate` on the EXR and DPX plates: each render gets its matte and plate as
    sequences of its own kind beside it (same frame numbers, as ffprobe reads them), signed by a
    sidecar each, listed in render.json and --json, and placed on disabled FACESWAP MATTE/PLATE
    tracks by ImageSequenceReferences numbered like the render. No face in these plates: the
    masks are zero (the face case is tests/media/test_matte_sequence.py)."""
    import OpenEXR

    from renderer.atomic import remove_stale_partials

    _, _, edit = plates_edit
    preset = work / "matte.yaml"
    preset.write_text(PRESET + "  matte: true\n  plate: true\n")
    out = work / "out_matte"
    args = ["render", str(edit), "--preset", str(preset), "--out", str(out), "--model", str(make_model(work / "m")),
            "--json"]
    assert cli_main(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    clips = json.loads((out / RENDER_JSON).read_text())["clips"]
    assert report["mattes"] == [c["output"]["matte"]["path"] for c in clips] and len(report["plates"]) == 2
    for entry in clips:
        render = Path(entry["output"]["path"])
        numbers = media.probe(render, rate=RATE).sequence.numbers
        for kind, grey in (("matte", {".exr": "gbrapf32le", ".dpx": "gray16le"}),
                           ("plate", {".exr": "gbrapf32le", ".dpx": "rgba64le"})):
            rec = entry["output"][kind]
            pattern = Path(rec["path"])
            assert pattern.parent == render.parent.with_name(f"{render.parent.name}.{kind}")
            assert pattern.suffix == render.suffix and rec["frames"] == len(numbers) and rec["signed"]
            assert rec["sha256"] == media.sequence_sha256(media.parse_sequence(pattern))
            ref = ffprobe_count(pattern, numbers[0])  # FFmpeg (Debian's CLI) reads the pass by its numbers
            assert int(ref["nb_read_frames"]) == len(numbers) and ref["pix_fmt"] == grey[render.suffix]
            assert not ffprobe_has_frame(pattern, numbers[0] - 1)
            assert media.probe(pattern).sequence.numbers == numbers
            assert cli_main(["verify", str(pattern.parent), "--trust", str(keys.ca_cert)]) == 0
            assert "VALID, signer trusted (sidecar manifest)" in capsys.readouterr().out
        if render.suffix == ".exr":
            first = media.parse_sequence(entry["output"]["matte"]["path"]).file(numbers[0])
            assert first.name == f"{render.name.split('%')[0][:-1]}.matte.{numbers[0]}.exr"
            header = OpenEXR.File(str(first), header_only=True).header()
            assert header["comment"].startswith("SYNTHETIC MEDIA MATTE")
            with OpenEXR.File(str(first)) as f:
                assert set(f.channels()) == {"Y", "A"} and not np.asarray(f.channels()["A"].pixels).any()
    back = otio.adapters.read_from_file(str(out / "plates.doppel.otio"))
    assert [t.name for t in back.video_tracks()][1:] == ["FACESWAP V1", "FACESWAP MATTE V1", "FACESWAP PLATE V1"]
    swap_track, matte_track, plate_track = back.video_tracks()[1:]
    assert swap_track.enabled and not matte_track.enabled and not plate_track.enabled
    for swap_clip, matte_clip in zip(swap_track.find_clips(), matte_track.find_clips()):
        ref, mref = swap_clip.media_reference, matte_clip.media_reference
        assert isinstance(mref, otio.schema.ImageSequenceReference) and mref.name_prefix.endswith(".matte.")
        assert (mref.start_frame, mref.frame_step, mref.frame_zero_padding, mref.name_suffix) == (
            ref.start_frame, ref.frame_step, ref.frame_zero_padding, ref.name_suffix)
        assert matte_clip.source_range == swap_clip.source_range
        assert swap_track.range_of_child(swap_clip) == matte_track.range_of_child(matte_clip)
        assert mref.frame_for_time(matte_clip.source_range.start_time) == ref.frame_for_time(
            swap_clip.source_range.start_time)
        assert Path(otio.url_utils.filepath_from_url(mref.target_url_for_image_number(0))).is_file()
    # Resume: up to date while the passes are intact; a changed matte frame renders that clip again.
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 2
    victim = sorted(Path(clips[1]["output"]["matte"]["path"]).parent.glob("*.dpx"))[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x01")
    assert cli_main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["rendered"], again["skipped"]) == (1, 1)
    assert cli_main(["verify", str(victim.parent), "--trust", str(keys.ca_cert)]) == 0
    assert not list(out.rglob(".*partial*")) and remove_stale_partials(victim.parent) == []
