"""A render job: the FACESWAP-marked clips of an edit -> swapped media, a return edit, render.json.

Two steps, so that everything that can be wrong with the input is found before a frame
is decoded:

    plan = plan_render(edit, preset, out_dir, model=..., media_roots=...)   # InputError/ModelError (exit 2)
    report = run_render(plan, on_progress=..., on_clip=...)                 # per-clip ok | failed | skipped

`plan_render` (`renderer.plan`) checks every input and names every output; it writes nothing.

`run_render` renders only the marked clips (other clips are never decoded), each over
its source range plus the preset's handles (clamped to the media), into OUT_DIR/media/:
output frame N is source frame `first + N`, its timecode the source timecode of that
frame, frame rate and colour tags from the source (unless the preset sets colour tags).

Decisions:
- Handles are swapped too (swap range = the whole rendered range), so an editor who
  extends a cut into the handles sees the swapped face, not a pop back to the original.
- Resume: a clip is skipped when `ClipJob.up_to_date` (same inputs hash, output intact; see
  `renderer.plan`). The sidecar is written last, after the output landed under its final
  name (signed under its temporary name, then renamed), so a kill at any point leaves
  either a complete, recorded output or one that is rendered again.
- Matte pass (`output.matte` / `output.plate`): the clip's `<output stem>.matte.mov` / `.plate.mov`
  come from the same render pass (`media.MatteWriter`), land and are signed like the output, are
  recorded under the entry's `output.matte` / `output.plate`, and a missing or changed one makes
  the clip render again.
- A clip that fails is recorded as failed with its error; the other clips go on, the
  return edit covers the ones that rendered, and the job's exit status is 1.
- No marked clips: nothing renders, the return edit is the input plus an empty FACESWAP
  track (as `renderer.timeline` decided), status "nothing marked", exit 0.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from renderer.atomic import remove_stale_partials, sha256_file, write_json_atomic
from renderer.errors import DoppelError, InputError
from renderer.plan import (
    RENDER_JSON, SOFTWARE, ClipJob, ModelRef, RenderPlan, check_model, media_sha256, plan_render,
)
from renderer.presets import Preset, preset_sha256
from renderer.timeline import RenderedClip, write_return_edit

if TYPE_CHECKING:
    from renderer.swap import SwapModels

RENDER_SCHEMA = 1
LOCK_NAME = ".doppel-render.lock"


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
    return_edits: tuple[Path, ...]  # the return edits written
    seconds: float
    return_errors: dict[str, str] = field(default_factory=dict)  # return edit path -> why it was not written

    @property
    def failed(self) -> list[ClipResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.return_errors else 0

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.return_errors:
            return "return edit failed"
        return "nothing marked" if not self.plan.jobs else "ok"

    def refused(self) -> list[dict[str, Any]]:
        """The marked clips not rendered, each with its one-line reason."""
        return [r.to_json() for r in self.plan.refused]

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
            "mattes": [r.entry["output"]["matte"]["path"] for r in self.results
                       if r.status != "failed" and r.entry["output"].get("matte")],
            "plates": [r.entry["output"]["plate"]["path"] for r in self.results
                       if r.status != "failed" and r.entry["output"].get("plate")],
            "errors": {r.job.clip.clip_name: r.error for r in self.failed},
            "return_errors": dict(self.return_errors),
            "refused": self.refused(),
            "seconds": round(self.seconds, 3),
        }


def job_summary(job: ClipJob) -> dict[str, Any]:
    """The part of a render.json entry known before rendering (also what `--dry-run` prints)."""
    mc = job.clip
    return {
        "index": job.index,
        "clip": mc.clip_name,
        **({"speed": mc.speed.describe(), "record_frames": mc.record_frames} if mc.speed.retimed else {}),
        "track": mc.track_index + 1,
        "marker": mc.marker,
        "record_timecode": mc.record_timecode,
        "source": {"path": str(mc.media_path), "first_frame": mc.source_first_frame,
                   "last_frame": mc.source_last_frame, "timecode": mc.media_timecode,
                   "fps": f"{mc.rate.numerator}/{mc.rate.denominator}", "matched_by": mc.media_match,
                   **({"mapped": f"by timecode: edit at {mc.edit_rate:.3f} fps"} if mc.edit_rate else {})},
        "render_range": {"first_frame": job.first, "last_frame": job.last, "frames": job.frames,
                         "handles": list(job.handles), "timecode": job.timecode},
        "swapped_range": [job.first, job.last],
        "output": {"path": str(job.output),
                   "codec": f"{job.output.suffix.lstrip('.')} sequence" if job.is_sequence else job.preset.output.codec,
                   **{kind: {"path": str(path)} for kind, path in job.passes.items()}},
        "model": {"path": str(job.model.path), "from": job.model.origin, "card_sha256": job.model.card_sha256,
                  "weights_sha256": job.model.weights_sha256, "identities": list(job.model.identities)},
        "preset_sha256": job.preset_sha256,
        "overrides": dict(mc.overrides),
        **({"warnings": list(mc.warnings)} if mc.warnings else {}),
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


def render_clip(job: ClipJob, source_sha256: str, progress: Callable[[int, int], None] | None = None,
                models: SwapModels | None = None) -> tuple[dict[str, Any], list[str]]:
    """Render, label and sign one job; return (render.json entry, warnings). Raises on failure.
    `models`: the render's model processes (a clip's model comes from there; None: loaded here).

    The file is encoded and signed under a temporary name and lands under its final name only
    complete and signed (`provenance.signed_output`); so do its matte pass clips (`job.passes`),
    written in the same pass; then the `<output>.inputs.json` sidecar is written, which marks it done.
    """
    from renderer.media import open_matte_writer, output_color, probe
    from renderer.provenance import claim_for_model, label_metadata, matte_label, signed_output
    from renderer.swap import render_range, swap_settings

    mc = job.clip
    if job.is_sequence:  # a sequence is its own folder: replaced whole (a re-render), never half
        from renderer.media.sequence_write import replace_sequence_folder

        replace_sequence_folder(job.output.parent)
        remove_stale_partials(job.output.parent)
        job.output.parent.parent.mkdir(parents=True, exist_ok=True)
        for path in job.passes.values():  # the matte pass sequences: folders of their own, replaced alike
            replace_sequence_folder(path.parent)
            remove_stale_partials(path.parent)
    else:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(job.output)
        for path in job.passes.values():
            remove_stale_partials(path)
    info = probe(mc.media_path, rate=mc.rate)
    claim = claim_for_model(mc.media_path, job.model.path, [(0, job.frames)], preset_sha256=job.preset_sha256,
                            source_sha256=source_sha256)
    started = time.monotonic()
    color = colour_tags(job, info)
    with contextlib.ExitStack() as outputs:
        target = outputs.enter_context(signed_output(job.output, claim, job.signing, source=mc.media_path))
        passes = {kind: outputs.enter_context(signed_output(path, claim, job.signing, source=mc.media_path))
                  for kind, path in job.passes.items()}
        labels = {kind: matte_label(claim, signed=job.signing is not None, kind=kind, output_name=job.output.name)
                  for kind in ("matte", "plate")}
        matte = outputs.enter_context(open_matte_writer(
            info, job.first, job.last, matte=passes["matte"].tmp if "matte" in passes else None,
            plate=passes["plate"].tmp if "plate" in passes else None, color=color or output_color(info),
            metadata=labels["matte"], plate_metadata=labels["plate"])) if passes else None
        settings = swap_settings(job.preset, base_dir=job.preset_dir)
        stats = render_range(
            mc.media_path, target.tmp, model_dir=job.model.path, settings=settings,
            model=models.get(job.model.path, settings) if models is not None else None,
            first=job.first, last=job.last, swap_ranges=[(job.first, job.last)], codec=job.preset.output.codec,
            pix_fmt=job.preset.output.writer_pix_fmt, color=color,
            metadata=label_metadata(claim, signed=job.signing is not None), audio=job.preset.output.audio != "none",
            progress=progress, matte=matte, rate=mc.rate, info=info,
        )
        render_s = time.monotonic() - started
    signed = target.result
    entry = job_summary(job)
    for kind, pass_target in passes.items():
        result = pass_target.result
        entry["output"][kind].update({"sha256": media_sha256(pass_target.final), "frames": job.frames,
                                      "timecode": job.timecode, "signed": result.signed, "manifest": result.manifest,
                                      **({"sidecar": str(result.sidecar)} if result.sidecar else {})})
    entry["source"]["sha256"] = source_sha256
    stats_json = stats.to_json()
    entry["output"].update({"sha256": media_sha256(job.output), "frames": job.frames, "timecode": job.timecode,
                            "signed": signed.signed, "manifest": signed.manifest,
                            "sidecar": str(signed.sidecar) if signed.sidecar else None})
    entry["frames"] = {"swapped": stats_json.get("swapped"), "passed_through": stats_json.get("passed_through"),
                       "faces": stats_json.get("faces"), "held": stats_json.get("frames_held"),
                       "faces_lost": stats_json.get("faces_lost")}
    entry["seconds"] = {**(stats_json.get("seconds") or {}), "render_total": round(render_s, 3),
                        "total": round(time.monotonic() - started, 3)}
    entry["status"] = "ok"
    entry["error"] = None
    write_json_atomic(job.sidecar, {"inputs_sha256": job.inputs_sha256, "inputs": job.inputs, "entry": entry})
    return entry, info.warnings(job.preset.output.codec) + ([signed.warning] if signed.warning else [])


def rendered_clip(job: ClipJob) -> RenderedClip:
    passes = job.passes
    return RenderedClip(job.clip, job.output, job.first, job.frames, job.timecode or "",
                        matte=passes.get("matte"), plate=passes.get("plate"))


def write_returns(timeline: Any, rendered: Sequence[RenderedClip], paths: Sequence[Path], others: Sequence[Any] = ()
                  ) -> tuple[tuple[Path, ...], dict[str, str]]:
    """Write every return edit that can be written: (paths written, {path: one-line reason} for the others).

    The .otio comes first and its writer expresses everything, so a format writer that fails
    (an AAF validation error, a rate the FCPXML writer cannot say, time effects it would drop)
    costs only its own file: the render and the .otio return are kept and the job exits 1.
    """
    written: list[Path] = []
    errors: dict[str, str] = {}
    for path in paths:
        try:
            write_return_edit(timeline, rendered, path, others=others)
            written.append(path)
        except DoppelError as err:
            errors[str(path)] = str(err).strip().splitlines()[0]
    return tuple(written), errors


def check_returns(plan: RenderPlan) -> dict[str, str]:
    """What `--dry-run` can know of the return writers: each return edit of the plan written with
    nothing rendered into a temp folder; {return edit path: one-line reason} for those that fail."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="doppel-dry-") as tmp:
        trial = [Path(tmp) / p.name for p in plan.return_edits]
        _, errors = write_returns(plan.timeline, [], trial, plan.others)
    back = {str(t): str(p) for t, p in zip(trial, plan.return_edits)}
    return {back[k]: v.replace(k, back[k]) for k, v in errors.items()}


