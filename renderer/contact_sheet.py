"""Before/after contact sheets of a render, and PNG shrinking for docs.

    contact_sheet(report, "contact_sheet.png")   per row: source frame, rendered frame, mask overlay
    worst_frames_sheet(rows, "worst.png")        per row: one metric's worst frame, source | swap | mask
                                                 (| matte | occlusion when given), zoomed on the face
    shrink_png(src, dst, max_bytes)              a PNG scaled down until it fits (README images)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from renderer.atomic import atomic_output
from renderer.errors import DoppelError, InputError

TILE = (240, 180)  # tile (W, H)
SHEET_PAD = 6
SHEET_LABEL = 18
SHEET_COLUMNS = ("source", "swapped", "mask")


@dataclass(frozen=True)
class SheetRow:
    """One row of the contact sheet: source frame `frame` of clip `clip` (output frame `frame - first`)."""

    clip: str
    source: Path
    output: Path
    frame: int
    out_frame: int
    timecode: str | None


def sheet_size(rows: int, tile: tuple[int, int] = TILE) -> tuple[int, int]:
    """(width, height) in pixels of a contact sheet with `rows` rows of three tiles."""
    w, h = tile
    cols = len(SHEET_COLUMNS)
    return cols * w + (cols + 1) * SHEET_PAD, SHEET_LABEL + rows * (h + SHEET_LABEL + SHEET_PAD) + SHEET_PAD


def sheet_rows(report: Any, frames_per_clip: int = 3) -> list[SheetRow]:
    """Frames to show for each rendered (ok or skipped) clip of a RenderReport: evenly over its range."""
    from renderer.media import shift_timecode

    rows = []
    for r in report.results:
        if r.status == "failed":
            continue
        job = r.job
        picks = np.unique(np.linspace(job.first, job.last, frames_per_clip + 2).round().astype(int)[1:-1])
        for f in picks:
            tc = shift_timecode(job.timecode, int(f - job.first), job.clip.rate) if job.timecode else None
            rows.append(SheetRow(job.clip.clip_name, job.clip.media_path, Path(r.entry["output"]["path"]),
                                 int(f), int(f - job.first), tc))
    return rows


def mask_overlay(rgb: np.ndarray, *, detector: str = "hog", points: int = 68, mask_kind: str = "hull",
                 erode: float = 0.02, feather: float = 0.05, forehead: float = 0.0) -> tuple[np.ndarray, int]:
    """(overlay, faces): `rgb` (H, W, 3) uint8 with each face's blend mask (as the preset builds it from
    this frame's landmarks) tinted green at up to 50 % and its 0.5 level outlined."""
    from renderer.composite import CompositeSettings, face_mask, landmarks_to_crop, warp_mask_to_frame
    from renderer.faces.track import find_faces

    size = 256
    kind = "hull" if "learned" in mask_kind else mask_kind  # a learned mask needs the model's output
    settings = CompositeSettings(mask=kind, erode=erode, feather=feather, forehead=forehead)
    total = np.zeros(rgb.shape[:2], np.float32)
    faces = find_faces(rgb, detector=detector, points=points, crop_size=size)
    for face in faces:
        crop_mask = face_mask(landmarks_to_crop(face.landmarks, face.crop_from_frame), size, settings)
        total = np.maximum(total, warp_mask_to_frame(crop_mask, face.frame_from_crop, rgb.shape[:2]))
    green = np.array([40, 255, 80], np.float32)
    a = (0.5 * total)[..., None]
    out = (rgb.astype(np.float32) * (1 - a) + green * a).round().clip(0, 255).astype(np.uint8)
    contours, _ = cv2.findContours((total >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 0), 1, cv2.LINE_AA)
    return out, len(faces)


def _label(img: np.ndarray, text: str, x: int, y: int) -> None:
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1, cv2.LINE_AA)


def contact_sheet(report: Any, out_png: Path, *, frames_per_clip: int = 3, tile: tuple[int, int] = TILE,
                  mask: Mapping[str, Any] | None = None) -> tuple[Path, tuple[int, int], int]:
    """Write a before/after PNG: per row a source frame, the same frame of the render, and the mask overlay.

    Rows: `frames_per_clip` frames of every rendered clip of `report` (a RenderReport). `mask`:
    {detector, points, mask_kind, erode, feather} for the overlay (default: the first job's preset).
    Returns (path, (width, height), rows). Raises InputError when no clip rendered.
    """
    from renderer import media

    rows = sheet_rows(report, frames_per_clip)
    if not rows:
        raise InputError("contact sheet: the render has no rendered clips to show")
    if mask is None:
        p = report.results[0].job.preset
        mask = {"detector": p.detector, "points": int(p.landmarks), "mask_kind": p.mask.kind,
                "erode": p.mask.erode, "feather": p.mask.feather, "forehead": p.mask.forehead}
    width, height = sheet_size(len(rows), tile)
    sheet = np.full((height, width, 3), 24, np.uint8)
    tw, th = tile
    for c, title in enumerate(SHEET_COLUMNS):
        _label(sheet, title, SHEET_PAD + c * (tw + SHEET_PAD), SHEET_LABEL - 5)
    for i, row in enumerate(rows):
        y = SHEET_LABEL + i * (th + SHEET_LABEL + SHEET_PAD)
        src = next(rgb for _, rgb in media.read_frames(row.source, row.frame, row.frame))
        out = next(rgb for _, rgb in media.read_frames(row.output, row.out_frame, row.out_frame))
        overlay, faces = mask_overlay(src, **mask)
        tc = f" {row.timecode}" if row.timecode else ""
        _label(sheet, f"{row.clip}: source frame {row.frame}{tc} -> {row.output.name} frame {row.out_frame}; "
                      f"{faces} face{'s' if faces != 1 else ''}", SHEET_PAD, y + SHEET_LABEL - 5)
        for c, img in enumerate((src, out, overlay)):
            x = SHEET_PAD + c * (tw + SHEET_PAD)
            sheet[y + SHEET_LABEL:y + SHEET_LABEL + th, x:x + tw] = cv2.resize(img, tile, interpolation=cv2.INTER_AREA)
    out_png = Path(out_png)
    with atomic_output(out_png) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise DoppelError(f"could not write the contact sheet {out_png}")
    return out_png, (width, height), len(rows)


