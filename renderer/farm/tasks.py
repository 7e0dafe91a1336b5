"""The farm's two task kinds as they run on a worker: Render (one chunk of one clip) and Publish.

Both re-plan from the job's path parameters, so a worker depends only on what the farm mapped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renderer.atomic import write_json_atomic
from renderer.errors import DoppelError, InputError, RenderError
from renderer.farm.job import parse_chunk

CHUNKS_DIR = "chunks"
CHUNK_RECORD_SUFFIX = ".chunk.json"

Progress = Callable[[str], None]  # receives OpenJD lines: "openjd_progress: 42.0", "openjd_status: ..."


# --------------------------------------------------------------------------- Render task


@dataclass(frozen=True)
class Chunk:
    """One chunk of one clip job: source frames first..last (inclusive) and where it lives."""

    job: Any  # renderer.render.ClipJob
    first: int
    last: int

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    @property
    def folder(self) -> Path:
        return chunk_folder(self.job)

    @property
    def name(self) -> str:
        return f"{self.first:07d}-{self.last:07d}"

    @property
    def path(self) -> Path:
        """The chunk's file; for an image-sequence clip, the pattern of its frames in a folder of its
        own (`chunks/<stem>/0000010-0000019/<stem>.%04d.exr`), numbered like the final sequence."""
        if self.job.is_sequence:
            return self.folder / self.name / self.job.output.name
        return self.folder / f"{self.name}{self.job.output.suffix}"

    @property
    def record(self) -> Path:
        return self.folder / f"{self.name}{self.job.output.suffix}{CHUNK_RECORD_SUFFIX}"

    @property
    def passes(self) -> dict[str, Path]:
        """This chunk's share of the clip's matte pass clips ({"matte": path, ...}, as the preset asks);
        for a sequence clip, sequences in folders beside the chunk's (`media.matte_paths`)."""
        from renderer.media import MATTE_SUFFIX, PLATE_SUFFIX, matte_paths

        if self.job.is_sequence:
            return {k: p for k, p in zip(("matte", "plate"), matte_paths(self.path)) if k in self.job.passes}
        suffixes = {"matte": MATTE_SUFFIX, "plate": PLATE_SUFFIX}
        return {kind: self.folder / f"{self.path.stem}{suffixes[kind]}" for kind in self.job.passes}

    def exists(self, path: Path) -> bool:
        """The chunk's file (or a pass of it) is there: a file, or a sequence's folder."""
        return path.parent.is_dir() if self.job.is_sequence else path.is_file()

    @property
    def gop(self) -> int | None:
        """h264: one closed GOP per chunk, starting on its first frame; intra codecs: None."""
        return self.frames if self.job.preset.output.codec == "h264" else None

    @property
    def key(self) -> str:
        """What makes two renders of this chunk the same: the clip's farm key, the range, the GOP."""
        blob = json.dumps({"clip": clip_key(self.job), "range": [self.first, self.last], "origin": self.job.first,
                           "gop": self.gop}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def clip_key(job: Any) -> str:
    """The clip's inputs hash without the source's path and mtime (they differ between farm
    workers, whose inputs arrive under per-session folders): name and size stand for the source."""
    from renderer.swap import SEGMENT_FRAMES

    inputs = dict(job.inputs)
    source = inputs.get("source", {})
    inputs["source"] = {"name": Path(source.get("path", "")).name, "size": source.get("size")}
    inputs["segment_frames"] = SEGMENT_FRAMES
    inputs.pop("signing", None)  # chunks are never signed (Publish signs): workers need no keys to match
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def chunk_folder(job: Any) -> Path:
    """OUT/chunks/<output stem>/ (a sequence's output is a pattern in OUT/media/<name>/: OUT/chunks/<name>/)."""
    if job.is_sequence:
        return job.output.parent.parent.parent / CHUNKS_DIR / job.output.parent.name
    return job.output.parent.parent / CHUNKS_DIR / job.output.stem


def _record_ok(chunk: Chunk) -> dict[str, Any] | None:
    from renderer.plan import media_sha256

    try:
        record = json.loads(chunk.record.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != chunk.key or not chunk.exists(chunk.path):
        return None
    for name, digest in (record.get("passes") or {}).items():  # the chunk's matte pass clips, if any
        part = chunk.folder / name  # recorded relative to the chunks folder
        if not chunk.exists(part) or media_sha256(part) != digest:
            return None
    return record if record.get("sha256") == media_sha256(chunk.path) else None


def find_job(render_plan: Any, index: int, where: str) -> Any:
    for job in render_plan.jobs:
        if job.index == index:
            return job
    raise InputError(f"{where}: the edit has no marked clip {index} (it has {len(render_plan.jobs)}: "
                     f"{', '.join(str(j.index) for j in render_plan.jobs) or 'none'}); was the edit changed "
                     f"after the bundle was exported?")


def run_task(render_plan: Any, frames: str, *, progress: Progress | None = None, force: bool = False
             ) -> dict[str, Any]:
    """Render one chunk (a Frames value) of the plan; return its record. Skips up-to-date work."""
    from renderer.render import colour_tags
    from renderer.swap import SwapModels, render_range, swap_settings
    from renderer.media import open_matte_writer, output_color, probe
    from renderer.plan import media_sha256

    say = progress or (lambda line: None)
    index, first, last = parse_chunk(frames)
    job = find_job(render_plan, index, f"chunk {frames}")
    if not (job.first <= first <= last <= job.last):
        raise InputError(f"chunk {frames} = source frames {first}-{last} of clip {index} '{job.clip.clip_name}' "
                         f"is outside the frames it renders ({job.first}-{job.last}, handles included); "
                         f"re-export the bundle after changing the edit or preset")
    chunk = Chunk(job, first, last)
    name = f"clip {index} '{job.clip.clip_name}' frames {first}-{last}"
    if not force and job.up_to_date() is not None:
        say(f"openjd_status: {name}: clip already published and up to date; nothing to do")
        say("openjd_progress: 100.0")
        return {"status": "skipped", "reason": "clip published", "path": str(job.output)}
    recorded = None if force else _record_ok(chunk)
    if recorded is not None:
        say(f"openjd_status: {name}: chunk up to date, skipped ({chunk.path.name})")
        say("openjd_progress: 100.0")
        return {**recorded, "status": "skipped"}
    chunk.folder.mkdir(parents=True, exist_ok=True)
    for leftover in chunk.folder.glob(f".{chunk.path.stem}.partial-*{chunk.path.suffix}"):
        leftover.unlink(missing_ok=True)  # a killed try of this same chunk: only this task writes it
    for leftover in chunk.folder.glob(f".{chunk.path.stem}.*.partial-*.mov"):
        leftover.unlink(missing_ok=True)  # ... and of its matte pass clips
    chunk.record.unlink(missing_ok=True)
    if job.is_sequence:  # the chunk's sequences: folders written whole; an old or killed try's go first
        import shutil

        for leftover in chunk.folder.glob(f".{chunk.name}*.partial-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for path in (chunk.path, *chunk.passes.values()):
            if path.parent.is_dir():
                shutil.rmtree(path.parent)
    info = probe(job.clip.media_path, rate=job.clip.rate)
    # Chunks are labelled too (synthetic media on disk); Publish writes the full label and signs the result.
    label = {"comment": f"SYNTHETIC MEDIA: doppel farm chunk (deepfake face swap), not for delivery. "
                        f"Model '{job.model.path.name}' of {', '.join(job.model.identities) or 'unnamed identities'}; "
                        f"model card sha256 {job.model.card_sha256}."}
    say(f"openjd_status: {name}: rendering {chunk.frames} frames")
    last_pct = [-1.0]

    def on_frame(done: int, total: int) -> None:
        pct = round(100.0 * done / total, 1)
        if pct - last_pct[0] >= 5.0 or done == total:
            last_pct[0] = pct
            say(f"openjd_progress: {pct}")

    started = time.monotonic()
    color = colour_tags(job, info)
    passes = chunk.passes
    settings = swap_settings(job.preset, base_dir=job.preset_dir)
    with contextlib.ExitStack() as outputs:
        # The network loads in its own process beside the chunk's decode and tracking (`SwapModels`).
        models = outputs.enter_context(SwapModels())
        # The chunk's matte pass clips come from the same pass (ProRes is intra: Publish joins them as is).
        matte = outputs.enter_context(open_matte_writer(
            info, first, last, matte=passes.get("matte"), plate=passes.get("plate"),
            color=color or output_color(info), metadata=label)) if passes else None
        stats = render_range(
            job.clip.media_path, chunk.path, model_dir=job.model.path, model=models.get(job.model.path, settings),
            settings=settings, first=first, last=last,
            swap_ranges=[(job.first, job.last)], codec=job.preset.output.codec, pix_fmt=job.preset.output.writer_pix_fmt,
            color=color, metadata=label, audio=False,
            origin=job.first, gop=chunk.gop, progress=on_frame, matte=matte, rate=job.clip.rate, info=info)
    record = {"key": chunk.key, "clip_key": clip_key(job), "clip": index, "first": first, "last": last,
              "origin": job.first, "gop": chunk.gop, "path": chunk.path.name, "sha256": media_sha256(chunk.path),
              "passes": {str(p.relative_to(chunk.folder)): media_sha256(p) for p in passes.values()},
              "stats": stats.to_json(), "seconds": round(time.monotonic() - started, 3)}
    write_json_atomic(chunk.record, record)
    say(f"openjd_status: {name}: done ({stats.swapped} swapped, {stats.preroll} pre-roll frames, "
        f"{record['seconds']} s)")
    return {**record, "status": "ok"}


# --------------------------------------------------------------------------- Publish task


def find_chunks(job: Any) -> list[Chunk]:
    """Recorded, intact chunks of `job` that tile job.first..job.last; RenderError naming the gaps."""
    key = clip_key(job)
    by_first: dict[int, list[Chunk]] = {}
    folder = chunk_folder(job)
    for record_path in sorted(folder.glob(f"*{CHUNK_RECORD_SUFFIX}")) if folder.is_dir() else []:
        try:
            record = json.loads(record_path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("clip_key") != key:
            continue
        chunk = Chunk(job, int(record["first"]), int(record["last"]))
        if chunk.record == record_path and chunk.path.name == record.get("path") and _record_ok(chunk) is not None:
            by_first.setdefault(chunk.first, []).append(chunk)

    def tile(start: int) -> list[Chunk] | None:  # depth-first: chunks from two exports may coexist
        if start == job.last + 1:
            return []
        for chunk in sorted(by_first.get(start, []), key=lambda c: -c.frames):
            rest = tile(chunk.last + 1)
            if rest is not None:
                return [chunk, *rest]
        return None

    found = tile(job.first)
    if found is None:
        have = sorted((c.first, c.last) for cs in by_first.values() for c in cs)
        raise RenderError(f"clip {job.index} '{job.clip.clip_name}': chunks do not cover frames {job.first}-{job.last} "
                          f"(found {', '.join(f'{a}-{b}' for a, b in have) or 'none'} in {folder}); "
                          f"run the Render tasks first")
    return found


def publish_clip(job: Any, source_sha256: str) -> tuple[dict[str, Any], list[str]]:
    """Join a clip's chunks into its final output, label and sign it, record it; (entry, warnings)."""
    from renderer.media import concat, probe
    from renderer.media.sequence_write import join_sequences, replace_sequence_folder
    from renderer.provenance import claim_for_model, label_metadata, matte_label, signed_output
    from renderer.render import remove_stale_partials

    chunks = find_chunks(job)
    mc = job.clip
    info = probe(mc.media_path, rate=mc.rate)
    if info.vfr:
        time_base, offsets = info.time_base, [info.pts[c.first] - info.pts[job.first] for c in chunks]
    else:
        time_base, offsets = 1 / info.fps, [c.first - job.first for c in chunks]
    claim = claim_for_model(mc.media_path, job.model.path, [(0, job.frames)], preset_sha256=job.preset_sha256,
                            source_sha256=source_sha256)
    finals = [job.output, *job.passes.values()]
    for path in finals:  # a sequence is its own folder: an old one is replaced whole (a re-publish)
        if job.is_sequence:
            replace_sequence_folder(path.parent)
        remove_stale_partials(path.parent if job.is_sequence else path)
    started = time.monotonic()
    if job.is_sequence:
        # Frames are files: each chunk wrote its own frame numbers; they are assembled (EXR frames
        # relabelled for delivery, no pixel re-encoded) and the whole sequence is signed once.
        numbers = info.sequence.numbers[job.first: job.last + 1] if info.sequence else range(job.first, job.last + 1)
        with contextlib.ExitStack() as outputs:
            target = outputs.enter_context(signed_output(job.output, claim, job.signing, source=mc.media_path))
            join_sequences([c.path for c in chunks], target.tmp, numbers,
                           label_metadata(claim, signed=job.signing is not None))
            passes = {kind: outputs.enter_context(signed_output(path, claim, job.signing, source=mc.media_path))
                      for kind, path in job.passes.items()}
            for kind, pass_target in passes.items():
                join_sequences([c.passes[kind] for c in chunks], pass_target.tmp, numbers,
                               matte_label(claim, signed=job.signing is not None, kind=kind,
                                           output_name=job.output.name))
        return _published(job, chunks, target, passes, source_sha256, started)
    with contextlib.ExitStack() as outputs:
        target = outputs.enter_context(signed_output(job.output, claim, job.signing, source=mc.media_path))
        concat([c.path for c in chunks], target.tmp, time_base=time_base, offsets=offsets, fps=info.fps,
               timecode=job.timecode, metadata=label_metadata(claim, signed=job.signing is not None),
               audio_from=(mc.media_path, job.first, job.last) if job.preset.output.audio != "none" and info.audio
               else None)
        passes = {kind: outputs.enter_context(signed_output(path, claim, job.signing, source=mc.media_path))
                  for kind, path in job.passes.items()}
        for kind, pass_target in passes.items():
            concat([c.passes[kind] for c in chunks], pass_target.tmp, time_base=time_base, offsets=offsets,
                   fps=info.fps, timecode=job.timecode,
                   metadata=matte_label(claim, signed=job.signing is not None, kind=kind, output_name=job.output.name))
    return _published(job, chunks, target, passes, source_sha256, started)


def _published(job: Any, chunks: list[Chunk], target: Any, passes: dict[str, Any], source_sha256: str,
               started: float) -> tuple[dict[str, Any], list[str]]:
    """The render.json entry of a published clip (and its `<output>.inputs.json`, which marks it done)."""
    from renderer.plan import media_sha256
    from renderer.render import job_summary

    signed = target.result
    records = [json.loads(c.record.read_text("utf-8")) for c in chunks]
    entry = job_summary(job)
    entry["source"]["sha256"] = source_sha256
    entry["output"].update({"sha256": media_sha256(job.output), "frames": job.frames, "timecode": job.timecode,
                            "signed": signed.signed, "manifest": signed.manifest,
                            "sidecar": str(signed.sidecar) if signed.sidecar else None})
    for kind, pass_target in passes.items():
        result = pass_target.result
        entry["output"][kind].update({"sha256": media_sha256(pass_target.final), "frames": job.frames,
                                      "timecode": job.timecode, "signed": result.signed, "manifest": result.manifest,
                                      **({"sidecar": str(result.sidecar)} if result.sidecar else {})})
    passed: dict[str, int] = {}
    for r in records:
        for reason, n in (r["stats"].get("passed_through") or {}).items():
            passed[reason] = passed.get(reason, 0) + n
    entry["frames"] = {"swapped": sum(r["stats"].get("swapped", 0) for r in records), "passed_through": passed,
                       "faces": sum(r["stats"].get("faces", 0) for r in records)}
    entry["chunks"] = [{"first_frame": r["first"], "last_frame": r["last"], "preroll_frames":
                        r["stats"].get("preroll_frames"), "seconds": r["seconds"]} for r in records]
    entry["seconds"] = {"render_total": round(sum(r["seconds"] for r in records), 3),
                        "publish": round(time.monotonic() - started, 3)}
    entry["status"] = "ok"
    entry["error"] = None
    write_json_atomic(job.sidecar, {"inputs_sha256": job.inputs_sha256, "inputs": job.inputs, "entry": entry})
    return entry, [signed.warning] if signed.warning else []


def publish(render_plan: Any, *, progress: Progress | None = None) -> Any:
    """The Publish step: each clip's final media (or kept when up to date), the return edits and
    render.json, as `renderer.render.run_render` writes them. Returns a `RenderReport`."""
    from renderer.plan import media_sha256
    from renderer.render import (
        ClipResult, RenderReport, out_dir_lock, rendered_clip, write_render_json, write_returns, job_summary,
    )

    say = progress or (lambda line: None)
    started = time.time()
    results: list[Any] = []
    hashes: dict[Path, str] = {}
    with out_dir_lock(render_plan.out_dir):
        for n, job in enumerate(render_plan.jobs):
            name = f"clip {job.index} '{job.clip.clip_name}'"
            recorded = job.up_to_date()
            if recorded is not None:
                entry = {**recorded, "status": "skipped", "error": None,
                         "note": "up to date: same inputs, output intact"}
                results.append(ClipResult(job, "skipped", entry))
                say(f"openjd_status: {name}: up to date ({job.output.name})")
            else:
                t0 = time.monotonic()
                try:
                    if job.clip.media_path not in hashes:
                        hashes[job.clip.media_path] = media_sha256(job.clip.media_path)
                    entry, warnings = publish_clip(job, hashes[job.clip.media_path])
                    results.append(ClipResult(job, "ok", entry, tuple(warnings)))
                    say(f"openjd_status: {name}: published {job.output.name}")
                    for w in warnings:
                        say(f"openjd_status: warning: {w}")
                except DoppelError as err:
                    entry = job_summary(job)
                    entry.update(status="failed", error=str(err), seconds={"total": round(time.monotonic() - t0, 3)})
                    entry["output"]["path"] = None
                    results.append(ClipResult(job, "failed", entry))
                    say(f"openjd_status: {name}: FAILED: {err}")
            say(f"openjd_progress: {round(100.0 * (n + 1) / len(render_plan.jobs), 1)}")
        rendered = [rendered_clip(r.job) for r in results if r.status != "failed"]
        written, return_errors = write_returns(render_plan.timeline, rendered, render_plan.return_edits,
                                               render_plan.others)
        for path, why in return_errors.items():
            say(f"openjd_status: return edit {Path(path).name} NOT written: {why}")
        report = RenderReport(render_plan, tuple(results), written, time.time() - started, return_errors)
        write_render_json(render_plan, [r.entry for r in results] + report.refused(), report.status, started, written,
                          return_errors)
    return report
