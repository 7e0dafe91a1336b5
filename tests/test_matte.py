"""The matte pass end to end: `doppel swap --matte --plate` on a real talking-head clip.

Checked against the reference tools, not our reader alone: ffprobe counts the matte's frames
(-count_frames) and reads its rate and timecode, Debian's ffmpeg extracts its alpha
(`alphaextract`), and the matte decoded at each frame equals the mask the composite used,
captured from the swap code path itself (`paste_face`).
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

import renderer.swap.faces as swap_faces
from renderer import media
from renderer.cli import main
from renderer.media.matte import ALPHA_MAX, decode_matte
from tests.commands.test_swap_cli import face_clip_gop
from tests.model_fixtures import trained_model

FRAMES = 16
SWAP = (5, 9)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return trained_model()


def ffprobe(path: Path) -> dict:
    if shutil.which("ffprobe") is None:
        pytest.skip("the ffprobe CLI is not installed")
    done = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                           "stream=nb_read_frames,r_frame_rate,codec_name,pix_fmt:stream_tags=timecode",
                           "-of", "json", str(path)], capture_output=True, text=True, check=True)
    stream = json.loads(done.stdout)["streams"][0]
    stream["tags"] = {k.lower(): v for k, v in stream.get("tags", {}).items()}  # mkv: TIMECODE, mov: timecode
    return stream


def ffmpeg_alpha(path: Path, width: int, height: int) -> np.ndarray:
    """(N, H, W) uint16: the clip's alpha as Debian's ffmpeg extracts it (gray16le)."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", "alphaextract",
                           "-pix_fmt", "gray16le", "-f", "rawvideo", "-"], capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint16).reshape(-1, height, width)