WORST_COLUMNS = ("source", "swap", "mask", "matte", "occlusion")


@dataclass(frozen=True)
class WorstRow:
    """One row of a worst-frames sheet: `label` (the metric, its value, the frame) and the images
    to show, keyed by column name (`WORST_COLUMNS`; "mask", "matte", "occlusion" are (H, W) float
    in [0, 1], shown tinted over the source), all of one frame; `box` (x0, y0, x1, y1) is the face
    to zoom on, None for the whole frame."""

    label: str
    images: Mapping[str, np.ndarray]
    box: tuple[float, float, float, float] | None = None


def _tile(img: np.ndarray, source: np.ndarray, box: tuple[float, float, float, float] | None,
          tile: tuple[int, int]) -> np.ndarray:
    if img.ndim == 2:  # a mask: tint it over the source, outline its 0.5 level
        a = np.clip(img, 0.0, 1.0).astype(np.float32)[..., None]
        green = np.array([40, 255, 80], np.float32)
        over = (source.astype(np.float32) * (1 - 0.6 * a) + green * (0.6 * a)).round().clip(0, 255).astype(np.uint8)
        contours, _ = cv2.findContours((img >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(over, contours, -1, (255, 255, 0), 1, cv2.LINE_AA)
        img = over
    if box is not None:
        h, w = img.shape[:2]
        tw, th = tile
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half_h = 0.8 * max(box[2] - box[0], box[3] - box[1])  # the face and a margin, at the tile's aspect
        half_w = half_h * tw / th
        x0, x1 = int(max(0, cx - half_w)), int(min(w, cx + half_w))
        y0, y1 = int(max(0, cy - half_h)), int(min(h, cy + half_h))
        img = img[y0:y1, x0:x1]
    return cv2.resize(img, tile, interpolation=cv2.INTER_AREA if img.shape[1] > tile[0] else cv2.INTER_CUBIC)


def worst_frames_sheet(rows: list[WorstRow], out_png: Path, *, tile: tuple[int, int] = (200, 200),
                       title: str = "") -> tuple[Path, tuple[int, int]]:
    """Write a PNG with one row per WorstRow: its label, then a tile per column present in any row
    (source, swap, mask, then matte and occlusion when some row has them). Returns (path, (w, h)).
    Raises InputError when `rows` is empty or a row lacks its source."""
    if not rows:
        raise InputError("worst-frames sheet: no rows to show")
    for r in rows:
        if "source" not in r.images:
            raise InputError(f"worst-frames sheet: row {r.label!r} has no 'source' image; it has {sorted(r.images)}")
    extra = sorted({k for r in rows for k in r.images} - set(WORST_COLUMNS))
    if extra:
        raise InputError(f"worst-frames sheet: unknown column(s) {', '.join(extra)}; allowed: {', '.join(WORST_COLUMNS)}")
    columns = [c for c in WORST_COLUMNS if any(c in r.images for r in rows)]
    tw, th = tile
    width = len(columns) * tw + (len(columns) + 1) * SHEET_PAD
    top = SHEET_LABEL * (2 if title else 1)
    height = top + len(rows) * (th + SHEET_LABEL + SHEET_PAD) + SHEET_PAD
    sheet = np.full((height, width, 3), 24, np.uint8)
    if title:
        _label(sheet, title, SHEET_PAD, SHEET_LABEL - 5)
    for c, name in enumerate(columns):
        _label(sheet, name, SHEET_PAD + c * (tw + SHEET_PAD), top - 5)
    for i, r in enumerate(rows):
        y = top + i * (th + SHEET_LABEL + SHEET_PAD)
        _label(sheet, r.label, SHEET_PAD, y + SHEET_LABEL - 5)
        src = r.images["source"]
        for c, name in enumerate(columns):
            if name in r.images:
                x = SHEET_PAD + c * (tw + SHEET_PAD)
                sheet[y + SHEET_LABEL:y + SHEET_LABEL + th, x:x + tw] = _tile(r.images[name], src, r.box, tile)
    out_png = Path(out_png)
    with atomic_output(out_png) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise DoppelError(f"could not write the worst-frames sheet {out_png}")
    return out_png, (width, height)


def shrink_png(src: Path, dst: Path, max_bytes: int = 500_000) -> tuple[int, int]:
    """Copy PNG `src` to `dst`, scaled down in 10 % steps until the file is at most `max_bytes`
    (for embedding in docs). Returns the (width, height) written."""
    img = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{src} is not a readable PNG")
    scale = 1.0
    while True:
        h, w = img.shape[:2]
        small = img if scale == 1.0 else cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".png", small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise DoppelError(f"could not encode {src} as PNG")
        if len(data) <= max_bytes or scale < 0.2:
            break
        scale *= 0.9
    with atomic_output(Path(dst)) as tmp:
        tmp.write_bytes(data.tobytes())
    return small.shape[1], small.shape[0]
