"""The farm job: which frames each marked clip renders, and the OpenJD job bundle that says so.

Planning itself is `renderer.render.plan_render`; this module turns a plan into the `Frames`
CHUNK[INT] task parameter (one interval per clip, `CLIP_STRIDE` apart) and writes the bundle:
template.yaml, parameter_values.yaml, asset_references.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from renderer.atomic import write_text_atomic
from renderer.errors import InputError
from renderer.presets import load_preset, shipped_presets

CLIP_STRIDE = 10_000_000  # Frames value = clip index * CLIP_STRIDE + source frame
DEFAULT_CHUNK_FRAMES = 48
TEMPLATE = "template.yaml"
PARAMETER_VALUES = "parameter_values.yaml"
ASSET_REFERENCES = "asset_references.yaml"
EXTENSIONS = ["TASK_CHUNKING"]


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
    warnings: tuple[str, ...] = ()  # what the bundle will do that its author may not expect (`export_warnings`)


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
    from renderer.media.sequence import is_sequence_path

    models = sorted({j.model.path for j in render_plan.jobs})
    one_model = Path(model).resolve() if model else (models[0] if len(models) == 1 else None)
    media = sorted({j.clip.media_path.resolve() for j in render_plan.jobs})
    if edit_path.suffix.lower() == ".otioz":  # the bundle carries its media; each worker unpacks its own copy
        from renderer.otioz import unpacked_copy

        media = [m for m in media if not unpacked_copy(m)]
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
        # An image sequence is its folder of frames (its pattern names no file).
        "inputs": {"filenames": [str(p) for p in [edit_path, preset_path, *media, *extra_files]
                                 if not is_sequence_path(p)],
                   "directories": [str(m) for m in models] + [str(p.parent) for p in media if is_sequence_path(p)]},
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
                  {v["name"]: v["value"] for v in values}, export_warnings(render_plan.jobs))


def export_warnings(jobs: Sequence[Any]) -> tuple[str, ...]:
    """Warnings for a bundle of these clip jobs, where a preset leaves each worker a choice that a farm
    of unlike machines can make differently within one clip: `precision` auto (bf16 where the worker
    computes it natively, else fp32), or `precision: bf16` with `runtime` auto (OpenVINO's bf16 where
    the CPU computes it, torch's emulated bf16 elsewhere: not the same rounding)."""

    def named(clips: list[str]) -> str:
        return f"{len(clips)} clip(s) ({', '.join(clips[:3])}{', ...' if len(clips) > 3 else ''})"

    warnings = []
    auto = sorted({j.clip.clip_name for j in jobs if j.preset.precision == "auto"})
    if auto:
        warnings.append(
            f"preset precision is auto for {named(auto)}: each worker picks bf16 where its processor computes it "
            "natively and fp32 elsewhere, so on a farm of unlike machines one clip's chunks can differ in arithmetic "
            "(the face by up to ~3.5 code values, bench/results/precision.md) and a chunk boundary can show it; set "
            "`precision: fp32` in the preset for float32 on every worker (the same face on every runtime but for "
            "float32 rounding), or bf16 with `runtime: torch` for a farm that must use bf16 everywhere")
    mixed = sorted({j.clip.clip_name for j in jobs if j.preset.precision == "bf16" and j.preset.runtime == "auto"})
    if mixed:
        warnings.append(
            f"preset precision is bf16 with runtime auto for {named(mixed)}: a worker whose processor computes bf16 "
            "runs it on OpenVINO, one without on torch (emulated), and the two round differently (a few code values "
            "on the face), so a chunk boundary can show it on a farm of unlike machines; set `runtime: torch` for "
            "the same bf16 on every worker, or `precision: fp32`")
    return tuple(warnings)


def _preset_extra_files(render_plan: Any) -> list[str]:
    """Files a preset refers to that workers need (an identity reference image)."""
    found = []
    for job in render_plan.jobs:
        ref = job.preset.identity
        if ref:
            path = Path(ref) if Path(ref).is_absolute() else (job.preset_dir or Path.cwd()) / ref
            found.append(str(path.resolve()))
    return sorted(set(found))
