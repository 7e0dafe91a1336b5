"""The matte pass of an image-sequence swap: the mask and plate come back as sequences beside it.

One real talking head, as the ffmpeg CLI writes it three ways from the same RGB frames: a PNG
sequence, a float EXR sequence and a lossless RGB FFV1 movie. The movie's matte (ProRes 4444,
the path the matte pass had) is the reference: the EXR matte's float mask, read with the
`OpenEXR` module, rounds to exactly the movie's 10-bit alpha on every pixel of every frame; the
PNG matte, read by the ffmpeg CLI, is the same mask at 16 bits. Frame numbers are the source's
(ffprobe on the pattern). A SIGKILL mid-write leaves neither the render nor its matte under its
final name.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from renderer import media
from renderer.atomic import remove_stale_partials
from renderer.cli import main as cli_main
from renderer.media.matte_sequence import read_sequence_matte
from tests.media.test_sequences import ROOT, ffmpeg, ffprobe_count, ffprobe_has_frame

START = 1001
FRAMES = 4


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("matte_sequence")


@pytest.fixture(autouse=True)
def _no_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "no-keys"))
    monkeypatch.delenv("DOPPEL_SIGN_CERT", raising=False)
    monkeypatch.delenv("DOPPEL_SIGN_KEY", raising=False)


@pytest.fixture(scope="module")
def sources(work: Path) -> dict[str, Path]:
    """The same real-face RGB frames as a PNG sequence, a float EXR sequence and an RGB FFV1 movie."""
    from tests.model_fixtures import face_clip

    clip = face_clip(work / "face.mkv", frames=FRAMES, codec="ffv1")
    png, exr = work / "png", work / "exr"
    png.mkdir()
    exr.mkdir()
    ffmpeg("-i", str(clip), "-pix_fmt", "rgb24", "-start_number", str(START), str(png / "face.%04d.png"))
    pattern = str(png / "face.%04d.png")
    ffmpeg("-start_number", str(START), "-i", pattern, "-c:v", "ffv1", "-pix_fmt", "gbrp", str(work / "rgb.mkv"))
    ffmpeg("-start_number", str(START), "-i", pattern, "-pix_fmt", "gbrpf32le", "-c:v", "exr", "-start_number",
           str(START), str(exr / "face.%04d.exr"))
    return {"png": png / "face.%04d.png", "exr": exr / "face.%04d.exr", "movie": work / "rgb.mkv"}


@pytest.fixture(scope="module")
def swapped(work: Path, sources: dict[str, Path]) -> dict[str, Path]:
    """`doppel swap --matte` of each source (the sequences with --plate too): the outputs."""
    from tests.model_fixtures import trained_model

    model = str(trained_model())
    outs = {"movie": work / "mov" / "out.mkv", "png": work / "png_out" / "face.%04d.png",
            "exr": work / "exr_out" / "face.%04d.exr"}
    for kind, out in outs.items():
        extra = ["--codec", "ffv1"] if kind == "movie" else ["--plate", "--rate", "25"]
        assert cli_main(["swap", str(sources[kind]), "--model", model, "--out", str(out), "--matte", "--no-progress",
                         "--json", *extra]) == 0
    return outs


def test_exr_and_png_mattes_are_the_movie_paths_blend_mask(swapped, capsys):
    capsys.readouterr()
    reference = media.decode_matte(media.matte_paths(swapped["movie"])[0])  # (H, W) uint16 0..1023 per frame
    assert len(reference) == FRAMES and all(int(a.max()) == 1023 for a in reference)  # a face on every frame
    import OpenEXR

    matte, plate = media.matte_paths(swapped["exr"])
    assert (matte.parent.name, matte.name) == ("exr_out.matte", "face.matte.%04d.exr")
    assert plate.parent.name == "exr_out.plate"
    exr_masks = {}
    for k, number in enumerate(range(START, START + FRAMES)):
        frame = str(matte.parent / f"face.matte.{number}.exr")
        header = OpenEXR.File(frame, header_only=True).header()
        with OpenEXR.File(frame) as f:
            channels = f.channels()
            assert set(channels) == {"Y", "A"}
            a, y = np.asarray(channels["A"].pixels), np.asarray(channels["Y"].pixels)
        assert a.dtype == np.float32 and np.array_equal(a, y)
        assert np.array_equal(np.rint(a * 1023).astype(np.uint16), reference[k])  # exactly the movie's alpha
        assert header["comment"].startswith("SYNTHETIC MEDIA MATTE")
        exr_masks[number] = a
    # The PNG matte, decoded by the ffmpeg CLI: the same mask, rounded at 16 bits.
    png_matte = media.matte_paths(swapped["png"])[0]
    assert ffprobe_count(png_matte, START)["pix_fmt"] == "gray16be"
    assert int(ffprobe_count(png_matte, START)["nb_read_frames"]) == FRAMES
    assert not ffprobe_has_frame(png_matte, START - 1)
    h, w = reference[0].shape
    raw = subprocess.run(["ffmpeg", "-v", "error", "-start_number", str(START), "-i", str(png_matte), "-f", "rawvideo",
                          "-pix_fmt", "gray16le", "-"], capture_output=True, check=True, timeout=60).stdout
    grey = np.frombuffer(raw, np.uint16).reshape(FRAMES, h, w)
    for k, number in enumerate(range(START, START + FRAMES)):
        assert np.array_equal(grey[k], np.rint(exr_masks[number] * 65535).astype(np.uint16))
        assert np.abs(np.rint(grey[k] / 65535 * 1023) - reference[k]).max() <= 1


def test_plate_is_the_face_that_was_blended(swapped, sources):
    """Where the mask is 1 the render shows the plate's face; the plate's alpha is the matte."""
    import OpenEXR

    matte, plate = media.matte_paths(swapped["exr"])
    out = swapped["exr"].parent
    for number in range(START, START + FRAMES):
        with OpenEXR.File(str(plate.parent / f"face.plate.{number}.exr")) as f:
            rgba = np.asarray(f.channels()["RGBA"].pixels)  # the module groups R, G, B, A: (H, W, 4)
        assert rgba.dtype == np.float32
        with OpenEXR.File(str(matte.parent / f"face.matte.{number}.exr")) as f:
            assert np.array_equal(rgba[..., 3], np.asarray(f.channels()["A"].pixels))
        with OpenEXR.File(str(out / f"face.{number}.exr")) as f:
            rgb = np.asarray(f.channels()["RGB"].pixels)
        full = rgba[..., 3] == 1.0
        assert full.sum() > 1000
        assert np.allclose(rgba[full][:, :3], rgb[full], atol=1e-5)
        assert not rgba[rgba[..., 3] == 0][:, :3].any()  # black and transparent outside the mask
    # PNG plate: 16-bit RGBA, the face's 8-bit values scaled by 257, alpha the 16-bit matte.
    png_plate = media.matte_paths(swapped["png"])[1]
    assert ffprobe_count(png_plate, START)["pix_fmt"] == "rgba64be"


def test_sigkill_mid_swap_leaves_no_render_and_no_matte(sources, work):
    out = work / "killed" / "shot" / "shot.%04d.exr"
    script = """
