"""Image sequences written by other tools: the ffmpeg CLI (`-start_number 1001 shot.%04d.exr/dpx/tif/png`)
and headless Blender (half-float RGBA PIZ EXR). Frame counts and numbers come from ffprobe on the
pattern (`-start_number N -count_frames`), the frames' identity from the numbers painted into their
pixels (`tests.media_factory`), never from our own reader alone.

Also: trim keeps the kind, pixel format and frame numbers and the pixels; a SIGKILL mid-write
leaves no half sequence under the final name; bad sequences fail clearly; one C2PA sidecar per
sequence fails verification on a changed, missing or extra frame.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from renderer import media
from renderer.atomic import remove_stale_partials
from renderer.cli import main as cli_main
from renderer.errors import InputError
from renderer.media import CorruptMediaError
from tests.media.conformance import ffprobe_json
from tests.media_factory import PATCH_RGB, make_numbered_clip, patch_box, read_frame_number

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 6
START = 1001
# name -> (file suffix, ffmpeg output args): what a compositor or conform tool writes
KINDS = {
    "exr_float": (".exr", ["-pix_fmt", "gbrpf32le", "-c:v", "exr"]),
    "exr_half_rgba": (".exr", ["-pix_fmt", "gbrapf32le", "-c:v", "exr", "-format", "half", "-compression", "zip16"]),
    "dpx_10bit": (".dpx", ["-pix_fmt", "gbrp10le", "-c:v", "dpx"]),
    "tiff_16bit": (".tif", ["-pix_fmt", "rgb48le", "-c:v", "tiff"]),
    "png": (".png", ["-pix_fmt", "rgb24", "-c:v", "png"]),
}


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"`{tool}` is not installed (Debian: apt install {tool})")


def ffmpeg(*args: str) -> None:
    _need("ffmpeg")
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def ffprobe_count(pattern: Path, start: int) -> dict:
    """ffprobe's view of a sequence from frame number `start`: codec, size, pix_fmt, frames decoded."""
    _need("ffprobe")
    data = ffprobe_json(pattern, "-start_number", str(start), "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=codec_name,width,height,pix_fmt,nb_read_frames")
    return data["streams"][0]