def test_swap_writes_the_mask_it_blended_with(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    clip = face_clip_gop(tmp_path / "face.mkv", FRAMES, "ffv1")  # lossless, intra: smart render
    out = tmp_path / "swapped.mkv"
    used: list[object] = []  # every Patch the composite made, in order

    def capture(*args: object, **kwargs: object) -> object:
        patch = real_paste(*args, **kwargs)
        used.append(patch)
        return patch

    real_paste = swap_faces.paste_face
    monkeypatch.setattr(swap_faces, "paste_face", capture)
    code = main(["swap", str(clip), "--model", str(model_dir), "--out", str(out), "--frames", f"{SWAP[0]}-{SWAP[1]}",
                 "--matte", "--plate", "--json", "--no-progress"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["path"] == "smart" and summary["frames_copied"] == FRAMES - (SWAP[1] - SWAP[0] + 1)
    matte, plate = out.with_name("swapped.matte.mov"), out.with_name("swapped.plate.mov")
    assert summary["matte"] == str(matte) and summary["plate"] == str(plate)
    swapped = SWAP[1] - SWAP[0] + 1
    assert summary["swapped"] == swapped and len(used) == swapped and all(p is not None for p in used)

    # Same frames, rate and timecode as the output, by ffprobe; ProRes 4444 with alpha.
    ref = ffprobe(out)
    for path in (matte, plate):
        got = ffprobe(path)
        assert int(got["nb_read_frames"]) == int(ref["nb_read_frames"]) == FRAMES
        assert got["r_frame_rate"] == ref["r_frame_rate"]
        assert got["tags"]["timecode"] == ref["tags"]["timecode"] == "01:00:00:00"
        assert got["codec_name"] == "prores" and got["pix_fmt"].startswith("yuva444p")
        with av.open(str(path)) as c:
            assert "SYNTHETIC MEDIA" in c.metadata.get("comment", "")
    # Frame times agree (the mkv output counts in ms, the mov matte in 1/24000 s).
    m_info, o_info = media.probe(matte), media.probe(out)
    for pm, po in zip(m_info.pts, o_info.pts, strict=True):
        assert abs(float(pm * m_info.time_base) - float(po * o_info.time_base)) <= 0.001

    # The matte at each frame is the mask the composite used (black where nothing was swapped).
    info = media.probe(out)
    alphas = decode_matte(matte)
    assert len(alphas) == FRAMES
    for i, alpha in enumerate(alphas):
        if not SWAP[0] <= i <= SWAP[1]:
            assert not alpha.any(), f"frame {i} was not swapped but its matte is not empty"
            continue
        patch = used[i - SWAP[0]]
        want = np.zeros((info.height, info.width), np.uint16)
        x0, y0, x1, y1 = patch.box
        want[y0:y1, x0:x1] = np.rint(patch.alpha * ALPHA_MAX)
        assert np.array_equal(alpha, want), f"frame {i}: matte differs from the blend mask"
    # An independent decoder reads the same alpha (16-bit scaled: the top 10 bits are the code).
    assert np.array_equal(ffmpeg_alpha(matte, info.width, info.height) >> 6, np.stack(alphas))

    # Lossless render: where the matte is 0 the pixel is the source's; where it is 1 it changed.
    src = [rgb for _, rgb in media.read_frames(clip, 0, FRAMES - 1)]
    dst = [rgb for _, rgb in media.read_frames(out, 0, FRAMES - 1)]
    full_total = full_changed = 0
    for i in range(FRAMES):
        changed = (src[i] != dst[i]).any(axis=2)
        zero = alphas[i] == 0
        assert not changed[zero].any(), f"frame {i}: {int(changed[zero].sum())} pixels changed where the matte is 0"
        full = alphas[i] == ALPHA_MAX
        full_total += int(full.sum())
        full_changed += int(changed[full].sum())
    assert full_total > 1000, "the matte is nowhere fully on"
    assert full_changed / full_total > 0.95, f"only {full_changed}/{full_total} pixels changed where the matte is 1"

    # The plate: alpha equal to the matte's, its picture the swapped face where it is fully on.
    plate_alpha = decode_matte(plate)
    assert all(np.array_equal(a, b) for a, b in zip(plate_alpha, alphas))
    i = SWAP[0] + 2
    plate_rgb = media.read_frames(plate, i, i)
    face = next(plate_rgb)[1]
    full = alphas[i] == ALPHA_MAX
    err = np.abs(face[full].astype(int) - dst[i][full].astype(int)).mean()
    assert err < 3.0, f"plate frame {i} differs from the blended output by {err:.2f} where alpha is 1"


MATTE_PRESET = """\
description: matte pass test preset
handles: 2
detect_every: 1
output:
  codec: ffv1
  container: mkv
  audio: none
  matte: true
  plate: true
"""


def face_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(edit, preset): one real face clip at 01:00:00:00, 12 frames cut, 5 marked; matte and plate on."""
    import opentimelineio as otio

    from tests.model_fixtures import face_clip

    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "no-keys"))
    monkeypatch.delenv("DOPPEL_SIGN_CERT", raising=False)
    monkeypatch.delenv("DOPPEL_SIGN_KEY", raising=False)
    src = face_clip(tmp_path / "face.mov", frames=16, fps=Fraction(25), timecode="01:00:00:00")
    origin, rate = 90000, 25.0
    RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
    clip = otio.schema.Clip(name="face", media_reference=otio.schema.ExternalReference(
        target_url=src.resolve().as_uri(), available_range=TR(RT(origin, rate), RT(16, rate))),
        source_range=TR(RT(origin + 2, rate), RT(12, rate)))
    clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=TR(RT(origin + 5, rate), RT(5, rate))))
    tl = otio.schema.Timeline(name="face")
    tl.tracks.append(otio.schema.Track(name="V1", children=[clip]))
    edit = tmp_path / "face.otio"
    otio.adapters.write_to_file(tl, str(edit))
    preset = tmp_path / "matte.yaml"
    preset.write_text(MATTE_PRESET)
    return edit, preset


def test_render_lists_the_matte_and_the_return_edit_references_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import opentimelineio as otio

    from plugin.blender.otio_json import read_return
    from renderer.atomic import sha256_file
    from renderer.render import RENDER_JSON
    from renderer.timeline import read_edit

    edit, preset = face_edit(tmp_path, monkeypatch)
    fps = Fraction(25)
    out = tmp_path / "out"
    args = ["render", str(edit), "--preset", str(preset), "--out", str(out), "--model", str(trained_model()), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    entry = json.loads((out / RENDER_JSON).read_text())["clips"][0]
    output = Path(entry["output"]["path"])
    matte, plate = Path(entry["output"]["matte"]["path"]), Path(entry["output"]["plate"]["path"])
    assert summary["mattes"] == [str(matte)] and summary["plates"] == [str(plate)]
    assert matte == output.with_name(output.stem + ".matte.mov") and matte.is_file() and plate.is_file()
    assert entry["output"]["matte"]["sha256"] == sha256_file(matte)
    ref, got = ffprobe(output), ffprobe(matte)
    assert int(got["nb_read_frames"]) == int(ref["nb_read_frames"]) == entry["render_range"]["frames"] == 9
    assert got["tags"]["timecode"] == ref["tags"]["timecode"] == entry["render_range"]["timecode"] == "01:00:00:03"
    assert got["r_frame_rate"] == ref["r_frame_rate"] == "25/1"
    alphas = decode_matte(matte)
    assert sum(bool(a.any()) for a in alphas) == entry["frames"]["swapped"] >= 7

    # The return edit: a disabled FACESWAP MATTE V1 track above FACESWAP V1 (plate above it), the
    # same record range over the matte file; the return clip's metadata names both files.
    back = read_edit(out / "face.doppel.otio")
    names = [t.name for t in back.video_tracks()]
    assert names == ["V1", "FACESWAP V1", "FACESWAP MATTE V1", "FACESWAP PLATE V1"]
    swap_track, matte_track = back.video_tracks()[1], back.video_tracks()[2]
    assert swap_track.enabled and not matte_track.enabled
    (swap_clip,), (matte_clip,) = list(swap_track.find_clips()), list(matte_track.find_clips())
    assert Path(otio.url_utils.filepath_from_url(matte_clip.media_reference.target_url)) == matte.resolve()
    assert matte_clip.source_range == swap_clip.source_range
    assert swap_track.range_of_child(swap_clip) == matte_track.range_of_child(matte_clip)
    assert matte_clip.media_reference.available_range == swap_clip.media_reference.available_range
    assert swap_clip.metadata["doppel"]["matte"] == matte.resolve().as_uri()
    # Hosts cut in the swapped picture only, never the matte.
    assert [Path(p.filepath) for p in read_return(out / "face.doppel.otio", fps)] == [output.resolve()]

    # Resume: up to date while the matte is intact; a deleted matte renders the clip again.
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 1
    matte.unlink()
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["rendered"] == 1 and matte.is_file()


def test_interrupted_render_leaves_no_matte_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from renderer.render import plan_render, run_render

    edit, preset = face_edit(tmp_path, monkeypatch)
    out = tmp_path / "out"
    plan = plan_render(edit, preset, out, model=trained_model())
    (job,) = plan.jobs

    def stop(p: object) -> None:
        if getattr(p, "frame") >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_render(plan, on_progress=stop)
    assert not job.output.exists() and not any(p.exists() for p in job.passes.values())
    assert not list(out.rglob(".*partial*")), list(out.rglob(".*partial*"))
    report = run_render(plan)
    assert [r.status for r in report.results] == ["ok"]
    assert all(len(decode_matte(p)) == job.frames for p in job.passes.values())


def test_signed_swap_signs_the_matte(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from renderer.provenance import init_keys, verify_media

    keys = init_keys(tmp_path / "keys")
    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("DOPPEL_SIGN_CERT", raising=False)
    monkeypatch.delenv("DOPPEL_SIGN_KEY", raising=False)
    clip = face_clip_gop(tmp_path / "face.mov", 6, "prores_hq")
    out = tmp_path / "swapped.mov"
    assert main(["swap", str(clip), "--model", str(model_dir), "--out", str(out), "--frames", "2-3", "--matte",
                 "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    result = verify_media(Path(summary["matte"]), trust_pem=keys.ca_cert)
    assert result.status == "valid" and result.trusted is True
    with av.open(summary["matte"]) as c:
        assert "Content Credentials (C2PA) signed" in c.metadata.get("comment", "")


def test_an_existing_matte_is_not_overwritten_without_force(model_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    clip = face_clip_gop(tmp_path / "face.mkv", 4, "ffv1")
    out = tmp_path / "swapped.mkv"
    matte = out.with_name("swapped.matte.mov")
    matte.write_bytes(b"an artist's refined matte")
    code = main(["swap", str(clip), "--model", str(model_dir), "--out", str(out), "--matte", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "matte" in err and str(matte) in err, err
    assert matte.read_bytes() == b"an artist's refined matte" and not out.exists()
