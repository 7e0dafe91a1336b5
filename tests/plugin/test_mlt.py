"""MLT writer: XML structure, timecode -> frame-0 offsets, and a frame-exact render with Debian's melt."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction

import opentimelineio as otio
import pytest
from tests.media_factory import cached_clip, read_frame_number
from tests.melt import melt_render

from plugin.mlt import timeline_to_mlt, write_mlt
from renderer import media
from renderer.errors import InputError

RATE = 25.0
W, H = 160, 96
RT = lambda v: otio.opentime.RationalTime(v, RATE)  # noqa: E731
TR = lambda s, d: otio.opentime.TimeRange(RT(s), RT(d))  # noqa: E731
TC = 90000  # 01:00:00:00 at 25 fps


def _clips():
    original = cached_clip("mlt-orig", frames=60, width=W, height=H, fps=Fraction(25), timecode="01:00:00:00")
    swapped = cached_clip("mlt-swap", frames=200, width=W, height=H, fps=Fraction(25))
    return original, swapped


def _clip(name, path, avail, src):
    ref = otio.schema.ExternalReference(path.as_uri(), avail)
    return otio.schema.Clip(name, ref, src)


def _return_edit(original, swapped):
    """V1: the original (timecoded 01:00:00:00) at record 0..39 (media 0..39) and 40..49 (media 50..59);
    FACESWAP: the 'swapped' clip at record 10..24 (media 100..114) and 42..46 (media 150..154)."""
    tl = otio.schema.Timeline("cut")
    v1 = otio.schema.Track("V1")
    v1.append(_clip("o1", original, TR(TC, 60), TR(TC, 40)))
    v1.append(_clip("o2", original, TR(TC, 60), TR(TC + 50, 10)))
    fs = otio.schema.Track("FACESWAP")
    fs.append(otio.schema.Gap(source_range=TR(0, 10)))
    fs.append(_clip("s1", swapped, TR(0, 200), TR(100, 15)))
    fs.append(otio.schema.Gap(source_range=TR(0, 17)))
    fs.append(_clip("s2", swapped, TR(0, 200), TR(150, 5)))
    tl.tracks.extend([v1, fs])
    return tl


def expected(k: int) -> int:
    if 10 <= k < 25:
        return 100 + k - 10
    if 42 <= k < 47:
        return 150 + k - 42
    return k if k < 40 else 50 + k - 40


def test_mlt_xml_offsets_and_bounds(tmp_path):
    original, swapped = _clips()
    doc = ET.fromstring(timeline_to_mlt(_return_edit(original, swapped)))
    profile = doc.find("profile")
    assert (profile.get("width"), profile.get("height"), profile.get("frame_rate_num")) == ("160", "96", "25")
    assert doc.find("tractor").get("out") == "49"
    v0 = [(e.tag, e.get("in"), e.get("out"), e.get("length")) for e in doc.find("playlist[@id='video0']")
          if e.tag != "property"]
    assert v0 == [("entry", "0", "39", None), ("entry", "50", "59", None)]
    v1 = [(e.tag, e.get("in"), e.get("out"), e.get("length")) for e in doc.find("playlist[@id='video1']")
          if e.tag != "property"]
    assert v1 == [("blank", None, None, "10"), ("entry", "100", "114", None), ("blank", None, None, "17"),
                  ("entry", "150", "154", None)]


def test_mlt_without_available_range_uses_media_timecode(tmp_path):
    original, _ = _clips()
    tl = otio.schema.Timeline("edl-like")
    tr = otio.schema.Track("V1")
    tr.append(otio.schema.Clip("o", otio.schema.ExternalReference(original.as_uri()), TR(TC + 7, 5)))
    tl.tracks.append(tr)
    doc = ET.fromstring(timeline_to_mlt(tl))
    (entry,) = doc.find("playlist[@id='video0']").findall("entry")
    assert (entry.get("in"), entry.get("out")) == ("7", "11")


def test_mlt_bad_input(tmp_path):
    original, _ = _clips()
    tl = otio.schema.Timeline("bad")
    tr = otio.schema.Track("V1")
    tr.append(_clip("early", original, TR(TC, 60), TR(TC - 5, 10)))
    tl.tracks.append(tr)
    with pytest.raises(InputError, match="'early'.*starts 5 frames before its media"):
        timeline_to_mlt(tl)
    with pytest.raises(InputError, match="holds no clips"):
        timeline_to_mlt(otio.schema.Timeline("empty"))
    with pytest.raises(InputError, match=r"should end in \.mlt"):
        write_mlt(_return_edit(*_clips()), tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    with pytest.raises(InputError, match="does not exist"):
        write_mlt(tmp_path / "missing.otio", tmp_path / "x.mlt")


@pytest.mark.skipif(shutil.which("melt") is None, reason="Debian's melt is not installed (apt install melt)")
def test_melt_renders_frame_exact(tmp_path):
    original, swapped = _clips()
    edit = tmp_path / "cut.doppel.otio"
    otio.adapters.write_to_file(_return_edit(original, swapped), str(edit))
    mlt = tmp_path / "cut.mlt"
    # through the CLI module, as a Kdenlive/Shotcut user would
    subprocess.run([sys.executable, "-m", "plugin.mlt", str(edit), str(mlt)], check=True, cwd=tmp_path,
                   env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[2]), "PATH": ""})
    out = tmp_path / "out.mkv"
    # real_time=0: render every frame, never drop one to keep pace
    melt_render([str(mlt), "-consumer", f"avformat:{out}", "vcodec=ffv1", "an=1", "real_time=0"], out, timeout=120)
    info = media.probe(out)
    assert info.frames == 50  # bounded: no black tail
    seen = [read_frame_number(rgb) for _, rgb in media.read_frames(out, 0, info.frames - 1)]
    assert seen == [expected(k) for k in range(50)]


def test_mlt_leaves_out_disabled_tracks(tmp_path):
    """A return edit's FACESWAP MATTE track is disabled: melt must not composite the matte over the swap."""
    original, swapped = _clips()
    tl = _return_edit(original, swapped)
    matte = otio.schema.Track("FACESWAP MATTE V1")
    matte.append(otio.schema.Gap(source_range=TR(0, 10)))
    matte.append(_clip("m1", original, TR(TC, 60), TR(TC, 15)))
    matte.enabled = False
    tl.tracks.append(matte)
    doc = ET.fromstring(timeline_to_mlt(tl))
    names = [p.text for p in doc.iter("property") if p.get("name") == "doppel:track_name"]
    assert names == ["V1", "FACESWAP"]
    assert doc.find("playlist[@id='video2']") is None
