"""PNG shrinking for docs: fits the byte budget, keeps the aspect ratio, leaves the source alone, refuses non-images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from renderer.contact_sheet import shrink_png
from renderer.errors import InputError


def test_shrink_png_fits_the_budget_and_keeps_the_source(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # ~360 KB as PNG
    src, dst = tmp_path / "sheet.png", tmp_path / "docs" / "sheet.png"
    dst.parent.mkdir()
    cv2.imwrite(str(src), noise)
    before = src.read_bytes()
    w, h = shrink_png(src, dst, max_bytes=100_000)
    assert dst.stat().st_size <= 100_000 < len(before)
    assert (w, h) == cv2.imread(str(dst)).shape[1::-1] and w < 400 and abs(w / h - 4 / 3) < 0.02
    assert src.read_bytes() == before
    assert shrink_png(src, tmp_path / "same.png", max_bytes=10**7) == (400, 300)  # fits already: not scaled


def test_shrink_png_refuses_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not a png")
    with pytest.raises(InputError, match="not a readable PNG"):
        shrink_png(bad, tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
