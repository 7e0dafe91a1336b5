"""Render farms: an edit as an Open Job Description job bundle, its tasks, and a local runner.

    export_bundle(edit, preset, bundle_dir, ...)   -> template.yaml, parameter_values.yaml, asset_references.yaml
    run_task(plan, "10000012-10000035")              one Render task: one chunk of one clip
    publish(plan)                                   the Publish task: join chunks, sign, return edit, render.json
    run_bundle(bundle_dir, workers=N, out_dir=...)  both steps on this machine through openjd.sessions

The job (specificationVersion jobtemplate-2023-09, extension TASK_CHUNKING) has two steps:

- Render: one task parameter `Frames` of type CHUNK[INT]. Every marked clip `i` owns the
  integers `i * CLIP_STRIDE + f` for the source frames `f` it renders (handles included), so
  the range expression has one interval per clip and CONTIGUOUS chunking never lets a chunk
  span two clips. A task renders its chunk with `swap.render_range(origin=clip's first frame)`,
  which decodes the pre-roll since the last tracking-state restart (`swap.SEGMENT_FRAMES`) and
  discards it, so the chunk's pixels are those of the unchunked render. h264 chunks are coded
  as closed GOPs starting on the chunk's first frame; intra codecs (ffv1, ProRes, DNxHR) need
  nothing. Chunks go to OUT/chunks/<output stem>/ with a JSON record each.
- Publish (depends on Render): per clip, join the chunks packet by packet (`media.concat`, no
  re-encode, the audio encoded once from the source over the whole range), label and sign the
  final file, write `<output>.inputs.json` so `doppel render` into the same folder sees it up to
  date, then the return edits and render.json, exactly as `renderer.render` writes them.

Planning (which clips, ranges, handles, output names, inputs hash) is `renderer.render.plan_render`,
run again on each worker from the job's PATH parameters (path-mapped by the farm), so workers
never depend on this machine's paths.

Idempotence: a chunk whose record holds the same chunk key and whose file still has the
recorded SHA-256 is skipped; a clip whose final output is already recorded up to date skips all
its chunks. Files appear under their final names only complete (written under a temporary
name, renamed), and the record is written after the file; a killed task leaves at most a
`.partial-` file, which the retry deletes before rendering.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from renderer.atomic import sha256_file, write_json_atomic, write_text_atomic
from renderer.errors import DoppelError, InputError, RenderError
from renderer.presets import load_preset, shipped_presets

CLIP_STRIDE = 10_000_000  # Frames value = clip index * CLIP_STRIDE + source frame
DEFAULT_CHUNK_FRAMES = 48
CHUNKS_DIR = "chunks"
CHUNK_RECORD_SUFFIX = ".chunk.json"
TEMPLATE = "template.yaml"
PARAMETER_VALUES = "parameter_values.yaml"
ASSET_REFERENCES = "asset_references.yaml"
EXTENSIONS = ["TASK_CHUNKING"]

Progress = Callable[[str], None]  # receives OpenJD lines: "openjd_progress: 42.0", "openjd_status: ..."


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class FarmInputs:
    """What a worker needs to plan the edit again: the values of the job's parameters."""

    edit: Path
    preset: Path
    out_dir: Path
    model: Path | None = None
    media_roots: tuple[Path, ...] = ()
    direction: str | None = None
    edl_rate: str | None = None


def plan(inputs: FarmInputs) -> Any:
    """The `renderer.render.RenderPlan` for these inputs (every input checked; InputError/ModelError).

    The one place the farm plans: it is `doppel render`'s own planning, so a farm render and
    `doppel render` of the same edit pick the same clips, ranges, names and inputs hashes.
    """
    from renderer.commands.render import _rate
    from renderer.render import plan_render

    return plan_render(inputs.edit, inputs.preset, inputs.out_dir, model=inputs.model,
                       media_roots=list(inputs.media_roots), direction=inputs.direction,
                       edl_rate=_rate(inputs.edl_rate))


def preset_file(preset: str | Path) -> Path:
    """The YAML file of a shipped preset name or a preset path (InputError when neither)."""
    shipped = shipped_presets()
    if str(preset) in shipped:
        return shipped[str(preset)]
    load_preset(preset)  # the usual error, with "did you mean"
    return Path(preset).resolve()


