"""Relabelling EXR frames header-only, and joining chunk sequences (what the farm's Publish does).

Frames written by the ffmpeg CLI (ZIP16, half RGBA) and by the `openexr` package (DWAA, lossy: a
re-encode would round again) keep every compressed byte and every other attribute; the label
attributes are replaced, continuations included; FFmpeg still decodes the result.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from renderer.errors import MediaError
from renderer.media.exr_header import relabel_exr
from renderer.media.sequence_write import join_sequences
from tests.media.test_sequences import ffmpeg


def _pixels(path: Path) -> dict[str, np.ndarray]:
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        return {k: np.asarray(c.pixels).copy() for k, c in f.channels().items()}


def _header(path: Path) -> dict:
    import OpenEXR

    return OpenEXR.File(str(path), header_only=True).header()


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> dict[str, Path]:
    import OpenEXR

    work = tmp_path_factory.mktemp("exr_header")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=24:duration=0.125", "-pix_fmt", "gbrapf32le", "-c:v", "exr",
           "-format", "half", "-compression", "zip16", "-start_number", "1", str(work / "zip16.%d.exr"))
    rng = np.random.default_rng(7)
    OpenEXR.File({"compression": OpenEXR.DWAA_COMPRESSION, "type": OpenEXR.scanlineimage, "comment": "chunk " * 80,
                  "owner": "studio"}, {"RGB": rng.random((70, 50, 3), dtype=np.float32)}).write(str(work / "dwaa.exr"))
    return {"zip16": work / "zip16.1.exr", "dwaa": work / "dwaa.exr"}


@pytest.mark.parametrize("name", ["zip16", "dwaa"])
def test_relabel_keeps_pixels_and_other_attributes(frames, tmp_path, name):
    src = frames[name]
    out = tmp_path / "out.exr"
    label = {"comment": "SYNTHETIC MEDIA: " + "x" * 400, "description": "delivered"}
    relabel_exr(src, out, label)
    before, after = _header(src), _header(out)
    text = "".join(after[k] for k in ("comment", "comment.2"))
    assert text == label["comment"] and after["description"] == "delivered"
    assert {k: str(v) for k, v in before.items() if not k.startswith(("comment", "description"))} == \
        {k: str(v) for k, v in after.items() if not k.startswith(("comment", "description"))}
    a, b = _pixels(src), _pixels(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # The compressed chunks are the same bytes: only the header (and the offsets after it) moved.
    tail = src.read_bytes()[-2000:]
    assert out.read_bytes().endswith(tail)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0",
                            str(out)], capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip() in ("96,64", "50,70")


def test_relabel_refuses_what_is_not_a_scanline_exr(tmp_path):
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"not an exr at all")
    with pytest.raises(MediaError, match="is not an EXR file"):
        relabel_exr(bad, tmp_path / "o.exr", {"comment": "x"})


def test_join_names_missing_and_doubled_frames(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for folder, numbers in ((a, (1, 2, 3)), (b, (3, 5))):
        for n in numbers:
            (folder / f"s.{n:04d}.png").write_bytes(hashlib.sha256(bytes([n])).digest())
    with pytest.raises(MediaError, match=r"missing frame\(s\) 4; doubled frame\(s\) 3"):
        join_sequences([a / "s.%04d.png", b / "s.%04d.png"], tmp_path / "out" / "s.%04d.png", range(1, 6))
    assert not (tmp_path / "out").exists()
    (b / "s.0003.png").rename(b / "s.0004.png")
    assert join_sequences([a / "s.%04d.png", b / "s.%04d.png"], tmp_path / "out" / "s.%04d.png", range(1, 6)) == 5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"s.{n:04d}.png" for n in range(1, 6)]
    assert (tmp_path / "out" / "s.0005.png").read_bytes() == (b / "s.0005.png").read_bytes()
