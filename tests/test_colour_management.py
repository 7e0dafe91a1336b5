"""renderer.colour_management: an ARRI LogC shot swaps like the Rec.709 footage it was made from.

The LogC clip is made from the real talking-head footage with the reference tools, not with
Doppel: PyOpenColorIO converts the Rec.709 frames (as the Rec.709 swap decodes them) into
ARRI LogC3 with the ACES studio config built into the package, and the ffmpeg CLI writes
them losslessly at 16 bits (FFV1, yuv444p16le). It is read back with PyAV straight from the
coded samples.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import PyOpenColorIO as ocio
import pytest

from renderer import media
from renderer.cli import main
from renderer.colour_management import BUILTIN_CONFIG, ColourManagement, ColourSpaces, check_space, load_config
from renderer.errors import InputError
from renderer.faces.track import find_faces
from renderer.swap import SwapModel, SwapSettings, render_range
from tests.model_fixtures import face_clip, trained_model

FRAMES = 10
LOGC = "ARRI LogC3 (EI800)"
DISPLAY = "Rec.1886 Rec.709 - Display"
SWAP = (2, 8)  # frames swapped; the others pass through


@pytest.fixture(scope="module")
def model() -> SwapModel:
    return SwapModel(trained_model(), "a2b", "cpu")


def log_clip(rec709: Path, out: Path, space: str = LOGC) -> Path:
    """`rec709`'s frames as decoded, converted by PyOpenColorIO from Rec.709 display into `space` and
    written by the ffmpeg CLI as 16-bit FFV1 (yuv444p16le, BT.709 matrix, limited range)."""
    info = media.probe(rec709)
    frames = np.stack([rgb for _, rgb in media.read_frames(rec709, 0, info.frames - 1, info)])  # (N, H, W, 3) uint8
    to_log = ocio.Config.CreateFromFile(BUILTIN_CONFIG).getProcessor(DISPLAY, space).getDefaultCPUProcessor()
    log = frames.astype(np.float32) / 255.0
    to_log.applyRGB(log)
    raw = np.rint(np.clip(log, 0.0, 1.0) * 65535.0).astype("<u2").tobytes()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-s", f"{info.width}x{info.height}",
         "-r", str(info.fps), "-i", "-", "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-c:v", "ffv1",
         "-level", "3", "-pix_fmt", "yuv444p16le", "-colorspace", "bt709", "-color_primaries", "bt709",
         "-color_trc", "bt709", "-color_range", "tv", str(out)],
        input=raw, check=True)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Rec.709 clip (8-bit FFV1) and the same frames in LogC3 (16-bit FFV1, written by ffmpeg)."""
    d = tmp_path_factory.mktemp("ocio")
    rec709 = face_clip(d / "rec709.mkv", frames=FRAMES, codec="ffv1")
    return {"rec709": rec709, "logc": log_clip(rec709, d / "logc.mkv")}


