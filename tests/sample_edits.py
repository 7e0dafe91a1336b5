"""Conformance walk over edits other tools wrote: the OTIO adapters' own sample data.

The source distributions of `opentimelineio` and its FCP7 XML, FCPXML, CMX 3600 and AAF
adapters carry `tests/sample_data/`: edits written by Premiere, Resolve, Hiero, Final Cut
Pro X, Avid Media Composer and by OTIO's authors. `sample_edits` fetches them through pip
(`pip download --no-deps --no-binary <dist>`, one package at a time: `--no-binary :all:`
would build the build tools from source too) and caches them under `.cache/otio_sample_edits/`.

`walk_edit` takes one of them the way an editor would:

1. read it with the real adapter and compose its picture (`tests.edit_picture.compose`):
   for every record frame, the topmost enabled layer, through nesting, time warps and
   transitions as OTIO defines them; that gives every source frame the cut shows;
2. generate media for each media reference (`tests.edit_picture.write_media`): its rate, a
   start timecode and a length covering the reference's `available_range` and every frame
   the cut shows, 96x54, each frame painted with its number and the media's id;
3. mark every video clip with media FACESWAP in the file's own syntax (see `mark_edit`);
4. `doppel render --dry-run --json`, then `doppel render --json` with a real model;
5. read both return edits (`.otio` and the input's own format) back through the adapters,
   compose them, decode every rendered file's frames, and compare per record frame with the
   original: the same media and source frame in every layer, and the layers of marked clips
   coming from a rendered (synthetic) file unless Doppel refused that clip by name.

The numbered media have no face, so every frame passes through the real swap stage
unchanged; the painted numbers then prove which source frame the composed return picture
shows (faces being swapped is `tests/test_render.py::test_render_swaps_a_real_face`).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from renderer.sample import SampleUnavailable, _pip_download, _publish, _staging
from tests.edit_marks import MARK, mark_edit
from tests.edit_picture import Resolver, check_return, compose, media_key, media_specs, write_media

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "otio_sample_edits"

SDISTS: tuple[tuple[str, str], ...] = (
    ("opentimelineio", "0.18.1"),
    ("otio-fcp-adapter", "1.0.0"),
    ("otio-fcpx-xml-adapter", "1.0.0"),
    ("otio-cmx3600-adapter", "1.0.0"),
    ("otio-aaf-adapter", "2.0.0"),
)
ADAPTERS = {".otio": "otio_json", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml", ".edl": "cmx_3600", ".aaf": "AAF"}
# EDLs record no rate. The sample EDLs are 24 fps except the one named for its rate.
EDL_RATES = {"25fps.edl": Fraction(25)}



# --------------------------------------------------------------------------- fetching


def _unavailable(reason: str) -> None:
    import sys

    if "pytest" in sys.modules:
        import pytest

        pytest.skip(f"OTIO sample edits unavailable: {reason}")
    raise SampleUnavailable(reason)


def sample_edits(cache: Path = CACHE) -> Path:
    """`cache/<dist>/`: the `tests/sample_data/` folder of each sdist in SDISTS (pip download, no install)."""
    cache = Path(cache)
    for dist, version in SDISTS:
        final = cache / dist
        if final.is_dir():
            continue
        tmp = _staging(cache)
        try:
            spec = f"{dist}=={version}"
            try:
                _pip_download(["--no-binary", dist, spec], tmp, f"pip download {spec}")
            except SampleUnavailable as err:
                _unavailable(str(err))
            sdists = sorted(tmp.glob("*.tar.gz"))
            if not sdists:
                _unavailable(f"pip download {spec} produced no sdist")
            out = tmp / "out"
            out.mkdir()
            with tarfile.open(sdists[0]) as tf:
                for m in tf.getmembers():
                    parts = m.name.split("/")
                    if m.isfile() and parts[1:3] == ["tests", "sample_data"] and len(parts) > 3:
                        target = out.joinpath(*parts[3:])
                        target.parent.mkdir(parents=True, exist_ok=True)
                        src = tf.extractfile(m)
                        if src is not None:
                            target.write_bytes(src.read())
            if not any(out.iterdir()):
                _unavailable(f"{sdists[0].name} holds no tests/sample_data/")
            _publish(out, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return cache


def sample_edit_files(cache: Path = CACHE) -> list[Path]:
    """Every edit file (.otio .xml .fcpxml .edl .aaf) of the five sdists' sample data, sorted."""
    root = sample_edits(cache)
    return sorted(p for dist, _ in SDISTS for p in (root / dist).rglob("*")
                  if p.is_file() and p.suffix.lower() in ADAPTERS)