def frames_range(jobs: Sequence[Any]) -> str:
    """The Frames range expression: `i*CLIP_STRIDE+first - i*CLIP_STRIDE+last` per clip job."""
    return ",".join(f"{j.index * CLIP_STRIDE + j.first}-{j.index * CLIP_STRIDE + j.last}" for j in jobs)


def parse_chunk(text: str) -> tuple[int, int, int]:
    """(clip index, first source frame, last source frame) of a Frames chunk value ("a-b" or "a")."""
    try:
        lo_text, _, hi_text = str(text).strip().partition("-")
        lo, hi = int(lo_text), int(hi_text or lo_text)
    except ValueError:
        raise InputError(f"chunk {text!r} is not a frame range (allowed: 'FIRST-LAST' or 'FRAME', "
                         f"integers from the job's Frames parameter)") from None
    if lo < 0 or hi < lo or lo // CLIP_STRIDE != hi // CLIP_STRIDE:
        raise InputError(f"chunk {text!r} is not one contiguous range of one clip "
                         f"(clip i owns {CLIP_STRIDE}*i + frame)")
    return lo // CLIP_STRIDE, lo % CLIP_STRIDE, hi % CLIP_STRIDE


def chunk_spans(first: int, last: int, chunk_frames: int) -> list[tuple[int, int]]:
    """The (first, last) chunks OpenJD's CONTIGUOUS chunking makes of first..last (sizes evened out)."""
    from openjd.model._step_param_space_iter import divide_int_interval_into_chunks

    spans = divide_int_interval_into_chunks(chunk_frames, first, last)
    return [(int(a), int(b)) for a, b in (s.split("-") for s in spans)]


# --------------------------------------------------------------------------- bundle export


@dataclass(frozen=True)
class Bundle:
    """An exported job bundle and what it holds."""

    path: Path
    clips: int
    tasks: int
    frames: int
    parameters: dict[str, Any]


def _path_param(name: str, kind: str, flow: str, description: str, default: str | None = None) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "type": "PATH", "objectType": kind, "dataFlow": flow,
                             "description": description}
    if default is not None:
        param["default"] = default
    return param


def build_template(name: str, frames: str, *, chunk_frames: int, models: int, media_roots: int,
                   direction: str | None, edl_rate: str | None) -> dict[str, Any]:
    """The job template (a dict for yaml.safe_dump). No path of this machine appears in it."""
    params: list[dict[str, Any]] = [
        _path_param("EditFile", "FILE", "IN", "The edit with FACESWAP markers (otio, xml, fcpxml, edl, aaf)"),
        _path_param("PresetFile", "FILE", "IN", "The Doppel preset (YAML)"),
    ]
    if models:
        params.append(_path_param("ModelDir", "DIRECTORY", "IN", "Trained Doppel model (model.yaml + safetensors)"))
    for k in range(media_roots):
        params.append(_path_param(f"MediaRoot{k + 1}", "DIRECTORY", "IN", "A folder holding the edit's media"))
    params += [
        _path_param("OutputDir", "DIRECTORY", "OUT", "Where media/, chunks/, the return edits and render.json go"),
        {"name": "ChunkFrames", "type": "INT", "default": chunk_frames, "minValue": 1,
         "description": "Frames per Render task (contiguous, never across clips)"},
        {"name": "DoppelCommand", "type": "STRING", "default": "doppel",
         "description": "How a worker runs doppel (a name on PATH or a full path)"},
    ]
    common = ["--edit", "{{Param.EditFile}}", "--preset", "{{Param.PresetFile}}", "--out", "{{Param.OutputDir}}"]
    if models:
        common += ["--model", "{{Param.ModelDir}}"]
    for k in range(media_roots):
        common += ["--media-root", f"{{{{Param.MediaRoot{k + 1}}}}}"]
    if direction:
        common += ["--direction", direction]
    if edl_rate:
        common += ["--edl-rate", str(edl_rate)]
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "extensions": list(EXTENSIONS),
        "name": f"Doppel face swap: {name}",
        "description": "Render the FACESWAP-marked clips of an edit in chunks, then join them, sign them "
                       "and write the return edit (doppel farm). GPU: set CUDA_VISIBLE_DEVICES per worker.",
        "parameterDefinitions": params,
        "steps": [
            {
                "name": "Render",
                "parameterSpace": {"taskParameterDefinitions": [{
                    "name": "Frames", "type": "CHUNK[INT]", "range": frames,
                    "chunks": {"defaultTaskCount": "{{Param.ChunkFrames}}", "rangeConstraint": "CONTIGUOUS"},
                }]},
                "script": {"actions": {"onRun": {
                    "command": "{{Param.DoppelCommand}}",
                    "args": ["farm", "task", *common, "--frames", "{{Task.Param.Frames}}"],
                }}},
            },
            {
                "name": "Publish",
                "dependencies": [{"dependsOn": "Render"}],
                "script": {"actions": {"onRun": {
                    "command": "{{Param.DoppelCommand}}",
                    "args": ["farm", "publish", *common],
                }}},
            },
        ],
    }