def ffprobe_has_frame(pattern: Path, number: int) -> bool:
    proc = subprocess.run(["ffprobe", "-v", "error", "-start_number", str(number), "-start_number_range", "1",
                           str(pattern)], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The frame's samples, plane by plane as bytes (height, row bytes), exactly as decoded (row padding
    left out); a packed format (rgb24, rgb48le) is one plane of all its components."""
    name = frame.format.name
    size = 4 if "f32" in name else 2 if name.endswith(("le", "be")) or "f16" in name else 1
    per_pixel = size * (len(frame.format.components) if len(frame.planes) == 1 else 1)
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width * per_pixel].copy()
            for p in frame.planes]


def decoded(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as c:
        return next(c.decode(video=0))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sequences")


@pytest.fixture(scope="module")
def plates(work: Path) -> dict[str, Path]:
    """Each kind of sequence, written by the ffmpeg CLI from a numbered FFV1 clip (frame i shows i)."""
    clip = make_numbered_clip(work / "numbered.mkv", FRAMES, 96, 64, codec="ffv1")
    out = {}
    for name, (suffix, args) in KINDS.items():
        folder = work / "plates" / name
        folder.mkdir(parents=True)
        ffmpeg("-i", str(clip), *args, "-start_number", str(START), str(folder / f"shot.%04d{suffix}"))
        out[name] = folder / f"shot.%04d{suffix}"
    return out


@pytest.mark.parametrize("name", list(KINDS))
def test_probe_and_read_agree_with_ffprobe(plates, name):
    pattern = plates[name]
    ref = ffprobe_count(pattern, START)
    assert not ffprobe_has_frame(pattern, START - 1)  # the sequence starts at 1001, as ffprobe sees it
    for given in (pattern, pattern.parent, pattern.with_name(pattern.name.replace("%04d", "####"))):
        info = media.probe(given, rate=24)
        assert info.frames == int(ref["nb_read_frames"]) == FRAMES
        assert (info.codec, info.width, info.height) == (ref["codec_name"], ref["width"], ref["height"])
        assert info.sequence.numbers == tuple(range(START, START + FRAMES))
        assert info.fps == 24 and info.sequence.rate_source == "given"
    assert [read_frame_number(rgb) for _, rgb in media.read_frames(pattern, 0, FRAMES - 1, info)] == list(range(FRAMES))
    assert [read_frame_number(rgb) for _, rgb in media.read_frames(pattern, 3, 4, info)] == [3, 4]  # frame-exact
    if name.startswith("exr"):
        assert info.sequence.exr.pixel_type == ("half" if "half" in name else "float")
        assert media.probe(pattern).sequence.rate_source == "exr framesPerSecond"  # FFmpeg writes it


@pytest.mark.parametrize("name", list(KINDS))
def test_trim_keeps_kind_pixel_format_numbers_and_pixels(plates, work, name):
    pattern = plates[name]
    before = digest(pattern.parent)
    out = work / "trims" / name / f"cut.%04d{pattern.suffix}"
    info = media.trim(pattern, 2, 4, out)
    assert digest(pattern.parent) == before  # the source is only read
    src_ref, out_ref = ffprobe_count(pattern, START), ffprobe_count(out, START + 2)
    assert int(out_ref["nb_read_frames"]) == 3 and not ffprobe_has_frame(out, START + 1)
    assert (out_ref["codec_name"], out_ref["pix_fmt"]) == (src_ref["codec_name"], src_ref["pix_fmt"])
    assert info.sequence.numbers == (1003, 1004, 1005)
    assert sorted(p.name for p in out.parent.iterdir()) == [f"cut.{n}{pattern.suffix}" for n in (1003, 1004, 1005)]
    for n in (1003, 1004, 1005):  # every sample as the source decoded it (the files themselves may differ)
        a, b = decoded(pattern.parent / f"shot.{n}{pattern.suffix}"), decoded(out.parent / f"cut.{n}{pattern.suffix}")
        assert a.format.name == b.format.name
        assert all(np.array_equal(x, y) for x, y in zip(planes(a), planes(b)))
    if name == "exr_half_rgba":
        import OpenEXR

        channels = OpenEXR.File(str(out.parent / f"cut.1003{pattern.suffix}")).channels()
        assert channels["RGBA"].pixels.dtype == np.float16  # half stays half, alpha stays
        assert info.sequence.exr.compression == "ZIP_COMPRESSION"


def test_probe_cli_describes_a_sequence(plates, capsys):
    assert cli_main(["probe", str(plates["exr_half_rgba"]), "--rate", "24000/1001", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["frames"], data["fps"], data["container"], data["codec"]) == (FRAMES, "24000/1001", "image2", "exr")
    seq = data["sequence"]
    assert (seq["start_frame"], seq["end_frame"], seq["frame_step"], seq["rate_source"]) == (1001, 1006, 1, "given")
    assert (seq["exr"]["pixel_type"], seq["source_pix_fmt"]) == ("half", "gbrapf16le")
    assert cli_main(["probe", str(plates["dpx_10bit"].parent)]) == 0
    assert "shot.####.dpx in" in capsys.readouterr().out
    assert cli_main(["probe", str(plates["png"]), "--rate", "fast"]) == 2
    assert "--rate 'fast' is not a frame rate" in capsys.readouterr().err


def test_a_movie_trims_into_a_sequence_numbered_by_its_frames(work):
    """A movie's frames become files numbered by frame index, converted with the movie's own matrix."""
    clip = make_numbered_clip(work / "movie.mov", 8, 96, 64, codec="prores")
    out = media.trim(clip, 3, 5, work / "from_movie" / "m.%04d.tif")
    assert out.sequence.numbers == (3, 4, 5) and out.pix_fmt == "rgb48le"  # 10-bit ProRes: 16-bit TIFF
    assert [read_frame_number(rgb) for _, rgb in media.read_frames(out.path, 0, 2, out)] == [3, 4, 5]
    rows, cols = patch_box(96, 64)  # the clip's constant patch: BT.709 decoding gives it back (BT.601: 186, 46, 31)
    for _, rgb in media.read_frames(out.path, 0, 2, out):
        assert np.abs(rgb[rows, cols].reshape(-1, 3).mean(axis=0) - PATCH_RGB).max() <= 2.0


def test_trim_cli_a_sequence_into_a_movie_and_back(plates, work, capsys):
    """`doppel trim` from a DPX sequence into ProRes (numbers painted in the pixels survive) and into
    a new folder, which it refuses to reuse without --force."""
    pattern = plates["dpx_10bit"]
    movie = work / "cli" / "cut.mov"
    assert cli_main(["trim", str(pattern), "--frames", "1-3", "--out", str(movie), "--codec", "prores_hq",
                     "--rate", "24", "--quiet"]) == 0
    info = media.probe(movie)
    assert info.frames == 3 and info.fps == 24
    assert [read_frame_number(rgb) for _, rgb in media.read_frames(movie, 0, 2)] == [1, 2, 3]
    out = work / "cli" / "seq" / "cut.%04d.dpx"
    assert cli_main(["trim", str(pattern), "--frames", "0-1", "--out", str(out), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sequence"]["start_frame"] == START and summary["frames"] == 2
    assert cli_main(["trim", str(pattern), "--frames", "0-1", "--out", str(out), "--quiet"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert cli_main(["trim", str(pattern), "--frames", "4-5", "--out", str(out), "--force", "--quiet"]) == 0
    assert media.probe(out).sequence.numbers == (1005, 1006)
    (out.parent / "notes.txt").write_text("mine")
    assert cli_main(["trim", str(pattern), "--frames", "4-5", "--out", str(out), "--force", "--quiet"]) == 2
    assert (out.parent / "notes.txt").read_text() == "mine"  # a folder with other files is never replaced


BLENDER_EXR = """
import sys, bpy
src, out = sys.argv[sys.argv.index("--") + 1:]
scene = bpy.context.scene
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 96, 64, 100
scene.render.fps, scene.render.fps_base = 25, 1.0
scene.frame_start, scene.frame_end = 1001, 1004
editor = scene.sequence_editor_create()
strip = editor.sequences.new_image("plate", src + "/in.0000.png", channel=1, frame_start=1001)
for n in range(1, 4):
    strip.elements.append(f"in.{n:04d}.png")
