"""Presets: shipped files load, errors name file/line/key, overrides, hashing, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from renderer.cli import main
from renderer.errors import InputError
from renderer.presets import Preset, load_preset, preset_sha256, preset_to_yaml, parse_preset, shipped_presets


def test_shipped_presets_load_with_expected_outputs():
    names = set(shipped_presets())
    assert {"review", "prores_hq", "dnxhr_avid", "lossless"} <= names
    assert (load_preset("review").output.codec, load_preset("review").output.container) == ("h264", "mp4")
    hq = load_preset("prores_hq")
    assert (hq.output.codec, hq.output.container, hq.output.pix_fmt) == ("prores_hq", "mov", "yuv422p10le")
    avid = load_preset("dnxhr_avid")
    assert (avid.output.codec, avid.output.container, avid.output.audio) == ("dnxhr_hq", "mxf", "pcm")
    assert load_preset("lossless").output.codec in ("ffv1", "prores_4444")
    assert isinstance(hq, Preset)
    with pytest.raises(Exception):
        hq.handles = 3  # frozen


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    p = write(tmp_path, "detector: hog\nmask:\n  kind: hull\n\n\n\ncolour_mode: rct\n")
    with pytest.raises(InputError) as err:
        load_preset(p)
    msg = str(err.value)
    assert f"unknown key 'colour_mode' in {p} line 7; did you mean 'colour'?" in msg


def test_nested_unknown_key_and_bad_values(tmp_path):
    with pytest.raises(InputError, match=r"unknown key 'mask.feathr' .* line 3; did you mean 'feather'"):
        load_preset(write(tmp_path, "mask:\n  kind: hull\n  feathr: 0.1\n"))
    with pytest.raises(InputError, match=r"bad value 'rtc' for key 'colour' .* line 1; did you mean 'rct'"):
        load_preset(write(tmp_path, "colour: rtc\n"))
    with pytest.raises(InputError, match=r"smoothing.temporal.*line 2.*<= 1"):
        load_preset(write(tmp_path, "smoothing:\n  temporal: 1.5\n"))
    with pytest.raises(InputError, match=r"handles.*>= 0"):
        load_preset(write(tmp_path, "handles: -1\n"))
    with pytest.raises(InputError, match=r"duplicate key 'detector'.*line 2"):
        load_preset(write(tmp_path, "detector: hog\ndetector: mtcnn\n"))
    with pytest.raises(InputError, match=r"not valid YAML"):
        load_preset(write(tmp_path, "detector: [hog\n"))


def test_codec_container_audio_pairs_checked(tmp_path):
    with pytest.raises(InputError, match=r"audio 'aac' cannot go in container 'mxf'.*allowed audio for mxf: pcm, none"):
        load_preset(write(tmp_path, "output:\n  codec: dnxhr_hq\n  container: mxf\n  audio: aac\n"))
    with pytest.raises(InputError, match=r"codec 'ffv1' cannot go in container 'mp4'"):
        load_preset(write(tmp_path, "output:\n  codec: ffv1\n  container: mp4\n  audio: aac\n"))
    with pytest.raises(InputError, match=r"unknown field '\{clp\}'.*did you mean 'clip'"):
        load_preset(write(tmp_path, "output:\n  name: '{clp}_x'\n"))


def test_unsafe_yaml_tags_refused(tmp_path):
    with pytest.raises(InputError):
        load_preset(write(tmp_path, "model: !!python/object/apply:os.system ['true']\n"))


def test_missing_preset_name_suggests():
    with pytest.raises(InputError, match=r"no preset 'prores_h'.*did you mean 'prores_hq'"):
        load_preset("prores_h")


def test_overrides_aliases_dotted_and_errors():
    base = load_preset("prores_hq")
    p = base.with_overrides({"colour": "mean", "output.codec": "ffv1", "erode": "0.1", "handles": "3"}, "marker M")
    assert (p.colour, p.output.codec, p.output.container, p.mask.erode, p.handles) == ("mean", "ffv1", "mkv", 0.1, 3)
    assert base.colour == "rct"  # the original is untouched
    with pytest.raises(InputError, match=r"unknown key 'colour_mode' in marker M; did you mean 'colour'"):
        base.with_overrides({"colour_mode": "rct"}, "marker M")
    with pytest.raises(InputError, match=r"bad value 'x' for marker M key 'handles'"):
        base.with_overrides({"handles": "x"}, "marker M")
    with pytest.raises(InputError, match=r"audio 'aac' cannot go in container 'mxf'"):
        load_preset("dnxhr_avid").with_overrides({"audio": "aac"}, "marker M")


def test_forehead_reaches_the_compositor_and_is_bounded(tmp_path):
    from renderer.swap.settings import swap_settings

    p = load_preset("review").with_overrides({"forehead": "0.15"}, "marker M")
    assert (p.mask.forehead, swap_settings(p).composite.forehead) == (0.15, 0.15)
    assert swap_settings(load_preset("review")).composite.forehead == 0.0
    with pytest.raises(InputError, match=r"mask.forehead"):
        load_preset(write(tmp_path, "mask:\n  forehead: 0.9\n"))


def test_sha256_is_canonical(tmp_path):
    hq = load_preset("prores_hq")
    again = parse_preset(preset_to_yaml(hq), name="copy", path="copy.yaml")
    assert preset_sha256(again) == preset_sha256(hq)
    assert preset_sha256(hq.with_overrides({"colour": "mean"}, "m")) != preset_sha256(hq)
    assert len({preset_sha256(load_preset(n)) for n in shipped_presets()}) == len(shipped_presets())


def test_file_name_pattern():
    out = load_preset("prores_hq").output
    assert out.file_name(clip="A003/take 2", start="01:00:00:05", end="01:00:01:00") == \
        "A003_take_2_01_00_00_05-01_00_01_00.doppel.mov"


def test_cli_list_show_validate(tmp_path, capsys):
    assert main(["presets", "list", "--json"]) == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert "prores_hq" in names
    assert main(["presets", "show", "dnxhr_avid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["values"]["output.container"] == "mxf"
    good = write(tmp_path, "colour: mean\n", "good.yaml")
    assert main(["presets", "validate", str(good)]) == 0
    bad = write(tmp_path, "output:\n  codec: prores_hq\n  containr: mov\n", "bad.yaml")
    assert main(["presets", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'output.containr'" in err and "line 3" in err and "did you mean 'container'" in err


@pytest.mark.parametrize("text, key, line", [
    ("mask:\n  kind: hull\n  erode: .nan\n", "mask.erode", 3),
    ("mask:\n  feather: .NaN\n", "mask.feather", 2),
    ("smoothing:\n  temporal: .nan\n", "smoothing.temporal", 2),
    ("handles: 2\nmask:\n  erode: -.inf\n", "mask.erode", 3),
])
def test_nan_values_are_refused_with_file_and_line(tmp_path, capsys, text, key, line):
    """NaN passes every `<` and `>` bound check, so a bound alone let `.nan` through to the clip."""
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=rf"bad value -?(nan|inf) for key '{key}' in {path} line {line}; allowed: a number"):
        load_preset(path)
    assert main(["presets", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"line {line}" in err


def test_an_empty_output_name_is_refused_with_file_and_line(tmp_path, capsys):
    path = write(tmp_path, "description: x\noutput:\n  codec: h264\n  container: mov\n  name: \"\"\n")
    with pytest.raises(InputError, match=rf"empty name pattern '' \({path} line 5\); give a file name pattern"):
        load_preset(path)
    with pytest.raises(InputError, match=r"empty name pattern"):
        load_preset(write(tmp_path, "output:\n  name: '   '\n", "blank.yaml"))
    assert main(["presets", "validate", str(path)]) == 2 and "line 5" in capsys.readouterr().err


@pytest.mark.parametrize("override, key", [("nan", "erode"), ("NaN", "feather"), ("nan", "temporal"),
                                           ("inf", "temporal")])
def test_nan_marker_overrides_are_refused(override, key):
    with pytest.raises(InputError, match=rf"bad value (nan|inf) for marker M key '{key}'; allowed: a number"):
        load_preset("prores_hq").with_overrides({key: override}, "marker M")


def test_an_empty_name_override_is_refused():
    with pytest.raises(InputError, match=r"empty name pattern '' \(marker M\)"):
        load_preset("prores_hq").with_overrides({"name": ""}, "marker M")


def test_grain_detail_and_colour_smoothing_keys_reach_the_swap_settings(tmp_path):
    from renderer.swap import swap_settings

    p = load_preset(write(tmp_path, "grain: match\ndetail: 0.5\nsmoothing:\n  colour: 0.4\n"))
    s = swap_settings(p)
    assert (s.composite.grain, s.composite.detail, s.colour_smoothing) == ("match", 0.5, 0.4)
    marker = load_preset("review").with_overrides({"grain": "match", "colour_smoothing": "0.3"}, "marker M")
    assert (marker.grain, marker.smoothing.colour) == ("match", 0.3)
    with pytest.raises(InputError, match=r"grain.*line 1"):
        load_preset(write(tmp_path, "grain: matched\n", "bad.yaml"))
    with pytest.raises(InputError, match=r"detail"):
        load_preset(write(tmp_path, "detail: 3\n", "bad2.yaml"))


def test_matte_pass_keys(tmp_path):
    p = load_preset(write(tmp_path, "output:\n  codec: ffv1\n  container: mkv\n  matte: true\n"))
    assert p.output.matte is True and p.output.plate is False
    assert parse_preset(preset_to_yaml(p), name="x", path="x.yaml") == Preset(**{**p.__dict__, "name": "x",
                                                                              "source": "x.yaml"})
    with pytest.raises(InputError, match=r"bad value 'sometimes' for key 'output.matte' .* line 4; allowed: true or false"):
        load_preset(write(tmp_path, "output:\n  codec: ffv1\n  container: mkv\n  matte: sometimes\n"))
    marked = p.with_overrides({"plate": "yes", "matte": "off"}, "marker M")
    assert (marked.output.matte, marked.output.plate) == (False, True)
    assert preset_sha256(marked) != preset_sha256(p)  # a matte pass is a different render (resume re-renders)
    with pytest.raises(InputError, match=r"marker M key 'matte'.*true or false"):
        p.with_overrides({"matte": "maybe"}, "marker M")