def export_bundle(
    edit: str | Path,
    preset: str | Path,
    bundle_dir: str | Path,
    *,
    model: str | Path | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    media_roots: Sequence[str | Path] = (),
    direction: str | None = None,
    edl_rate: str | None = None,
    out_dir: str | Path | None = None,
) -> Bundle:
    """Check the edit as `doppel render` would, then write a Deadline Cloud-style job bundle.

    The job parameters' values (this machine's paths) go to parameter_values.yaml; inputs
    (edit, preset, media, models) and the output folder to asset_references.yaml; the template
    holds no path. out_dir: the OutputDir value (default BUNDLE_DIR/output). InputError for a
    chunk size under 1, and whatever planning finds wrong.
    """
    if not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise InputError(f"--chunk-frames {chunk_frames!r} is not allowed (allowed: an integer >= 1)")
    bundle = Path(bundle_dir)
    out = Path(out_dir) if out_dir is not None else bundle / "output"
    edit_path, preset_path = Path(edit).resolve(), preset_file(preset)
    roots = [Path(r).resolve() for r in media_roots]
    render_plan = plan(FarmInputs(edit_path, preset_path, out.resolve(), Path(model).resolve() if model else None,
                                  tuple(roots), direction, edl_rate))
    models = sorted({j.model.path for j in render_plan.jobs})
    one_model = Path(model).resolve() if model else (models[0] if len(models) == 1 else None)
    media = sorted({j.clip.media_path.resolve() for j in render_plan.jobs})
    # Workers find media through media roots (path-mapped), not through the edit's own URLs.
    media_dirs = list(dict.fromkeys([*roots, *(m.parent for m in media)]))
    if not render_plan.jobs:
        frames_expr = ""
    else:
        frames_expr = frames_range(render_plan.jobs)
    template = build_template(edit_path.name, frames_expr, chunk_frames=chunk_frames, models=1 if one_model else 0,
                              media_roots=len(media_dirs), direction=direction, edl_rate=edl_rate)
    if not render_plan.jobs:  # an empty range is not allowed: publish alone writes the empty FACESWAP track
        template["steps"] = [template["steps"][1]]
        del template["steps"][0]["dependencies"]
    values: list[dict[str, Any]] = [{"name": "EditFile", "value": str(edit_path)},
                                    {"name": "PresetFile", "value": str(preset_path)}]
    if one_model:
        values.append({"name": "ModelDir", "value": str(one_model)})
    values += [{"name": f"MediaRoot{k + 1}", "value": str(d)} for k, d in enumerate(media_dirs)]
    values += [{"name": "OutputDir", "value": str(out.resolve())}, {"name": "ChunkFrames", "value": chunk_frames}]
    extra_files = [Path(p) for p in _preset_extra_files(render_plan)]
    assets = {"assetReferences": {
        "inputs": {"filenames": [str(p) for p in [edit_path, preset_path, *media, *extra_files]],
                   "directories": [str(m) for m in models]},
        "outputs": {"directories": [str(out.resolve())]},
        "referencedPaths": [],
    }}
    bundle.mkdir(parents=True, exist_ok=True)
    header = "# Doppel farm job bundle ({}): `doppel farm run {}` or `deadline bundle submit {}`\n"
    write_text_atomic(bundle / TEMPLATE, header.format(TEMPLATE, bundle, bundle)
                      + yaml.safe_dump(template, sort_keys=False, width=120))
    write_text_atomic(bundle / PARAMETER_VALUES, yaml.safe_dump({"parameterValues": values}, sort_keys=False))
    write_text_atomic(bundle / ASSET_REFERENCES, yaml.safe_dump(assets, sort_keys=False))
    tasks = sum(len(chunk_spans(j.first, j.last, chunk_frames)) for j in render_plan.jobs)
    return Bundle(bundle, len(render_plan.jobs), tasks, sum(j.frames for j in render_plan.jobs),
                  {v["name"]: v["value"] for v in values})