scene.render.image_settings.file_format = "OPEN_EXR"
scene.render.image_settings.color_depth = "16"
scene.render.image_settings.color_mode = "RGBA"
scene.render.image_settings.exr_codec = "PIZ"
scene.render.filepath = out
bpy.ops.render.render(animation=True)
"""


def test_blender_half_rgba_piz_exr_sequence(work):
    """Blender's sequencer renders a numbered PNG sequence (from the ffmpeg CLI) to half-float RGBA PIZ
    EXR frames 1001-1004: read frame-exact, trimmed back as half RGBA PIZ with Blender's attributes."""
    _need("blender")
    clip = make_numbered_clip(work / "for_blender.mkv", 4, 96, 64, codec="ffv1")
    pngs = work / "blender_in"
    pngs.mkdir()
    ffmpeg("-i", str(clip), "-start_number", "0", str(pngs / "in.%04d.png"))
    script = work / "blender_exr.py"
    script.write_text(BLENDER_EXR)
    out = work / "blender_out"
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(script), "--", str(pngs),
                           str(out / "shot.####")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ref = ffprobe_count(out / "shot.%04d.exr", 1001)
    info = media.probe(out)
    assert info.frames == int(ref["nb_read_frames"]) == 4 and info.sequence.numbers == (1001, 1002, 1003, 1004)
    assert (info.sequence.exr.pixel_type, info.sequence.exr.compression) == ("half", "PIZ_COMPRESSION")
    assert info.pix_fmt == "gbrapf32le" and info.sequence.source_pix_fmt == "gbrapf16le"
    assert [read_frame_number(rgb) for _, rgb in media.read_frames(out, 0, 3, info)] == [0, 1, 2, 3]
    cut = media.trim(out, 1, 2, work / "blender_cut" / "cut.%04d.exr")
    assert cut.sequence.numbers == (1002, 1003)
    assert (cut.sequence.exr.pixel_type, cut.sequence.exr.compression) == ("half", "PIZ_COMPRESSION")
    assert cut.sequence.exr.attributes.get("Scene") == "Scene"  # Blender's own header attributes carried
    import OpenEXR

    a = OpenEXR.File(str(out / "shot.1002.exr")).channels()["RGBA"].pixels
    b = OpenEXR.File(str(work / "blender_cut" / "cut.1002.exr")).channels()["RGBA"].pixels
    assert b.dtype == np.float16 and np.array_equal(a, b)


