"""A render job: the FACESWAP-marked clips of an edit -> swapped media, a return edit, render.json.

Two steps, so that everything that can be wrong with the input is found before a frame
is decoded:

    plan = plan_render(edit, preset, out_dir, model=..., media_roots=...)   # InputError/ModelError (exit 2)
    report = run_render(plan, on_progress=..., on_clip=...)                 # per-clip ok | failed | skipped

`plan_render` reads the edit, finds the marked clips (`renderer.timeline`), applies each
clip's marker overrides to the preset, resolves each clip's model and signing identity,
and names each output. It raises one error listing EVERY problem (missing media, bad
marker keys, missing models or models without rights). It writes nothing.

`run_render` renders only the marked clips (other clips are never decoded), each over
its source range plus the preset's handles (clamped to the media), into OUT_DIR/media/:
output frame N is source frame `first + N`, its timecode the source timecode of that
frame, frame rate and colour tags from the source (unless the preset sets colour tags).

Decisions:
- Handles are swapped too (swap range = the whole rendered range), so an editor who
  extends a cut into the handles sees the swapped face, not a pop back to the original.
- Model: `--model` wins, then a marker's `model=` (relative to the edit's folder), then
  the preset's `model` (relative to the preset file's folder, then the working folder).
  A marker override is an override: it beats the preset, as every other marker key does.
- Resume: a clip is skipped when its output exists, its sidecar `<output>.inputs.json`
  records the same inputs hash, and the output's SHA-256 still matches the sidecar. The
  inputs hash covers the source (resolved path + size + mtime: hashing a 10 GB source on
  every re-run would cost more than it saves; the source SHA-256 is still computed for
  the provenance claim of every file rendered), the rendered and swapped ranges, the
  model card's SHA-256 and the weights' SHA-256 it records, the per-clip resolved preset
  hash and the software version. The sidecar is written last, after the output landed
  under its final name (atomically, by the writer) and was signed, so a kill at any point
  leaves either a complete, recorded output or one that is rendered again.
- A clip that fails is recorded as failed with its error; the other clips go on, the
  return edit covers the ones that rendered, and the job's exit status is 1.
- No marked clips: nothing renders, the return edit is the input plus an empty FACESWAP
  track (as `renderer.timeline` decided), status "nothing marked", exit 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from renderer import __version__
from renderer.atomic import sha256_file, write_json_atomic
from renderer.errors import DoppelError, InputError, ModelError
from renderer.presets import Preset, load_preset, preset_sha256
from renderer.timeline import (
    MarkedClip, RenderedClip, clip_presets, find_marked_clips, read_edit, return_edit_paths, write_return_edit,
)

SOFTWARE = f"doppel {__version__}"
RENDER_JSON = "render.json"
MEDIA_DIR = "media"
INPUTS_SUFFIX = ".inputs.json"
RENDER_SCHEMA = 1
LOCK_NAME = ".doppel-render.lock"


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ModelRef:
    """A checked model directory: its card has a rights statement and its weights exist."""

    path: Path
    origin: str  # "--model", "marker 'FACESWAP model=x'", "preset 'prores_hq'"
    card_sha256: str
    weights_sha256: str
    identities: tuple[str, ...]


@dataclass(frozen=True)
class ClipJob:
    """One marked clip to render. `first`/`last`: inclusive source frames rendered (handles
    included, clamped to the media); the whole of it is swapped. `timecode`: the output's start
    timecode (the source timecode of `first`), None when the source has none."""

    index: int
    clip: MarkedClip
    preset: Preset
    preset_sha256: str
    model: ModelRef
    first: int
    last: int
    output: Path
    timecode: str | None
    inputs: dict[str, Any] = field(hash=False, compare=False)
    signing: Any = field(hash=False, compare=False)  # provenance.SigningIdentity | None
    preset_dir: Path | None = None  # relative preset paths (identity reference) resolve here

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    @property
    def handles(self) -> tuple[int, int]:
        """Frames actually rendered before and after the marked range (after clamping)."""
        return self.clip.source_first_frame - self.first, self.last - self.clip.source_last_frame

    @property
    def inputs_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.inputs, sort_keys=True).encode("utf-8")).hexdigest()

    @property
    def sidecar(self) -> Path:
        return self.output.with_name(self.output.name + INPUTS_SUFFIX)

    def up_to_date(self) -> dict[str, Any] | None:
        """The recorded clip entry when the output exists and was rendered from the same inputs, else None."""
        if not (self.output.is_file() and self.sidecar.is_file()):
            return None
        try:
            record = json.loads(self.sidecar.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("inputs_sha256") != self.inputs_sha256:
            return None
        entry = record.get("entry")
        if not isinstance(entry, dict) or entry.get("output", {}).get("sha256") != sha256_file(self.output):
            return None
        return entry


@dataclass(frozen=True)
class RenderPlan:
    """Everything `run_render` needs, checked. `timeline` is the edit as read."""

    edit: Path
    timeline: otio.schema.Timeline = field(compare=False)
    preset: Preset
    out_dir: Path
    jobs: tuple[ClipJob, ...]
    return_edits: tuple[Path, ...]

    @property
    def render_json(self) -> Path:
        return self.out_dir / RENDER_JSON


def _preset_dir(preset: Preset) -> Path | None:
    path = Path(preset.source)
    return path.parent if path.is_file() else None


def _model_candidates(clip_preset: Preset, base: Preset, mc: MarkedClip, cli_model: str | Path | None,
                      edit_dir: Path) -> tuple[list[Path], str] | None:
    """(places to look, where the model was named) for one clip, or None when no model is named."""
    if cli_model:
        return [Path(cli_model).expanduser()], "--model"
    if "model" in mc.overrides and clip_preset.model:
        given = Path(clip_preset.model).expanduser()
        return ([given] if given.is_absolute() else [edit_dir / given]), f"{mc.describe()}"
    if base.model:
        given = Path(base.model).expanduser()
        if given.is_absolute():
            return [given], f"preset '{base.name}'"
        folder = _preset_dir(base)
        places = ([folder / given] if folder else []) + [Path.cwd() / given]
        return list(dict.fromkeys(places)), f"preset '{base.name}' ({base.source})"
    return None


def check_model(path: Path, origin: str) -> ModelRef:
    """A ModelRef for `path`; ModelError (exit 2) for a missing directory, card, rights or weights."""
    from renderer.model import WEIGHTS_NAME
    from renderer.modelcard import card_sha256, load_model_card

    if not path.is_dir():
        raise ModelError(f"model {path} (from {origin}) is not a directory (train one with `doppel train`)")
    try:
        card = load_model_card(path)
    except ModelError as err:
        raise ModelError(f"{err} (model from {origin})") from err
    if not (path / WEIGHTS_NAME).is_file():
        raise ModelError(f"model {path} (from {origin}): {WEIGHTS_NAME} is missing")
    return ModelRef(path.resolve(), origin, card_sha256(path), card.weights_sha256, tuple(card.identities))


def _signing(preset: Preset, env: Mapping[str, str], base_dir: Path | None) -> Any:
    from renderer.provenance import resolve_signing_identity

    mapping = {"cert": preset.signing.cert, "key": preset.signing.key} if preset.signing.cert else None
    return resolve_signing_identity(mapping, env, base_dir=base_dir)


def _source_fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _name_times(mc: MarkedClip) -> tuple[str, str]:
    """{start}/{end} of the output name: source timecodes of the marked range, else frame numbers."""
    if mc.media_timecode:
        from renderer.media import shift_timecode

        return (shift_timecode(mc.media_timecode, mc.source_first_frame, mc.rate),
                shift_timecode(mc.media_timecode, mc.source_last_frame, mc.rate))
    return str(mc.source_first_frame), str(mc.source_last_frame)


def plan_render(
    edit: str | Path,
    preset: str | Path | Preset,
    out_dir: str | Path,
    *,
    model: str | Path | None = None,
    media_roots: Sequence[str | Path] = (),
    direction: str | None = None,
    edl_rate: Fraction | float | None = None,
    env: Mapping[str, str] | None = None,
) -> RenderPlan:
    """Read and check everything a render needs; write nothing.

    Raises InputError (exit 2) for an unreadable edit, missing media (all listed), bad
    marker keys (all listed), a preset typo, an output the codec cannot write, a clip with
    no model; ModelError (exit 2) for missing models or models without rights (all listed).
    """
    from renderer.media import check_output, resolve_codec, shift_timecode

    env = os.environ if env is None else env
    edit = Path(edit)
    out_dir = Path(out_dir)
    base = preset if isinstance(preset, Preset) else load_preset(preset)
    if direction is not None:
        base = base.with_overrides({"direction": direction}, "--direction")
    timeline = read_edit(edit, edl_rate=edl_rate)
    clips = find_marked_clips(timeline, edit, media_roots)
    presets = clip_presets(clips, base, edit)
    if direction is not None:  # the command line beats a marker's direction= too
        presets = [p.with_overrides({"direction": direction}, "--direction") for p in presets]
    edit_dir = edit.resolve().parent
    problems: list[DoppelError] = []
    models: dict[Path, ModelRef | DoppelError] = {}
    jobs: list[ClipJob] = []
    used_names: dict[Path, int] = {}
    for index, (mc, clip_preset) in enumerate(zip(clips, presets)):
        where = f"{mc.describe()} in {edit}"
        found = _model_candidates(clip_preset, base, mc, model, edit_dir)
        if found is None:
            problems.append(InputError(
                f"no model for {where}: pass --model DIR, set 'model:' in preset '{base.name}' ({base.source}), "
                f"or mark the clip 'FACESWAP model=DIR'"))
            continue
        places, origin = found
        path = next((p for p in places if p.is_dir()), places[0])
        if path not in models:
            try:
                models[path] = check_model(path, origin)
            except DoppelError as err:
                if len(places) > 1:
                    err = ModelError(f"{err}; looked in: {', '.join(str(p) for p in places)}")
                models[path] = err
        ref = models[path]
        if isinstance(ref, DoppelError):
            if ref not in problems:
                problems.append(ref)
            continue
        try:
            identity = _signing(clip_preset, env, _preset_dir(base))
            out = clip_preset.output
            check_codec = resolve_codec(out.codec)
        except DoppelError as err:
            problems.append(InputError(f"{where}: {err}"))
            continue
        start, end = _name_times(mc)
        name = out.file_name(clip=mc.clip_name, start=start, end=end, track=mc.track_index + 1, index=index,
                             preset=base.name, source=mc.media_path.stem)
        output = out_dir / MEDIA_DIR / name
        if output in used_names:  # the same clip and range used twice: keep both, apart
            used_names[output] += 1
            output = output.with_name(f"{Path(name).stem}-{used_names[output]}{output.suffix}")
        used_names.setdefault(output, 1)
        try:
            check_output(output, check_codec)
        except InputError as err:
            problems.append(InputError(f"{where}: preset output {out.codec} in {out.container}: {err}"))
            continue
        first, last = mc.with_handles(clip_preset.handles)
        tc = shift_timecode(mc.media_timecode, first, mc.rate) if mc.media_timecode else None
        p_hash = preset_sha256(clip_preset)
        inputs = {
            "software": SOFTWARE,
            "source": _source_fingerprint(mc.media_path),
            "render_range": [first, last],
            "swap_range": [first, last],
            "model_card_sha256": ref.card_sha256,
            "weights_sha256": ref.weights_sha256,
            "preset_sha256": p_hash,
        }
        jobs.append(ClipJob(index, mc, clip_preset, p_hash, ref, first, last, output, tc, inputs, identity,
                            _preset_dir(base)))
    if problems:
        cls = ModelError if all(isinstance(p, ModelError) for p in problems) else InputError
        text = "\n  ".join(dict.fromkeys(str(p) for p in problems))
        raise cls(f"{len(problems)} problem(s) before rendering:\n  {text}" if len(problems) > 1 else text)
    return RenderPlan(edit, timeline, base, out_dir, tuple(jobs), tuple(return_edit_paths(edit, out_dir)))


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class RenderProgress:
    """Where a render stands: frame `frame` of `frames` of job `job` (0-based) of `jobs`;
    `done` of `total` frames over all jobs (skipped jobs count as done)."""

    job: int
    jobs: int
    clip_name: str
    frame: int
    frames: int
    done: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


@dataclass(frozen=True)
class ClipResult:
    """The outcome of one job; `entry` is its render.json record."""

    job: ClipJob
    status: str  # "ok" | "failed" | "skipped"
    entry: dict[str, Any]
    warnings: tuple[str, ...] = ()

    @property
    def error(self) -> str | None:
        return self.entry.get("error")


@dataclass(frozen=True)
class RenderReport:
    plan: RenderPlan
    results: tuple[ClipResult, ...]
    return_edits: tuple[Path, ...]
    seconds: float

    @property
    def failed(self) -> list[ClipResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def status(self) -> str:
        if not self.plan.jobs:
            return "nothing marked"
        return "failed" if self.failed else "ok"

    def to_json(self) -> dict[str, Any]:
        counts = {s: sum(r.status == s for r in self.results) for s in ("ok", "skipped", "failed")}
        return {
            "status": self.status,
            "edit": str(self.plan.edit),
            "clips": len(self.plan.jobs),
            "rendered": counts["ok"],
            "skipped": counts["skipped"],
            "failed": counts["failed"],
            "render_json": str(self.plan.render_json),
            "return_otio": str(self.return_edits[0]) if self.return_edits else None,
            "return_edits": [str(p) for p in self.return_edits],
            "outputs": [r.entry["output"]["path"] for r in self.results if r.status != "failed"],
            "errors": {r.job.clip.clip_name: r.error for r in self.failed},
            "seconds": round(self.seconds, 3),
        }


def job_summary(job: ClipJob) -> dict[str, Any]:
    """The part of a render.json entry known before rendering (also what `--dry-run` prints)."""
    mc = job.clip
    return {
        "index": job.index,
        "clip": mc.clip_name,
        "track": mc.track_index + 1,
        "marker": mc.marker,
        "record_timecode": mc.record_timecode,
        "source": {"path": str(mc.media_path), "first_frame": mc.source_first_frame,
                   "last_frame": mc.source_last_frame, "timecode": mc.media_timecode,
                   "fps": f"{mc.rate.numerator}/{mc.rate.denominator}"},
        "render_range": {"first_frame": job.first, "last_frame": job.last, "frames": job.frames,
                         "handles": list(job.handles), "timecode": job.timecode},
        "swapped_range": [job.first, job.last],
        "output": {"path": str(job.output), "codec": job.preset.output.codec},
        "model": {"path": str(job.model.path), "from": job.model.origin, "card_sha256": job.model.card_sha256,
                  "weights_sha256": job.model.weights_sha256, "identities": list(job.model.identities)},
        "preset_sha256": job.preset_sha256,
        "overrides": dict(mc.overrides),
        "inputs_sha256": job.inputs_sha256,
    }


def colour_tags(job: ClipJob, info: Any) -> Any:
    """The preset's output colour tags for swap, with "source" entries filled from the source; None = all source."""
    from renderer.media import ColorTags

    want = job.preset.output.color
    values = (want.primaries, want.transfer, want.matrix, want.range)
    if all(v == "source" for v in values):
        return None
    src = info.color
    return ColorTags(*(s if v == "source" else v for v, s in zip(values, (src.primaries, src.transfer,
                                                                            src.matrix, src.range))))