def _preset_extra_files(render_plan: Any) -> list[str]:
    """Files a preset refers to that workers need (an identity reference image)."""
    found = []
    for job in render_plan.jobs:
        ref = job.preset.identity
        if ref:
            path = Path(ref) if Path(ref).is_absolute() else (job.preset_dir or Path.cwd()) / ref
            found.append(str(path.resolve()))
    return sorted(set(found))


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
    def path(self) -> Path:
        return self.folder / f"{self.first:07d}-{self.last:07d}{self.job.output.suffix}"

    @property
    def record(self) -> Path:
        return self.path.with_name(self.path.name + CHUNK_RECORD_SUFFIX)

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
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def chunk_folder(job: Any) -> Path:
    return job.output.parent.parent / CHUNKS_DIR / job.output.stem


def _record_ok(record_path: Path, key: str, path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(record_path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or not path.is_file():
        return None
    return record if record.get("sha256") == sha256_file(path) else None


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
    from renderer.swap import render_range, swap_settings
    from renderer.media import probe

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
    recorded = None if force else _record_ok(chunk.record, chunk.key, chunk.path)
    if recorded is not None:
        say(f"openjd_status: {name}: chunk up to date, skipped ({chunk.path.name})")
        say("openjd_progress: 100.0")
        return {**recorded, "status": "skipped"}
    chunk.folder.mkdir(parents=True, exist_ok=True)
    for leftover in chunk.folder.glob(f".{chunk.path.stem}.partial-*{chunk.path.suffix}"):
        leftover.unlink(missing_ok=True)  # a killed try of this same chunk: only this task writes it
    chunk.record.unlink(missing_ok=True)
    info = probe(job.clip.media_path)
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
    stats = render_range(
        job.clip.media_path, chunk.path, model_dir=job.model.path,
        settings=swap_settings(job.preset, base_dir=job.preset_dir), first=first, last=last,
        swap_ranges=[(job.first, job.last)], codec=job.preset.output.codec, pix_fmt=job.preset.output.pix_fmt,
        color=colour_tags(job, info), metadata=label, audio=False,
        origin=job.first, gop=chunk.gop, progress=on_frame)
    record = {"key": chunk.key, "clip_key": clip_key(job), "clip": index, "first": first, "last": last,
              "origin": job.first, "gop": chunk.gop, "path": chunk.path.name, "sha256": sha256_file(chunk.path),
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
        if chunk.path.name == record.get("path") and _record_ok(record_path, chunk.key, chunk.path) is not None:
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
    from renderer.provenance import claim_for_model, label_metadata, sign_media
    from renderer.render import remove_stale_partials, job_summary

    chunks = find_chunks(job)
    mc = job.clip
    info = probe(mc.media_path)
    if info.vfr:
        time_base, offsets = info.time_base, [info.pts[c.first] - info.pts[job.first] for c in chunks]
    else:
        time_base, offsets = 1 / info.fps, [c.first - job.first for c in chunks]
    claim = claim_for_model(mc.media_path, job.model.path, [(0, job.frames)], preset_sha256=job.preset_sha256,
                            source_sha256=source_sha256)
    remove_stale_partials(job.output)
    started = time.monotonic()
    concat([c.path for c in chunks], job.output, time_base=time_base, offsets=offsets, fps=info.fps,
           timecode=job.timecode, metadata=label_metadata(claim, signed=job.signing is not None),
           audio_from=(mc.media_path, job.first, job.last) if job.preset.output.audio != "none" and info.audio
           else None)
    signed = sign_media(job.output, claim, job.signing, source=mc.media_path)
    records = [json.loads(c.record.read_text("utf-8")) for c in chunks]
    entry = job_summary(job)
    entry["source"]["sha256"] = source_sha256
    entry["output"].update({"sha256": sha256_file(job.output), "frames": job.frames, "timecode": job.timecode,
                            "signed": signed.signed, "manifest": signed.manifest,
                            "sidecar": str(signed.sidecar) if signed.sidecar else None})
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
    from renderer.render import (
        ClipResult, RenderReport, out_dir_lock, rendered_clip, write_render_json, job_summary,
    )
    from renderer.timeline import write_return_edit

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
                        hashes[job.clip.media_path] = sha256_file(job.clip.media_path)
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
        for path in render_plan.return_edits:
            write_return_edit(render_plan.timeline, rendered, path)
        report = RenderReport(render_plan, tuple(results), render_plan.return_edits, time.time() - started)
        write_render_json(render_plan, [r.entry for r in results], report.status, started, render_plan.return_edits)
    return report


# --------------------------------------------------------------------------- local runner (openjd.sessions)


@dataclass(frozen=True)
class TaskOutcome:
    """One task run by `run_bundle`: its step, parameters, end state and log file."""

    step: str
    frames: str | None
    state: str  # SUCCESS | FAILED | CANCELED | TIMEOUT
    exit_code: int | None
    seconds: float
    log: Path


@dataclass(frozen=True)
class RunResult:
    """What `run_bundle` did."""

    out_dir: Path
    tasks: tuple[TaskOutcome, ...]
    seconds: float
    workers: int

    @property
    def failed(self) -> list[TaskOutcome]:
        return [t for t in self.tasks if t.state != "SUCCESS"]

    def to_json(self) -> dict[str, Any]:
        render_json = self.out_dir / "render.json"
        record = json.loads(render_json.read_text("utf-8")) if render_json.is_file() else {}
        return {"status": "failed" if self.failed else record.get("status", "ok"), "out": str(self.out_dir),
                "workers": self.workers, "tasks": len(self.tasks), "failed_tasks": len(self.failed),
                "render_json": str(render_json), "return_edits": record.get("return_edits", []),
                "outputs": [c["output"]["path"] for c in record.get("clips", []) if c["output"].get("path")],
                "seconds": round(self.seconds, 3),
                "task_seconds": [{"step": t.step, "frames": t.frames, "seconds": round(t.seconds, 3)}
                                 for t in self.tasks]}


class _SessionLog(logging.Handler):
    """Sends the openjd.sessions log lines of one session to its own file."""

    def __init__(self, session_id: str, path: Path) -> None:
        super().__init__()
        self.session_id = session_id
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "session_id", None) == self.session_id:
            self.fh.write(record.getMessage() + "\n")
            self.fh.flush()

    def close(self) -> None:
        self.fh.close()
        super().close()


def load_parameter_values(bundle: Path) -> dict[str, Any]:
    path = bundle / PARAMETER_VALUES
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    values = data.get("parameterValues", []) if isinstance(data, dict) else []
    if not isinstance(values, list) or not all(isinstance(v, dict) and "name" in v for v in values):
        raise InputError(f"{path}: expected 'parameterValues: [{{name: ..., value: ...}}, ...]'")
    return {v["name"]: v.get("value") for v in values}


def _worker_doppel() -> str:
    """The doppel beside this interpreter (a venv's bin/), else `doppel` from PATH."""
    here = Path(sys.executable).parent / ("doppel.exe" if os.name == "nt" else "doppel")
    return str(here) if here.is_file() else "doppel"


def run_bundle(bundle_dir: str | Path, *, workers: int = 1, out_dir: str | Path | None = None,
               env: Mapping[str, str] | None = None, on_task: Callable[[TaskOutcome], None] | None = None,
               on_message: Callable[[str, str], None] | None = None) -> RunResult:
    """Run a bundle's job here: the Render tasks in `workers` openjd Sessions at once (each a
    thread running its tasks one after another, as a farm worker would), then Publish.

    out_dir overrides OutputDir (default BUNDLE_DIR/output); task logs go to OUT/logs/.
    RenderError when a task fails (its log's last lines in the message); Publish does not run then.
    """
    from openjd.model import (
        DecodeValidationError, RevisionExtensions, SpecificationRevision, StepParameterSpaceIterator,
        create_job_with_symbol_tables, decode_job_template, preprocess_job_parameters,
    )
    from openjd.sessions import ActionState, Session

    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers {workers!r} is not allowed (allowed: an integer >= 1)")
    bundle = Path(bundle_dir)
    template_path = bundle / TEMPLATE
    if not template_path.is_file():
        raise InputError(f"{bundle} is not a job bundle: {TEMPLATE} is missing (make one with `doppel farm export`)")
    try:
        doc = yaml.safe_load(template_path.read_text("utf-8"))
        template = decode_job_template(template=doc, supported_extensions=EXTENSIONS)
    except (yaml.YAMLError, DecodeValidationError) as err:
        raise InputError(f"{template_path} is not a valid job template: {err}") from err
    out = Path(out_dir) if out_dir is not None else bundle / "output"
    out = out.resolve()
    values = load_parameter_values(bundle)
    values["OutputDir"] = str(out)
    declared = {p.name for p in template.parameterDefinitions or []}
    if "DoppelCommand" in declared:
        values["DoppelCommand"] = _worker_doppel()
    try:
        params = preprocess_job_parameters(job_template=template, job_parameter_values={
            k: str(v) for k, v in values.items() if k in declared}, job_template_dir=bundle.resolve(),
            current_working_dir=Path.cwd(), environment_templates=[])
        created = create_job_with_symbol_tables(job_template=template, job_parameter_values=params,
                                                environment_templates=[])
    except (ValueError, DecodeValidationError) as err:
        raise InputError(f"{bundle}: the job cannot be made from its parameters: {err}") from err
    job = created.job
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    revision = RevisionExtensions(spec_rev=SpecificationRevision.v2023_09, supported_extensions=EXTENSIONS)
    os_env = dict(env) if env is not None else None
    session_logger = logging.getLogger("openjd.sessions")
    session_logger.setLevel(logging.INFO)
    started = time.monotonic()
    outcomes: list[TaskOutcome] = []
    lock = threading.Lock()

    def run_tasks(step: Any, tasks: list[Any], worker: int, stop: threading.Event) -> None:
        session_id = f"doppel-{step.name.lower()}-{worker}-{uuid.uuid4().hex[:6]}"
        done = threading.Event()
        status: dict[str, Any] = {}

        def callback(_sid: str, st: Any) -> None:
            if st.status_message and on_message is not None:
                on_message(session_id, st.status_message)
            if st.state in (ActionState.SUCCESS, ActionState.FAILED, ActionState.CANCELED, ActionState.TIMEOUT):
                status["state"], status["exit_code"] = st.state.name, st.exit_code
                done.set()

        for params_set in tasks:
            if stop.is_set():
                return
            frames = params_set.get("Frames")
            label = f"{step.name}-{frames.value if frames else 'all'}"
            log_path = logs / f"{label}.log"
            handler = _SessionLog(session_id, log_path)
            session_logger.addHandler(handler)
            t0 = time.monotonic()
            try:
                with Session(session_id=session_id, job_parameter_values=params, job_name=str(job.name),
                             callback=callback, os_env_vars=os_env, revision_extensions=revision) as session:
                    done.clear()
                    status.clear()
                    session.run_task(step_script=step.script, task_parameter_values=params_set,
                                     step_name=step.name, resolved_symtab=created.step_symbol_tables.get(step.name))
                    done.wait()
            finally:
                session_logger.removeHandler(handler)
                handler.close()
            outcome = TaskOutcome(step.name, frames.value if frames else None, status.get("state", "FAILED"),
                                  status.get("exit_code"), time.monotonic() - t0, log_path)
            with lock:
                outcomes.append(outcome)
            if on_task is not None:
                on_task(outcome)
            if outcome.state != "SUCCESS":
                stop.set()
                return

    for step in job.steps:
        tasks = list(StepParameterSpaceIterator(space=step.parameterSpace))
        n = min(workers, len(tasks)) or 1
        shares = [tasks[k::n] for k in range(n)]  # task k goes to worker k mod n
        stop = threading.Event()
        threads = [threading.Thread(target=run_tasks, args=(step, share, k, stop), name=f"doppel-farm-{k}")
                   for k, share in enumerate(shares)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        failed = [o for o in outcomes if o.state != "SUCCESS"]
        if failed:
            first = failed[0]
            tail = first.log.read_text("utf-8", errors="replace").splitlines()[-12:] if first.log.is_file() else []
            raise RenderError(f"step {first.step} task {first.frames or ''} ended {first.state} "
                              f"(exit {first.exit_code}); log {first.log}:\n    " + "\n    ".join(tail))
    return RunResult(out, tuple(outcomes), time.monotonic() - started, workers)


__all__ = [
    "Bundle", "CLIP_STRIDE", "Chunk", "FarmInputs", "RunResult", "TaskOutcome", "build_template", "chunk_spans",
    "clip_key", "export_bundle", "find_chunks", "frames_range", "parse_chunk", "plan", "preset_file", "publish",
    "publish_clip", "run_bundle", "run_task",
]