def test_exr_rate_timecode_and_attributes_are_read_and_carried_per_frame(work):
    """EXR frames written by the OpenEXR library itself with framesPerSecond, a timeCode per frame and an
    owner: the rate and first timecode are read, and each trimmed frame keeps its own frame's attributes."""
    import OpenEXR

    folder = work / "timecoded"
    folder.mkdir()
    for k in range(4):
        tc = OpenEXR.TimeCode()
        tc.hours, tc.minutes, tc.seconds, tc.frame = 1, 0, 0, k
        rgb = np.full((16, 24, 3), 0.1 * k, np.float16)
        header = {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "framesPerSecond": (25, 1), "timeCode": tc, "owner": "Plate Co."}
        OpenEXR.File(header, {"RGB": rgb, "Z": np.ones((16, 24), np.float32)}).write(str(folder / f"tc_{101 + k}.exr"))
    info = media.probe(folder)
    assert info.warnings() == ["tc_%03d.exr: EXR channels Z are not carried; only R, G, B (and A) are read and written"]
    assert (info.fps, info.sequence.rate_source, info.sequence.numbers) == (25, "exr framesPerSecond", (101, 102, 103, 104))
    assert info.sequence.to_json()["exr"]["timecode"] == "01:00:00:00" and info.sequence.pattern.padding == 3
    cut = media.trim(folder, 1, 2, work / "timecoded_cut" / "tc_%03d.exr")
    assert cut.sequence.numbers == (102, 103)
    for n, frame in ((102, 1), (103, 2)):
        header = OpenEXR.File(str(work / "timecoded_cut" / f"tc_{n}.exr"), header_only=True).header()
        assert (header["timeCode"].hours, header["timeCode"].frame, header["owner"]) == (1, frame, "Plate Co.")
        assert str(header["compression"]).endswith("PIZ_COMPRESSION")


# ------------------------------------------------------------------ bad input


def test_bad_sequences_fail_clearly(plates, work):
    broken = work / "broken"
    shutil.copytree(plates["png"].parent, broken)
    (broken / "shot.1003.png").unlink()
    with pytest.raises(CorruptMediaError, match=r"missing 1 frame\(s\) between 1001 and 1006 \(step 1\): 1003"):
        media.probe(broken / "shot.%04d.png")
    with pytest.raises(InputError, match="no frames of .*nothing.%04d.png found"):
        media.probe(work / "nothing.%04d.png")
    two = work / "two"
    shutil.copytree(plates["png"].parent, two)
    shutil.copy(plates["dpx_10bit"].parent / "shot.1001.dpx", two / "other.1001.dpx")
    with pytest.raises(InputError, match=r"holds 2 image sequences \(other.####.dpx, shot.####.png\)"):
        media.probe(two)
    with pytest.raises(InputError, match="the frame number must come right before the suffix"):
        media.parse_sequence("shot.%04d_v2.exr")
    damaged = work / "damaged"
    shutil.copytree(plates["exr_float"].parent, damaged)
    (damaged / "shot.1004.exr").write_bytes(b"not an exr")
    info = media.probe(damaged)
    with pytest.raises(CorruptMediaError, match="shot.1004.exr does not decode"):
        list(media.read_av_frames(damaged, 0, 5, info))
    with pytest.raises(InputError, match="is the source itself"):
        media.trim(plates["png"], 0, 1, plates["png"].parent / "cut.%04d.png")


