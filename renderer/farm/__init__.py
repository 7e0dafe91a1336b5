"""Render farms: an edit as an Open Job Description job bundle, its tasks, and a local runner.

    job.py     planning into chunks, and the bundle (template, parameter values, asset references)
    tasks.py   the Render and Publish tasks as a worker runs them
    local.py   the local runner (openjd.sessions), for one machine or a test

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

from renderer.farm.job import (
    ASSET_REFERENCES, CLIP_STRIDE, DEFAULT_CHUNK_FRAMES, EXTENSIONS, PARAMETER_VALUES, TEMPLATE, Bundle, FarmInputs,
    build_template, chunk_spans, export_bundle, frames_range, parse_chunk, plan, preset_file,
)
from renderer.farm.local import RunResult, TaskOutcome, load_parameter_values, run_bundle
from renderer.farm.tasks import (
    CHUNK_RECORD_SUFFIX, CHUNKS_DIR, Chunk, Progress, chunk_folder, clip_key, find_chunks, find_job, publish,
    publish_clip, run_task,
)

__all__ = [
    "ASSET_REFERENCES", "CHUNKS_DIR", "CHUNK_RECORD_SUFFIX", "CLIP_STRIDE", "DEFAULT_CHUNK_FRAMES", "EXTENSIONS",
    "PARAMETER_VALUES", "TEMPLATE", "Bundle", "Chunk", "FarmInputs", "Progress", "RunResult", "TaskOutcome",
    "build_template", "chunk_folder", "chunk_spans", "clip_key", "export_bundle", "find_chunks", "find_job",
    "frames_range", "load_parameter_values", "parse_chunk", "plan", "preset_file", "publish", "publish_clip",
    "run_bundle", "run_task",
]