def edit_id(path: Path) -> str:
    """'otio-fcp-adapter/premiere_example.xml' for test ids and reports."""
    return f"{path.parent.name}/{path.name}"


def edl_rate(path: Path) -> Fraction | None:
    """The rate of a sample EDL, or of Doppel's return EDL for it (`<stem>.doppel.edl`)."""
    if path.suffix.lower() != ".edl":
        return None
    return EDL_RATES.get(path.name.replace(".doppel.edl", ".edl"), Fraction(24))


def read_timelines(path: Path) -> list[otio.schema.Timeline]:
    """The timelines of an edit as the real adapter reads it (a collection may hold several)."""
    kwargs: dict[str, Any] = {}
    if path.suffix.lower() == ".edl":
        kwargs["rate"] = float(edl_rate(path))
    result = otio.adapters.read_from_file(str(path), adapter_name=ADAPTERS[path.suffix.lower()], **kwargs)
    timelines = [result] if isinstance(result, otio.schema.Timeline) else list(
        result.find_children(descended_from_type=otio.schema.Timeline))
    if path.suffix.lower() == ".edl":
        for tl in timelines:
            _to_clip(tl)
    if path.suffix.lower() == ".xml":
        # The fcp_xml reader reads a nested sequence as an empty stack (Premiere shows its clips there);
        # it reads the same sequence right as a document of its own, which is what fill_nests gives it.
        from renderer.timeline.fcp7 import fill_nests

        fill_nests(timelines, path)
    return timelines


def _to_clip(timeline: otio.schema.Timeline) -> None:
    """The one known misreading of the cmx_3600 reader, undone: a dissolve event names its incoming
    media on a `* TO CLIP:` line, which the reader keeps as a comment while giving the incoming clip the
    outgoing clip's `* FROM CLIP:` file. An NLE shows the TO CLIP media there, so the walk does too."""
    for clip in timeline.find_clips():
        comments = (clip.metadata.get("cmx_3600") or {}).get("comments") or []
        to = next((str(c).split(":", 1)[1].strip() for c in comments if str(c).startswith("TO CLIP:")), None)
        if to:
            clip.media_reference = otio.schema.ExternalReference(target_url=to)


# --------------------------------------------------------------------------- marking (tests.edit_marks)


def marked_clips(path: Path) -> set[str]:
    """Names of the clips a marked edit marks, as its adapter reads it. For AAF, every clip of a
    video track that carries a mark: Avid markers sit on the track (the adapter may attach them
    to a neighbour, see NOTES-15), and this walk marks each clip of the track."""
    names: set[str] = set()
    for tl in read_timelines(path):
        for track in tl.video_tracks():
            clips = list(track.find_clips())
            carrying = [c for c in clips if any((m.name or "").upper().startswith(MARK) for m in c.markers)]
            if path.suffix.lower() == ".aaf" and carrying:
                carrying = [c for c in clips if media_key(c) is not None]
            names.update(c.name for c in carrying)
    return names


# --------------------------------------------------------------------------- the walk


def run_doppel(args: Sequence[str | Path]) -> tuple[int, str, str]:
    """`doppel ARGS` in this process: (exit status, stdout, stderr)."""
    from renderer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


PRESET = """\
description: conformance walk over the OTIO sample edits; small and fast
handles: 3
detect_every: 1
output:
  codec: h264
  container: mp4
  audio: none
  name: "{clip}_{track}_{index}.doppel"
"""


@dataclass
class WalkResult:
    """What happened to one sample edit. `problems` empty = the issue's goal holds for it."""

    edit: str
    marks: int = 0
    media: int = 0
    dry_run: tuple[int, str] = (0, "")
    render: tuple[int, str] = (0, "")
    summary: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # clip name -> one-line reason
    frames_checked: int = 0
    problems: list[str] = field(default_factory=list)
    note: str = ""

    def line(self) -> str:
        state = "OK" if not self.problems else f"{len(self.problems)} problem(s)"
        return f"{self.edit}: {state}; marks {self.marks}, media {self.media}, frames {self.frames_checked}"


