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


def test_worst_frames_sheet_shows_the_columns_given_zoomed_on_the_face(tmp_path: Path) -> None:
    from renderer.contact_sheet import WorstRow, worst_frames_sheet
    from tests import face_data

    src = face_data.read_rgb(face_data.astronaut())
    swap = src[:, ::-1].copy()
    mask = np.zeros(src.shape[:2], np.float32)
    mask[150:300, 180:330] = 1.0
    box = (180.0, 150.0, 330.0, 300.0)
    rows = [WorstRow("frame 3: worst pose", {"source": src, "swap": swap, "mask": mask}, box),
            WorstRow("frame 9: worst grain", {"source": src, "swap": swap, "mask": mask, "matte": mask * 0.5}, None)]
    path, (w, h) = worst_frames_sheet(rows, tmp_path / "worst.png", tile=(100, 100))
    img = cv2.imread(str(path))
    assert img.shape[1::-1] == (w, h) and w == 4 * 100 + 5 * 6  # source, swap, mask, matte
    # the first row's source tile is the zoomed face, not the whole frame scaled down
    tile = cv2.cvtColor(img[18 + 18:18 + 18 + 100, 6:106], cv2.COLOR_BGR2RGB)
    whole = cv2.resize(src, (100, 100), interpolation=cv2.INTER_AREA)
    assert np.abs(tile.astype(int) - whole.astype(int)).mean() > 10
    with pytest.raises(InputError, match="no 'source'"):
        worst_frames_sheet([WorstRow("x", {"swap": swap})], tmp_path / "bad.png")
    with pytest.raises(InputError, match="unknown column"):
        worst_frames_sheet([WorstRow("x", {"source": src, "depth": mask})], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