def decoded(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame: (coded samples (3, H, W) or None, RGB float32 (H, W, 3) in [0, 1] at the file's depth), by PyAV."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            # yuv444p / yuv444p16le: (3, H, W) Y, U, V samples (other formats: only the RGB is compared)
            planes = (np.moveaxis(frame.to_ndarray(), -1, 0).copy()
                      if frame.format.name in ("yuv444p", "yuv444p16le") else None)
            rgb = frame.to_ndarray(format="gbrpf32le", src_colorspace="ITU709", dst_colorspace="ITU709",
                                   src_color_range="MPEG", dst_color_range="JPEG")
            out.append((planes, np.asarray(rgb, np.float32)))
    return out


def display_errors(rec709: Path, swap709: Path, log: Path, swaplog: Path, space: str,
                   swapped: tuple[int, int]) -> tuple[list[float], list[float]]:
    """Per swapped frame: mean |log swap in display - Rec.709 swap| over the inner face, in display
    code values, and how much the Rec.709 swap changed that face. Asserts that frames outside
    `swapped` and coded samples far from the face are the log source's own, bit for bit."""
    to_display = ocio.Config.CreateFromFile(BUILTIN_CONFIG).getProcessor(space, DISPLAY).getDefaultCPUProcessor()
    src709, out709, srclog, outlog = decoded(rec709), decoded(swap709), decoded(log), decoded(swaplog)
    errors, changes = [], []
    for i in range(len(srclog)):
        if not swapped[0] <= i <= swapped[1]:
            assert np.array_equal(srclog[i][0], outlog[i][0]), f"frame {i} outside the swap range changed"
            continue
        ref = np.rint(out709[i][1] * 255.0)  # the Rec.709 swap, display code values
        inner, far = face_regions(np.rint(src709[i][1] * 255.0).astype(np.uint8))
        # Every coded 16-bit sample far from the face is the source's own: nothing there was converted.
        assert np.array_equal(srclog[i][0][:, far], outlog[i][0][:, far]), f"frame {i}: pixels away from the face changed"
        display = outlog[i][1].copy()
        to_display.applyRGB(display)
        display = np.clip(display, 0.0, 1.0) * 255.0
        errors.append(float(np.abs(display[inner] - ref[inner]).mean()))
        changes.append(float(np.abs(ref[inner] - np.rint(src709[i][1] * 255.0)[inner]).mean()))
    return errors, changes


def face_regions(rgb_u8: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """(inner face slice, bool mask of pixels far from the face) of a Rec.709 frame."""
    face = find_faces(rgb_u8)[0]
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    far = np.ones(rgb_u8.shape[:2], bool)
    far[max(0, int(y0 - h)): int(y1 + h), max(0, int(x0 - w)): int(x1 + w)] = False
    inner = (slice(int(y0 + 0.3 * h), int(y1 - 0.1 * h)), slice(int(x0 + 0.2 * w), int(x1 - 0.2 * w)))
    return inner, far


def test_logc_clip_swaps_like_the_rec709_footage(clips: dict[str, Path], model: SwapModel, tmp_path: Path) -> None:
    out709, outlog = tmp_path / "rec709.swap.mkv", tmp_path / "logc.swap.mkv"
    render_range(clips["rec709"], out709, model_dir=Path(), model=model, settings=SwapSettings(), first=0,
                 last=FRAMES - 1, swap_ranges=[SWAP], codec="ffv1")
    cm = ColourManagement.open(ColourSpaces(BUILTIN_CONFIG, "arri_logc3_ei800", DISPLAY))  # an alias is fine
    stats = render_range(clips["logc"], outlog, model_dir=Path(), model=model, settings=SwapSettings(colour=cm),
                         first=0, last=FRAMES - 1, swap_ranges=[SWAP], codec="ffv1", pix_fmt="yuv444p16le")
    assert stats.swapped == SWAP[1] - SWAP[0] + 1 and stats.faces == stats.swapped
    assert media.probe(outlog).pix_fmt == "yuv444p16le"
    errors, changes = display_errors(clips["rec709"], out709, clips["logc"], outlog, LOGC, SWAP)
    mean_error, mean_change = float(np.mean(errors)), float(np.mean(changes))
    print(f"\nLogC swap vs Rec.709 swap, face (display code values): mean abs error {mean_error:.2f} "
          f"(per frame {', '.join(f'{e:.2f}' for e in errors)}); the swap itself changed the face by {mean_change:.2f}")
    assert mean_change > 3.0, "the Rec.709 swap barely changed the face: the comparison would prove nothing"
    assert mean_error < 3.0, f"the LogC swap's face differs from the Rec.709 swap's by {mean_error:.2f} code values"


def test_unmanaged_logc_swap_is_visibly_wrong(clips: dict[str, Path], model: SwapModel, tmp_path: Path) -> None:
    """The control: without colour management the LogC face is not what the Rec.709 swap gives."""
    out709, outlog = tmp_path / "rec709.swap.mkv", tmp_path / "logc.raw.mkv"
    frame = (SWAP[0] + SWAP[1]) // 2
    render_range(clips["rec709"], out709, model_dir=Path(), model=model, settings=SwapSettings(), first=frame,
                 last=frame, swap_ranges=[SWAP], codec="ffv1")
    render_range(clips["logc"], outlog, model_dir=Path(), model=model, settings=SwapSettings(), first=frame,
                 last=frame, swap_ranges=[SWAP], codec="ffv1", pix_fmt="yuv444p16le")
    to_display = ocio.Config.CreateFromFile(BUILTIN_CONFIG).getProcessor(LOGC, DISPLAY).getDefaultCPUProcessor()
    ref = np.rint(decoded(out709)[0][1] * 255.0)
    display = decoded(outlog)[0][1].copy()
    to_display.applyRGB(display)
    inner, _ = face_regions(np.rint(decoded(clips["rec709"])[frame][1] * 255.0).astype(np.uint8))
    error = float(np.abs(np.clip(display, 0, 1)[inner] * 255.0 - ref[inner]).mean())
    assert error > 6.0, f"unmanaged LogC swap is only {error:.2f} code values from the Rec.709 swap"


def test_round_trip_and_shapes() -> None:
    cm = ColourManagement.open(ColourSpaces(BUILTIN_CONFIG, "ACEScct", DISPLAY))
    rng = np.random.default_rng(0)
    display = rng.uniform(0.02, 0.98, (7, 5, 3)).astype(np.float32)
    log = cm.to_source(display)
    assert log.dtype == np.float32 and log.shape == display.shape and not np.shares_memory(log, display)
    assert np.abs(log - display).max() > 0.05, "ACEScct should not equal display RGB"
    assert np.abs(cm.to_working(log) - display).max() < 1e-3
    batch = rng.uniform(0, 1, (2, 4, 4, 3)).astype(np.float32)  # (N, S, S, 3) crops convert as one array
    assert np.allclose(cm.to_working(batch)[1], cm.to_working(batch[1]))
    with pytest.raises(InputError, match="float32"):
        cm.to_working(np.zeros((4, 4, 3), np.uint8))


def test_unknown_space_names_the_closest_and_the_config_list() -> None:
    config = load_config(BUILTIN_CONFIG)
    with pytest.raises(InputError) as err:
        check_space(config, "ARRI LogC3", "colour_management.source_space", BUILTIN_CONFIG)
    text = str(err.value)
    assert "unknown colour space 'ARRI LogC3'" in text and "did you mean 'ARRI LogC" in text
    assert "ACEScct" in text and "S-Log3 S-Gamut3" in text and "\n" not in text
    assert check_space(config, "acescct", "x") == "ACEScct"


def test_bad_config_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "studio.ocio"
    broken.write_text("ocio_profile_version: 2\nroles: [not, a, mapping\n")
    for config in (tmp_path / "missing.ocio", broken, "ocio://no-such-config"):
        preset = tmp_path / "p.yaml"
        preset.write_text(f"colour_management:\n  config: {config}\n  source_space: ACEScct\n")
        assert main(["presets", "validate", str(preset)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "OCIO config" in err and "p.yaml line 2" in err, err


# ---------------------------------------------------------------- presets, faceset, train, model card


def studio_config(folder: Path) -> Path:
    """A studio's own config file: the built-in studio config written out by PyOpenColorIO."""
    path = folder / "studio.ocio"
    path.write_text(ocio.Config.CreateFromFile(BUILTIN_CONFIG).serialize())
    return path


def test_preset_keys_resolve_aliases_and_a_studio_config_beside_the_preset(tmp_path: Path) -> None:
    from renderer.presets import load_preset, parse_preset, preset_sha256
    from renderer.swap import swap_settings

    studio_config(tmp_path)
    path = tmp_path / "logc.yaml"
    path.write_text("colour_management:\n  config: studio.ocio\n  source_space: arri_logc3_ei800\n")
    preset = load_preset(path)
    cm = preset.colour_management
    assert cm.enabled and cm.config == str(tmp_path / "studio.ocio")
    assert (cm.source_space, cm.working_space) == (LOGC, DISPLAY)
    settings = swap_settings(preset)
    assert settings.colour is not None and settings.colour.spaces.source_space == LOGC
    plain = parse_preset("", name="plain", path="plain.yaml")
    assert not plain.colour_management.enabled and swap_settings(plain).colour is None
    assert preset_sha256(preset) != preset_sha256(plain)
    marked = plain.with_overrides({"source_space": "acescct"}, "edit.otio clip 'A003' marker")
    assert marked.colour_management.source_space == "ACEScct"
    with pytest.raises(InputError, match=r"unknown colour space 'S-Log 3'.*marker.*did you mean 'S-Log3 S-Gamut3"):
        plain.with_overrides({"source_space": "S-Log 3"}, "edit.otio clip 'A003' marker")
    with pytest.raises(InputError, match=r"working_space' in w.yaml line 2.*allowed: sRGB - Display"):
        parse_preset("colour_management:\n  working_space: Rec709\n", name="w", path="w.yaml")


def test_presets_keys_lists_the_spaces_of_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "keys"]) == 0
    out = capsys.readouterr().out
    assert "colour_management.source_space" in out and "colour spaces of ocio://studio-config-latest" in out
    assert f"  {LOGC}\n" in out and "  ACEScct\n" in out
    assert main(["presets", "keys", "--json", "--config", str(studio_config(tmp_path))]) == 0
    import json

    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert LOGC in rows["colour_management.source_space"]["spaces"]


def test_faceset_records_its_space_and_train_refuses_a_mix(tmp_path: Path) -> None:
    from renderer.extract import extract
    from renderer.faceset import load_faceset
    from renderer.train import open_facesets
    from tests import face_data as F

    photo = F.kphotoalbum_file(F.JESPER[0])
    managed, plain = tmp_path / "managed", tmp_path / "plain"
    extract([photo], managed, size=64, progress=False,
            colour=ColourSpaces(BUILTIN_CONFIG, "sRGB Encoded Rec.709 (sRGB)", DISPLAY))
    extract([photo], plain, size=64, progress=False)
    fs = load_faceset(managed)
    assert (fs.colour_space, fs.colour_config) == (DISPLAY, BUILTIN_CONFIG) and len(fs) == 1
    assert load_faceset(plain).colour_space is None
    # The crop was cut from the frame converted to the working space: its levels are PyOpenColorIO's
    # own conversion of the unmanaged crop (faces found on the converted frame land a little apart,
    # so compare the means), and far from the unmanaged crop's.
    ref = load_faceset(plain).load_images()[0].astype(np.float32) / 255.0
    ocio.Config.CreateFromFile(BUILTIN_CONFIG).getProcessor("sRGB Encoded Rec.709 (sRGB)", DISPLAY) \
        .getDefaultCPUProcessor().applyRGB(ref)
    got = fs.load_images()[0].astype(np.float32)
    assert abs(got.mean() - np.rint(ref * 255.0).mean()) < 1.0
    assert np.abs(got - load_faceset(plain).load_images()[0]).mean() > 3.0
    assert open_facesets(managed, managed)[0].colour_space == DISPLAY
    with pytest.raises(InputError) as err:
        open_facesets(managed, plain)
    text = str(err.value)
    assert "different colour spaces" in text and repr(DISPLAY) in text and "undeclared" in text
    assert "--working-space" in text
    from renderer.modelcard import load_model_card
    from renderer.train import TrainConfig, train
    from tests.train_data import tiny_config

    model_dir = tmp_path / "model"  # one iteration of a 32 px network: the card is what is tested
    train(TrainConfig(faceset_a=managed, faceset_b=managed, out=model_dir, rights="Jesper, KPhotoAlbum demo data",
                      model_config=tiny_config(), iterations=1, batch=2, save_every=1, device="cpu", threads=1,
                      preview_faces=1), progress=False)
    assert (load_model_card(model_dir).working_space, load_model_card(model_dir).colour_config) == (DISPLAY, BUILTIN_CONFIG)


def test_model_card_states_its_working_space_and_the_swap_checks_it(tmp_path: Path) -> None:
    import yaml

    from renderer.modelcard import card_text, load_model_card, model_card_from_dict
    from renderer.swap.faces import FaceSwapper
    from renderer.swap.settings import SwapStats

    shipped = trained_model()
    card = load_model_card(shipped)
    data = yaml.safe_load(card_text(card))
    assert data["colour"]["working_space"] is None and "undeclared" in data["colour"]["note"]
    data["colour"] = {"working_space": DISPLAY, "config": BUILTIN_CONFIG}
    again = model_card_from_dict(yaml.safe_load(card_text(model_card_from_dict(data, "card"))), "card")
    assert (again.working_space, again.colour_config) == (DISPLAY, BUILTIN_CONFIG)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").symlink_to((shipped / "model.safetensors").resolve())
    (model_dir / "model.yaml").write_text(card_text(again))
    model = SwapModel(model_dir, "a2b", "cpu")
    from fractions import Fraction

    other = ColourManagement.open(ColourSpaces(BUILTIN_CONFIG, LOGC, "sRGB - Display"))
    with pytest.raises(InputError, match=r"working_space is 'sRGB - Display', but the model learned in 'Rec.1886"):
        FaceSwapper(model, SwapSettings(colour=other), Fraction(25), "ITU709", "MPEG", SwapStats())
    right = ColourManagement.open(ColourSpaces(BUILTIN_CONFIG, LOGC, DISPLAY))
    FaceSwapper(model, SwapSettings(colour=right), Fraction(25), "ITU709", "MPEG", SwapStats())


def test_cli_swap_with_the_shipped_logc3_preset(clips: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The README's worked example: `doppel swap` a LogC3 clip with `--preset logc3` (ProRes 4444 out)."""
    import json

    out = tmp_path / "logc.swap.mov"
    code = main(["swap", str(clips["logc"]), "--model", str(trained_model()), "--out", str(out),
                 "--preset", "logc3", "--frames", "3-4", "--plate", "--json", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["swapped"] == 2 and summary["codec"] == "prores_4444" and summary["frames"] == FRAMES
    info = media.probe(out)
    assert info.pix_fmt in ("yuv444p10le", "yuv444p12le") and info.frames == FRAMES  # FFmpeg decodes 4444 as 12-bit
    # The plate (the unblended face) is laid over the source, so it is in the source's space: LogC3,
    # like the output where the face replaced the picture, not Rec.709.
    plate = Path(summary["plate"])
    assert media.probe(plate).frames == FRAMES
    inner, _ = face_regions(np.rint(decoded(clips["rec709"])[3][1] * 255.0).astype(np.uint8))
    face_out, face_plate = decoded(out)[3][1][inner], decoded(plate)[3][1][inner]
    assert abs(float(face_plate.mean()) - float(face_out.mean())) < 0.02
    assert abs(float(decoded(clips["rec709"])[3][1][inner].mean()) - float(face_plate.mean())) > 0.05
    bad = tmp_path / "bad.yaml"
    bad.write_text("colour_management:\n  source_space: LogC3\n")
    assert main(["swap", str(clips["logc"]), "--model", str(trained_model()), "--out", str(tmp_path / "x.mov"),
                 "--preset", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown colour space 'LogC3'" in err and "ARRI LogC3 (EI800)" in err
    assert not (tmp_path / "x.mov").exists()


def test_colour_managed_swap_example_runs(clips: dict[str, Path], tmp_path: Path) -> None:
    from tests.model_fixtures import ROOT

    out = tmp_path / "out.mkv"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "colour_managed_swap.py"), str(clips["logc"]),
                           "arri_logc3_ei800", str(trained_model()), str(out)], capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert f"{FRAMES}/{FRAMES} frames swapped in '{DISPLAY}' from '{LOGC}'" in proc.stdout
    assert media.probe(out).pix_fmt == "yuv444p16le"


def test_grain_is_measured_in_the_working_space(clips: dict[str, Path]) -> None:
    """grain: match adds grain to the working-space face, so the source's grain is measured there too."""
    from renderer.composite import CompositeSettings, face_mask, landmarks_to_crop
    from renderer.composite.paste import _ring_levels, paste_box

    rgb709 = np.rint(decoded(clips["rec709"])[4][1] * 255.0).astype(np.uint8)
    log = np.rint(decoded(clips["logc"])[4][1] * 255.0).astype(np.uint8)  # 8-bit log picture of the same frame
    face = find_faces(rgb709, crop_size=64)[0]
    mask = face_mask(landmarks_to_crop(face.landmarks, face.crop_from_frame), 64, CompositeSettings())
    frame_from_crop = face.frame_from_crop
    box = paste_box(mask, frame_from_crop, rgb709.shape[:2])
    cm = ColourManagement.open(ColourSpaces(BUILTIN_CONFIG, LOGC, DISPLAY))
    want = _ring_levels(rgb709, mask, frame_from_crop, box)
    managed = _ring_levels(log, mask, frame_from_crop, box, cm)
    raw = _ring_levels(log, mask, frame_from_crop, box)
    assert want is not None and managed is not None and raw is not None
    print(f"\ngrain grey level: Rec.709 {want[1]:.3f}, LogC measured in Rec.709 {managed[1]:.3f}, LogC as coded {raw[1]:.3f}")
    assert abs(managed[1] - want[1]) < 0.25 * want[1], (managed[1], want[1])
    assert raw[1] < 0.75 * want[1], (raw[1], want[1])