def _json_tail(text: str) -> dict[str, Any]:
    start = text.find("{")
    if start < 0:
        return {}
    try:
        return json.loads(text[start:])
    except ValueError:
        return {}


def _first_line(text: str) -> str:
    """The gist of a message for a report: its first line, and its last when it has more."""
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    if not lines:
        return ""
    return lines[0] if len(lines) == 1 else f"{lines[0]} [...] {lines[-1]}"


def _refusals(summary: dict[str, Any], render_json: Path) -> dict[str, str]:
    """Clips Doppel refused by name, with the reason: the --json summary's `refused` (a list of
    {clip, reason} or a {clip: reason} mapping) and render.json entries with `"status": "refused"`
    (the shape agreed in NOTES-15)."""
    out: dict[str, str] = {}
    given = summary.get("refused")
    if isinstance(given, dict):
        out.update({str(k): str(v) for k, v in given.items()})
    elif isinstance(given, list):
        for entry in given:
            if isinstance(entry, dict) and entry.get("clip") is not None:
                out[str(entry["clip"])] = str(entry.get("reason") or entry.get("error") or "")
    try:
        record = json.loads(render_json.read_text("utf-8"))
    except (OSError, ValueError):
        record = {}
    for entry in record.get("clips", []) if isinstance(record, dict) else []:
        if isinstance(entry, dict) and entry.get("status") == "refused":
            out.setdefault(str(entry.get("clip")), str(entry.get("reason") or entry.get("error") or ""))
    return out


def _budget(pictures: Sequence[dict[int, Any]], keys: set[str], frames: int) -> set[str]:
    """The media to mark so that about `frames` record frames render: smallest users first."""
    shown: dict[str, int] = {k: 0 for k in keys}
    for pic in pictures:
        for layers in pic.values():
            for layer in layers:
                if layer.key in shown:
                    shown[layer.key] += 1
    chosen: set[str] = set()
    total = 0
    for key in sorted(shown, key=lambda k: (shown[k], k)):
        if chosen and total + shown[key] > frames:
            break
        chosen.add(key)
        total += shown[key]
    return chosen