def write_render_json(plan: RenderPlan, entries: list[dict[str, Any]], status: str, started: float,
                      return_edits: Sequence[Path], return_errors: Mapping[str, str] | None = None) -> None:
    write_json_atomic(plan.render_json, {
        "schema": RENDER_SCHEMA,
        "software": SOFTWARE,
        "status": status,
        "edit": {"path": str(plan.edit.resolve()), "sha256": sha256_file(plan.edit)},
        "preset": {"name": plan.preset.name, "source": plan.preset.source, "sha256": preset_sha256(plan.preset)},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "return_edits": [str(p) for p in return_edits],
        "return_errors": dict(return_errors or {}),
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
    from renderer.swap import SwapModels  # torch-free until a clip renders

    with out_dir_lock(plan.out_dir), SwapModels() as models:
        return _run_locked(plan, models, on_progress, on_clip, force, select)


def _run_locked(plan: RenderPlan, models: SwapModels, on_progress: Callable[[RenderProgress], None] | None,
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
                from renderer.swap import swap_settings

                # The clip's model starts loading (its own process) while the source is hashed.
                models.get(job.model.path, swap_settings(job.preset, base_dir=job.preset_dir))
                if job.clip.media_path not in hashes:
                    hashes[job.clip.media_path] = media_sha256(job.clip.media_path)
                entry, warnings = render_clip(job, hashes[job.clip.media_path], progress, models)
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
    written, return_errors = write_returns(plan.timeline, rendered, plan.return_edits, plan.others)
    report = RenderReport(plan, tuple(results), written, time.time() - started, return_errors)
    write_render_json(plan, entries + report.refused(), report.status, started, written, return_errors)
    return report


def render_edit(edit: str | Path, preset: str | Path | Preset, out_dir: str | Path, **kwargs: Any) -> RenderReport:
    """`plan_render` + `run_render` with default listeners (none). kwargs go to `plan_render`."""
    return run_render(plan_render(edit, preset, out_dir, **kwargs))


__all__ = [
    "ClipJob", "ClipResult", "ModelRef", "RENDER_JSON", "RenderPlan", "RenderProgress", "RenderReport",
    "check_model", "job_summary", "plan_render", "render_clip", "render_edit", "run_render", "write_returns",
    "check_returns",
]
