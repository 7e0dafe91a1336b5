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