def remove_stale_partials(output: Path) -> None:
    """Delete `.x.partial-1234abcd.mov` leftovers of a killed render of `output` (we hold the
    out-folder lock, so no other render is writing them)."""
    for leftover in output.parent.glob(f".{output.stem}.partial-*{output.suffix}"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def out_dir_lock(out_dir: Path) -> Iterator[None]:
    """One render at a time per output folder (render.json and the outputs are shared).

    An advisory `flock`, released by the OS when the process dies, so a killed render never
    leaves a stale lock. InputError when another render holds it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    with open(out_dir / LOCK_NAME, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another doppel render is writing into {out_dir} (it holds {out_dir / LOCK_NAME}); "
                             f"wait for it or give another --out") from None
        yield


def render_clip(job: ClipJob, source_sha256: str, progress: Callable[[int, int], None] | None = None
                ) -> tuple[dict[str, Any], list[str]]:
    """Render, label and sign one job; return (render.json entry, warnings). Raises on failure.

    The file lands under its final name only complete (swap writes atomically); it is signed
    in place, then the `<output>.inputs.json` sidecar is written, which marks it done.
    """
    from renderer.media import probe
    from renderer.provenance import claim_for_model, label_metadata, sign_media
    from renderer.swap import render_range, swap_settings

    mc = job.clip
    job.output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(job.output)
    info = probe(mc.media_path)
    claim = claim_for_model(mc.media_path, job.model.path, [(0, job.frames)], preset_sha256=job.preset_sha256,
                            source_sha256=source_sha256)
    started = time.monotonic()
    stats = render_range(
        mc.media_path, job.output, model_dir=job.model.path, settings=swap_settings(job.preset, base_dir=job.preset_dir),
        first=job.first, last=job.last, swap_ranges=[(job.first, job.last)], codec=job.preset.output.codec,
        pix_fmt=job.preset.output.pix_fmt, color=colour_tags(job, info),
        metadata=label_metadata(claim, signed=job.signing is not None), audio=job.preset.output.audio != "none",
        progress=progress,
    )
    render_s = time.monotonic() - started
    signed = sign_media(job.output, claim, job.signing, source=mc.media_path)
    entry = job_summary(job)
    entry["source"]["sha256"] = source_sha256
    stats_json = stats.to_json()
    entry["output"].update({"sha256": sha256_file(job.output), "frames": job.frames, "timecode": job.timecode,
                            "signed": signed.signed, "manifest": signed.manifest,
                            "sidecar": str(signed.sidecar) if signed.sidecar else None})
    entry["frames"] = {"swapped": stats_json.get("swapped"), "passed_through": stats_json.get("passed_through"),
                       "faces": stats_json.get("faces")}
    entry["seconds"] = {**(stats_json.get("seconds") or {}), "render_total": round(render_s, 3),
                        "total": round(time.monotonic() - started, 3)}
    entry["status"] = "ok"
    entry["error"] = None
    write_json_atomic(job.sidecar, {"inputs_sha256": job.inputs_sha256, "inputs": job.inputs, "entry": entry})
    return entry, info.warnings() + ([signed.warning] if signed.warning else [])


def rendered_clip(job: ClipJob) -> RenderedClip:
    return RenderedClip(job.clip, job.output, job.first, job.frames, job.timecode or "")


def write_render_json(plan: RenderPlan, entries: list[dict[str, Any]], status: str, started: float,
                       return_edits: Sequence[Path]) -> None:
    write_json_atomic(plan.render_json, {
        "schema": RENDER_SCHEMA,
        "software": SOFTWARE,
        "status": status,
        "edit": {"path": str(plan.edit.resolve()), "sha256": sha256_file(plan.edit)},
        "preset": {"name": plan.preset.name, "source": plan.preset.source, "sha256": preset_sha256(plan.preset)},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "return_edits": [str(p) for p in return_edits],
        "clips": entries,
    })


def run_render(
    plan: RenderPlan,
    *,
    on_progress: Callable[[RenderProgress], None] | None = None,
    on_clip: Callable[[ClipResult], None] | None = None,
    force: bool = False,
    select: Sequence[int] | None = None,
) -> RenderReport:
    """Render the plan's jobs in order (or only the job indices in `select`), then write the
    return edits and OUT_DIR/render.json (also rewritten after each clip, so an interrupted
    render leaves a record). Up-to-date clips are skipped unless `force`.

    A job that raises is recorded as failed (error text in render.json) and the rest go on;
    KeyboardInterrupt and other BaseExceptions propagate (nothing partial keeps a final name).
    """
    with out_dir_lock(plan.out_dir):
        return _run_locked(plan, on_progress, on_clip, force, select)


def _run_locked(plan: RenderPlan, on_progress: Callable[[RenderProgress], None] | None,
                on_clip: Callable[[ClipResult], None] | None, force: bool, select: Sequence[int] | None
                ) -> RenderReport:
    started = time.time()
    jobs = [j for j in plan.jobs if select is None or j.index in set(select)]
    total = sum(j.frames for j in jobs)
    done = 0
    results: list[ClipResult] = []
    entries: list[dict[str, Any]] = []
    hashes: dict[Path, str] = {}
    for n, job in enumerate(jobs):
        recorded = None if force else job.up_to_date()
        warnings: list[str] = []
        if recorded is not None:
            entry = {**recorded, "status": "skipped", "error": None, "note": "up to date: same inputs, output intact"}
            result = ClipResult(job, "skipped", entry)
        else:
            base_done = done

            def progress(frame: int, frames: int, _job: ClipJob = job, _n: int = n, _base: int = base_done) -> None:
                if on_progress is not None:
                    on_progress(RenderProgress(_n, len(jobs), _job.clip.clip_name, frame, frames,
                                               _base + min(frame, _job.frames), total))

            if on_progress is not None:
                on_progress(RenderProgress(n, len(jobs), job.clip.clip_name, 0, job.frames, done, total))
            t0 = time.monotonic()
            try:
                if job.clip.media_path not in hashes:
                    hashes[job.clip.media_path] = sha256_file(job.clip.media_path)
                entry, warnings = render_clip(job, hashes[job.clip.media_path], progress)
                result = ClipResult(job, "ok", entry, tuple(warnings))
            except Exception as err:  # one clip failing must not lose the others: record it, go on
                cause = err.__cause__ or err.__context__
                if isinstance(cause, (KeyboardInterrupt, SystemExit)):
                    raise cause from None  # an interrupt wrapped by a worker thread stops the whole render
                entry = job_summary(job)
                text = str(err) if isinstance(err, DoppelError) else (
                    f"{type(err).__name__}: {err} (at {traceback.extract_tb(err.__traceback__)[-1].filename}:"
                    f"{traceback.extract_tb(err.__traceback__)[-1].lineno})")
                entry.update(status="failed", error=text, seconds={"total": round(time.monotonic() - t0, 3)})
                entry["output"]["path"] = None
                result = ClipResult(job, "failed", entry)
        done += job.frames
        results.append(result)
        entries.append(result.entry)
        if on_progress is not None:
            on_progress(RenderProgress(n, len(jobs), job.clip.clip_name, job.frames, job.frames, done, total))
        if on_clip is not None:
            on_clip(result)
        write_render_json(plan, entries, "running", started, ())
    rendered = [rendered_clip(r.job) for r in results if r.status != "failed"]
    for path in plan.return_edits:
        write_return_edit(plan.timeline, rendered, path)
    report = RenderReport(plan, tuple(results), plan.return_edits, time.time() - started)
    write_render_json(plan, entries, report.status, started, plan.return_edits)
    return report


def render_edit(edit: str | Path, preset: str | Path | Preset, out_dir: str | Path, **kwargs: Any) -> RenderReport:
    """`plan_render` + `run_render` with default listeners (none). kwargs go to `plan_render`."""
    return run_render(plan_render(edit, preset, out_dir, **kwargs))


__all__ = [
    "ClipJob", "ClipResult", "ModelRef", "RENDER_JSON", "RenderPlan", "RenderProgress", "RenderReport",
    "check_model", "job_summary", "plan_render", "render_clip", "render_edit", "run_render",
]