def walk_edit(path: Path, work: Path, model: Path, *, render: bool = True,
              mark_only: set[str] | None = None, frame_budget: int | None = None) -> WalkResult:
    """The whole walk for one sample edit (see the module docstring). Never raises for Doppel's
    behaviour: everything that goes against the issue's goal lands in `problems`.

    `mark_only`: mark only the clips of these media (AAF marks go on every clip); `frame_budget`:
    mark the media whose clips show the fewest frames, up to about that many frames. Both keep a
    big edit inside a time budget; every record frame is still compared."""
    result = WalkResult(edit_id(path))
    work.mkdir(parents=True, exist_ok=True)
    try:
        timelines = read_timelines(path)
    except Exception as err:  # the adapter itself cannot read it: Doppel must refuse it clearly
        timelines = []
        result.note = f"the adapter cannot read it: {type(err).__name__}: {_first_line(str(err))}"
    pictures = [compose(tl, path) for tl in timelines]
    specs = media_specs(timelines, pictures)
    media_dir = work / "media"
    for spec in specs.values():
        write_media(spec, media_dir)
    generated = {k for k, s in specs.items() if s.path is not None}
    result.media = len(generated)
    edit_dir = work / "edit"
    marked_path = edit_dir / path.name
    marked: set[str] = set()
    if timelines:
        keys = set(specs) if mark_only is None else set(specs) & mark_only
        limited = mark_only is not None
        if frame_budget is not None:
            chosen = _budget(pictures, keys, frame_budget)
            if chosen != keys:
                result.note = f"marked {len(chosen)} of {len(keys)} media (frame budget {frame_budget})"
                limited = True
            keys = chosen
        result.marks = mark_edit(path, marked_path, keys, edl_all=not limited)
        if not result.marks and generated:
            result.note = (result.note + "; " if result.note else "") + "the walk marked no clip here (frames compared only)"
        marked = marked_clips(marked_path)
    else:
        edit_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, marked_path)
    preset = work / "walk.yaml"
    preset.write_text(PRESET)
    out = work / "out"
    args: list[str | Path] = ["render", marked_path, "--preset", preset, "--out", out, "--model", model,
                              "--media-root", media_dir, "--json", "--quiet"]
    rate = edl_rate(path)
    if rate is not None:
        args += ["--edl-rate", str(rate)]
    code, stdout, stderr = run_doppel([*args, "--dry-run"])
    result.dry_run = (code, _first_line(stderr) if code else "")
    videos = sum(1 for p in pictures for layers in p.values() if layers)
    if code not in (0, 1):
        message = stderr.strip()
        if not timelines or not videos or not result.marks:
            if "\n" in message.strip() and not message.startswith("doppel render: error:"):
                result.problems.append(f"refused with more than one line: {message[:300]}")
            result.note = result.note or f"refused (nothing to render): {_first_line(message)}"
            return result
        result.problems.append(f"--dry-run refused the whole edit (exit {code}): {_first_line(message)[:400]}")
        return result
    if not render:
        return result
    code, stdout, stderr = run_doppel(args)
    result.summary = _json_tail(stdout)
    result.render = (code, _first_line(stderr) if code else "")
    if code not in (0, 1):
        result.problems.append(f"render refused the whole edit after --dry-run passed (exit {code}): "
                               f"{_first_line(stderr)[:400]}")
        return result
    if not result.summary:
        result.problems.append(f"render (exit {code}) printed no JSON summary; stderr: {_first_line(stderr)[:300]}")
    record = out / "render.json"
    try:
        status = json.loads(record.read_text("utf-8")).get("status")
    except (OSError, ValueError):
        status = None
    if status in (None, "running"):
        result.problems.append(f"render.json status is {status!r} after the render ended (exit {code})")
    for name, error in (result.summary.get("errors") or {}).items():
        result.problems.append(f"clip '{name}' failed: {_first_line(str(error))[:300]}")
    result.refused = _refusals(result.summary, record)
    for name, reason in result.refused.items():
        if not reason or "\n" in reason.strip():
            result.problems.append(f"clip '{name}' refused without a one-line reason: {reason!r}")
    resolve = Resolver(specs, out)
    returns = [out / f"{marked_path.stem}.doppel.otio"]
    if path.suffix.lower() != ".otio":
        returns.append(out / f"{marked_path.stem}.doppel{path.suffix}")
    return_errors = result.summary.get("return_errors") or {}
    for ret in returns:
        said = next((str(v) for k, v in return_errors.items() if Path(k).name == ret.name), None)
        if said is not None and ret.suffix.lower() != ".otio":
            # a format writer that cannot express the return edit: allowed, in one line (defect 9)
            if "\n" in said.strip() or not said.strip():
                result.problems.append(f"return edit {ret.name} failed without a one-line reason: {said!r}")
            result.note = f"{ret.name} not written: {said.replace(str(ret), ret.name)[:300]}"
            continue
        if not ret.is_file():
            result.problems.append(f"return edit {ret.name} was not written" + (f": {said}" if said else ""))
            continue
        try:
            back = read_timelines(ret)
        except Exception as err:
            result.problems.append(f"return edit {ret.name} does not read back: {type(err).__name__}: "
                                   f"{_first_line(str(err))[:200]}")
            continue
        if len(back) < len(timelines):
            result.problems.append(f"return edit {ret.name} holds {len(back)} of the edit's {len(timelines)} timelines")
        edl = ret.suffix.lower() == ".edl"
        for n, (orig, tl) in enumerate(zip(pictures, back)):
            returned = compose(tl, ret)
            checked, runs = check_return(orig, returned, resolve, marked, result.refused,
                                         swapped_only=edl)
            result.frames_checked += checked
            where = f"{ret.name}" + (f" timeline {n + 1}" if len(timelines) > 1 else "")
            result.problems += [f"{where}: {r}" for r in runs[:8]]
            if len(runs) > 8:
                result.problems.append(f"{where}: ... {len(runs) - 8} more mismatching runs")
    return result


__all__ = [
    "ADAPTERS", "CACHE", "SDISTS", "WalkResult", "edit_id", "mark_edit", "marked_clips", "read_timelines", "run_doppel",
    "sample_edit_files", "sample_edits", "walk_edit",
]