import os, signal, sys
from pathlib import Path
from renderer import media
from renderer.swap import SwapSettings, render_range
from tests.model_fixtures import trained_model
src, out = Path(sys.argv[1]), Path(sys.argv[2])
info = media.probe(src)
matte, plate = media.matte_paths(out)
def progress(done, total):
    if done == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # between two frames: render and matte half written
with media.open_matte_writer(info, 0, info.frames - 1, matte=matte, plate=plate) as mw:
    render_range(src, out, model_dir=trained_model(), settings=SwapSettings(), first=0, last=info.frames - 1,
                 swap_ranges=[(0, info.frames - 1)], codec="sequence", matte=mw, progress=progress)
"""
    proc = subprocess.run([sys.executable, "-c", script, str(sources["exr"]), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    parent = out.parent.parent
    assert sorted(p.name for p in parent.iterdir() if not p.name.startswith(".")) == []  # nothing final
    hidden = list(parent.iterdir())  # render, matte and plate: each was being written in its hidden folder
    assert len(hidden) == 3 and all(".partial-" in p.name and p.is_dir() for p in hidden)
    assert sorted(len(list(p.iterdir())) for p in hidden) == [2, 2, 2]  # two frames each when it died
    for final in (out.parent, *(p.parent for p in media.matte_paths(out))):
        remove_stale_partials(final)  # what the next run does before writing
    assert list(parent.iterdir()) == []


def test_render_of_a_movie_into_a_sequence_numbers_the_matte_by_frame(sources, work, capsys):
    """A movie swapped into a PNG sequence: the matte sequence is numbered by frame index like the render."""
    from tests.model_fixtures import trained_model

    out = work / "mov2seq" / "m.%03d.png"
    assert cli_main(["swap", str(sources["movie"]), "--model", str(trained_model()), "--out", str(out), "--matte",
                     "--frames", "1-2", "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["matte"] == str(work / "mov2seq.matte" / "m.matte.%03d.png") and summary["plate"] is None
    matte = media.probe(summary["matte"])
    assert matte.sequence.numbers == media.probe(out).sequence.numbers == (0, 1, 2, 3)
    masks = [a for _, a in sorted(read_sequence_matte(Path(summary["matte"])).items())]
    assert masks[0].max() == 0 and masks[3].max() == 0 and masks[1].max() == 1.0  # only frames 1-2 swapped
