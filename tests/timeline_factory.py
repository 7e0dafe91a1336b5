"""Test edits in every format Doppel reads, over real numbered media.

`standard_edit` builds one OTIO timeline with marked and unmarked clips on two video
tracks, a transition beside a marked clip, a sub-range marker, a point marker and a
clip marked through metadata, over media (made by `tests.media_factory`) that lives in
a folder apart from the edit and starts at a non-zero timecode. `write_formats` writes
it through the real OTIO adapters; `write_avid_edl` writes a CMX 3600 EDL by hand, the
way Avid does (record timecode from 01:00:00:00, `* LOC:` markers in record time).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from renderer.media import timecode_to_frame
from tests.media_factory import make_numbered_clip

MEDIA_FRAMES = 40


@dataclass(frozen=True)
class Expected:
    """What `find_marked_clips` must find for one marked clip of the standard edit."""

    track_index: int
    clip_name: str
    media_name: str
    first: int  # 0-based media frames, inclusive
    last: int
    record_start: int  # record frame on the track
    overrides: dict


def make_media(folder: Path, fps: Fraction, drop: bool = False) -> dict[str, tuple[Path, str | None]]:
    """Three tiny numbered clips: A and B with start timecodes, C with none."""
    sep = ";" if drop else ":"
    specs = {"A": f"01:00:00{sep}00", "B": f"02:00:10{sep}00", "C": None}
    out = {}
    for name, tc in specs.items():
        path = folder / f"{name}.mov"
        if not path.exists():
            make_numbered_clip(path, MEDIA_FRAMES, 64, 48, fps=fps, codec="h264", timecode=tc)
        out[name] = (path, tc)
    return out


def standard_edit(media: dict[str, tuple[Path, str | None]], fps: Fraction, *, transition: bool = True,
                  url_style: str = "file") -> tuple[otio.schema.Timeline, list[Expected]]:
    """The test edit and what must be found in it. Record frames count from the track start.

    V1: A[5..24] point marker "FACESWAP colour=rct" | (dissolve) | B[3..17] unmarked |
        C[10..29] ranged marker on frames 14..18 "FACESWAP mask=ellipse" (comment "erode=0.05")
    V2: gap 30 | B[20..31] clip metadata doppel {faceswap: true, blend: poisson} | A[0..9] marker "note" (unmarked)
    """
    rate = float(fps)
    tl = otio.schema.Timeline(name="doppel test edit")
    tl.global_start_time = RT(timecode_to_frame("01:00:00:00", fps), rate)

    def ref(name: str) -> otio.schema.ExternalReference:
        path, tc = media[name]
        start = timecode_to_frame(tc, fps) if tc else 0
        url = path.resolve().as_uri() if url_style == "file" else str(path)
        return otio.schema.ExternalReference(target_url=url, available_range=TR(RT(start, rate), RT(MEDIA_FRAMES, rate)))

    def origin(name: str) -> int:
        tc = media[name][1]
        return timecode_to_frame(tc, fps) if tc else 0

    def clip(name: str, label: str, first: int, frames: int) -> otio.schema.Clip:
        return otio.schema.Clip(name=label, media_reference=ref(name),
                                source_range=TR(RT(origin(name) + first, rate), RT(frames, rate)))

    v1 = otio.schema.Track(name="V1")
    a = clip("A", "shot_a", 5, 20)
    a.markers.append(otio.schema.Marker(name="FACESWAP colour=rct", marked_range=TR(RT(origin("A") + 8, rate), RT(0, rate)),
                                        color=otio.schema.MarkerColor.GREEN))
    v1.append(a)
    if transition:
        v1.append(otio.schema.Transition(in_offset=RT(2, rate), out_offset=RT(2, rate),
                                         transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve))
    v1.append(clip("B", "shot_b", 3, 15))
    c = clip("C", "shot_c", 10, 20)
    m = otio.schema.Marker(name="faceswap mask=ellipse", marked_range=TR(RT(14, rate), RT(5, rate)),
                           color=otio.schema.MarkerColor.RED)
    m.comment = "erode=0.05"
    c.markers.append(m)
    v1.append(c)
    v2 = otio.schema.Track(name="V2")
    v2.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(30, rate))))
    b2 = clip("B", "shot_b2", 20, 12)
    b2.metadata["doppel"] = {"faceswap": True, "blend": "poisson"}
    v2.append(b2)
    a2 = clip("A", "shot_a2", 0, 10)
    a2.markers.append(otio.schema.Marker(name="note", marked_range=TR(RT(origin("A") + 2, rate), RT(0, rate))))
    v2.append(a2)
    tl.tracks.extend([v1, v2])
    expected = [
        Expected(0, "shot_a", "A", 5, 24, 0, {"colour": "rct"}),
        Expected(0, "shot_c", "C", 14, 18, 20 + 15 + 4, {"mask": "ellipse", "erode": "0.05"}),
        Expected(1, "shot_b2", "B", 20, 31, 30, {"blend": "poisson"}),
    ]
    return tl, expected


def write_formats(tl: otio.schema.Timeline, folder: Path, stem: str, exts: tuple[str, ...]) -> dict[str, Path]:
    """Write `tl` through the real adapters, one file per extension."""
    adapters = {".otio": "otio_json", ".otioz": "otioz", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml",
                ".edl": "cmx_3600", ".aaf": "AAF"}
    out = {}
    folder.mkdir(parents=True, exist_ok=True)
    for ext in exts:
        path = folder / f"{stem}{ext}"
        kwargs = {"use_empty_mob_ids": True} if ext == ".aaf" else {}
        otio.adapters.write_to_file(tl, str(path), adapter_name=adapters[ext], **kwargs)
        out[ext] = path
    return out


def write_avid_edl(path: Path, events: list[tuple[str, str, str, str, str, str, list[str]]], fps: Fraction,
                   drop: bool = False, title: str = "DOPPEL TEST") -> Path:
    """A CMX 3600 EDL as Avid writes it. events: (reel, src_in, src_out, rec_in, rec_out, clip_path, loc lines).

    Timecodes are given as strings; LOC lines like "01:00:00:08 GREEN FACESWAP COLOUR=RCT".
    """
    lines = [f"TITLE: {title}", "FCM: DROP FRAME" if drop else "FCM: NON-DROP FRAME", ""]
    for n, (reel, s_in, s_out, r_in, r_out, clip_path, locs) in enumerate(events, start=1):
        lines.append(f"{n:03d}  {reel:<8} V     C        {s_in} {s_out} {r_in} {r_out}")
        lines.append(f"* FROM CLIP NAME:  {Path(clip_path).name}")
        lines.append(f"* FROM CLIP: {clip_path}")
        for loc in locs:
            lines.append(f"* LOC: {loc}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path