KILL_SCRIPT = """
import os, signal, sys
from renderer import media
src, out, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
def on_frame(i):
    if i == at:
        os.kill(os.getpid(), signal.SIGKILL)  # the writer dies between two frames, mid-sequence
media.trim(src, 0, 5, out, on_frame=on_frame)
"""


def test_sigkill_mid_write_leaves_no_half_sequence(plates, work):
    out = work / "killed" / "cut" / "cut.%04d.exr"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(plates["exr_half_rgba"]), str(out), "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.parent.exists()  # nothing under the final name
    leftovers = [p for p in out.parent.parent.iterdir() if p.name.startswith(".cut.partial-")]
    assert len(leftovers) == 1 and len(list(leftovers[0].iterdir())) == 3  # frames 1001-1003 were written there
    assert remove_stale_partials(out.parent) == leftovers  # the killed writer's folder is cleared
    assert media.trim(plates["exr_half_rgba"], 0, 5, out).sequence.numbers == tuple(range(START, START + 6))
    assert [p.name for p in out.parent.parent.iterdir()] == ["cut"]


# ------------------------------------------------------------------ provenance


@pytest.fixture(scope="module")
def signed(plates, work, tmp_path_factory):
    """A trimmed DPX sequence signed with a real local chain: (pattern, ca.pem)."""
    from renderer import provenance as prov

    keys = prov.init_keys(tmp_path_factory.mktemp("keys"), common_name="Sequence Test Node")
    identity = prov.SigningIdentity(keys.cert_chain, keys.key, "test")
    claim = prov.make_claim(plates["dpx_10bit"], model_name="m", identities=["A", "B"], model_card_sha256="c" * 64,
                            rights="test media only", swapped_ranges=[(0, 4)])
    final = work / "signed" / "shot" / "shot.%04d.dpx"
    with prov.signed_output(final, claim, identity, source=plates["dpx_10bit"]) as target:
        media.trim(plates["dpx_10bit"], 1, 4, target.tmp)
    assert target.result.signed and target.result.manifest == "sidecar"
    assert target.result.sidecar == final.parent / "shot.c2pa"
    assert sorted(p.name for p in final.parent.iterdir()) == [f"shot.{n}.dpx" for n in range(1002, 1006)] + ["shot.c2pa"]
    return final, keys.ca_cert


def _verify(target: Path, trust: Path, capsys) -> tuple[int, dict]:
    code = cli_main(["verify", str(target), "--trust", str(trust), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_signed_sequence_verifies_as_folder_and_pattern(signed, capsys):
    final, ca = signed
    for target in (final.parent, final, final.with_name("shot.####.dpx")):
        code, result = _verify(target, ca, capsys)
        assert (code, result["status"], result["manifest"], result["trusted"]) == (0, "valid", "sidecar", True)
    assert result["source"]["name"] == "shot.%04d.dpx"


@pytest.mark.parametrize("fault, note", [
    ("changed", "1 frame(s) changed since signing: 1003"),
    ("missing", "1 frame(s) missing since signing: 1005"),
    ("extra", "1 frame(s) extra (not signed) since signing: 1006"),
])
def test_a_changed_missing_or_extra_frame_fails_verification(signed, work, capsys, fault, note):
    final, ca = signed
    copy = work / f"tampered_{fault}" / "shot"
    shutil.copytree(final.parent, copy)
    if fault == "changed":
        data = bytearray((copy / "shot.1003.dpx").read_bytes())
        data[-100] ^= 0x01  # one bit of one pixel
        (copy / "shot.1003.dpx").write_bytes(bytes(data))
    elif fault == "missing":
        (copy / "shot.1005.dpx").unlink()
    else:
        shutil.copy(copy / "shot.1005.dpx", copy / "shot.1006.dpx")
    code, result = _verify(copy, ca, capsys)
    assert (code, result["status"]) == (1, "invalid")
    assert note in result["messages"]
    assert any("dataHash.mismatch" in f for f in result["failures"])  # the C2PA SDK's own verdict


def test_a_sequence_without_sidecar_has_no_manifest(plates, capsys):
    assert cli_main(["verify", str(plates["png"].parent)]) == 2
    assert "no sidecar shot.c2pa" in capsys.readouterr().out
