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


def test_farm_export_refuses_sequences_by_name(work, plates_edit, env):
    from renderer.errors import InputError
    from renderer.farm.job import export_bundle

    preset = work / "p3.yaml"
    preset.write_text(PRESET)
    with pytest.raises(InputError, match=r"2 marked clip\(s\) are image sequences \(A001, B002\): farm jobs do not"):
        export_bundle(plates_edit[2], preset, work / "bundle", model=make_model(work / "m"))
    assert not (work / "bundle").exists()


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


def test_a_matte_pass_for_a_sequence_is_refused(work, plates_edit, env, capsys):
    exr, _, _ = plates_edit
    code = cli_main(["swap", str(exr), "--model", str(make_model(work / "m")), "--out",
                     str(work / "matte_refused" / "A001.%04d.exr"), "--matte", "--no-progress"])
    assert code == 2
    assert "a matte pass for an image sequence is not supported yet" in capsys.readouterr().err
    assert not (work / "matte_refused").exists()
