"""A render plan: the FACESWAP jobs of an edit, each checked and named before a frame is decoded.

`plan_render` reads the edit, finds the marked clips (`renderer.timeline`), applies each
clip's marker overrides to the preset, resolves each clip's model and signing identity,
and names each output. It raises one error listing EVERY problem (missing media, bad
marker keys, missing models or models without rights). It writes nothing.

Decisions:
- Model: `--model` wins, then a marker's `model=` (relative to the edit's folder), then
  the preset's `model` (relative to the preset file's folder, then the working folder).
  A marker override is an override: it beats the preset, as every other marker key does.
- Resume: `ClipJob.up_to_date` is true when its output exists, its sidecar `<output>.inputs.json`
  records the same inputs hash, and the output's SHA-256 still matches the sidecar. The
  inputs hash covers the source (resolved path + size + mtime: hashing a 10 GB source on
  every re-run would cost more than it saves; the source SHA-256 is still computed for
  the provenance claim of every file rendered), the rendered and swapped ranges, the
  model card's SHA-256 and the weights' SHA-256 it records, the per-clip resolved preset
  hash, the software version, and whether (and with which certificate) the output is
  signed, so a re-run after `doppel keys init` signs what went out unsigned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from renderer import __version__
from renderer.atomic import sha256_file
from renderer.errors import DoppelError, InputError, ModelError
from renderer.presets import Preset, load_preset, preset_sha256
from renderer.timeline import (
    MarkedClip, RefusedClip, clip_presets, find_jobs, marked_elsewhere, read_timelines, return_edit_paths,
)
from renderer.media.sequence import SEQUENCE_KINDS, SequencePattern, parse_sequence
from renderer.timeline.read import MOVIE_SUFFIXES

SOFTWARE = f"doppel {__version__}"
RENDER_JSON = "render.json"
MEDIA_DIR = "media"
INPUTS_SUFFIX = ".inputs.json"


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
        if self.is_sequence:  # beside the sequence's folder, which holds nothing but its frames
            return self.output.parent.with_name(self.output.parent.name + INPUTS_SUFFIX)
        return self.output.with_name(self.output.name + INPUTS_SUFFIX)

    @property
    def is_sequence(self) -> bool:
        """True when the output is an image sequence (a pattern in its own folder)."""
        return self.clip.media_path.suffix.lower() in SEQUENCE_KINDS and "%" in self.output.name

    @property
    def passes(self) -> dict[str, Path]:
        """The matte pass clips the preset asks for beside the output: {"matte": path, "plate": path}
        (for an image sequence, sequence patterns in folders beside its own: `media.matte_paths`)."""
        from renderer.media.matte import matte_paths

        matte, plate = matte_paths(self.output)
        out = self.preset.output
        return {k: p for k, p, wanted in (("matte", matte, out.matte), ("plate", plate, out.plate)) if wanted}

    def up_to_date(self) -> dict[str, Any] | None:
        """The recorded clip entry when the output exists and was rendered from the same inputs, else None."""
        exists = self.output.parent.is_dir() if self.is_sequence else self.output.is_file()
        if not (exists and self.sidecar.is_file()):
            return None
        try:
            record = json.loads(self.sidecar.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("inputs_sha256") != self.inputs_sha256:
            return None
        entry = record.get("entry")
        if not isinstance(entry, dict) or entry.get("output", {}).get("sha256") != media_sha256(self.output):
            return None
        for kind, path in self.passes.items():  # a matte deleted or changed since: render again
            recorded = entry["output"].get(kind)
            exists = path.parent.is_dir() if self.is_sequence else path.is_file()
            if not (isinstance(recorded, dict) and exists and recorded.get("sha256") == media_sha256(path)):
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
    refused: tuple[RefusedClip, ...] = ()  # marked clips Doppel will not render (the return keeps the original)
    others: tuple[otio.schema.Timeline, ...] = field(default=(), compare=False)  # the edit's other timelines

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
    from renderer.checkpoint import model_files
    from renderer.model import WEIGHTS_NAME
    from renderer.modelcard import CARD_NAME, read_model_card

    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise ModelError(f"model {path} (from {origin}) {what} (train one with `doppel train`)")
    try:
        files = model_files(path)  # the current checkpoint, resolved once
        card = read_model_card(files)
    except ModelError as err:
        raise ModelError(f"{err} (model from {origin})") from err
    if not (files / WEIGHTS_NAME).is_file():
        raise ModelError(f"model {path} (from {origin}): {WEIGHTS_NAME} is missing")
    return ModelRef(path.resolve(), origin, sha256_file(files / CARD_NAME), card.weights_sha256, tuple(card.identities))


def _signing(preset: Preset, env: Mapping[str, str], base_dir: Path | None) -> Any:
    from renderer.provenance import resolve_signing_identity

    mapping = {"cert": preset.signing.cert, "key": preset.signing.key} if preset.signing.cert else None
    return resolve_signing_identity(mapping, env, base_dir=base_dir)


def media_sha256(path: Path) -> str:
    """SHA-256 of a media file; of an image sequence, one hash over all its frames in order."""
    from renderer.media.sequence import is_sequence_path, parse_sequence, sequence_sha256

    if is_sequence_path(path):
        return sequence_sha256(parse_sequence(path))
    return sha256_file(path)


def _holdout_path(clip_preset: Preset, base: Preset, mc: MarkedClip, edit_dir: Path) -> Path | None:
    """The clip's hold-out matte, absolute: a marker's `holdout=` relative to the edit's folder (like its
    media), a preset's `occlusion_matte` relative to the preset's folder (else the working directory)."""
    if not clip_preset.occlusion_matte:
        return None
    given = Path(clip_preset.occlusion_matte).expanduser()
    if given.is_absolute():
        return given
    if {"holdout", "occlusion_matte"} & set(mc.overrides):
        return edit_dir / given
    folder = _preset_dir(base)
    return (folder / given) if folder and (folder / given).exists() else Path.cwd() / given


def _source_fingerprint(path: Path) -> dict[str, Any]:
    from renderer.media.sequence import is_sequence_path, parse_sequence, sequence_fingerprint
    from renderer.otioz import member_name

    if is_sequence_path(path):
        return sequence_fingerprint(parse_sequence(path))

    st = path.stat()
    # Media an .otioz carries is unpacked afresh on every run: name it by its place in the bundle.
    member = member_name(path.resolve())
    return {"path": f"otioz:{member}" if member else str(path.resolve()), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


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
    from renderer.provenance import identity_fingerprint

    env = os.environ if env is None else env
    edit = Path(edit)
    out_dir = Path(out_dir)
    base = preset if isinstance(preset, Preset) else load_preset(preset)
    if direction is not None:
        base = base.with_overrides({"direction": direction}, "--direction")
    timeline, *others = read_timelines(edit, edl_rate=edl_rate)
    clips, refused = find_jobs(timeline, edit, media_roots)
    refused += [r for n, other in enumerate(others, start=2) for r in marked_elsewhere(other, edit, n, len(others) + 1)]
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
            holdout = _holdout_path(clip_preset, base, mc, edit_dir)
            if holdout is not None:  # refused here, with the other problems, before any clip renders
                from renderer.media import check_matte, probe

                info = probe(mc.media_path)
                check_matte(holdout, frames=info.frames, width=info.width, height=info.height, shot=mc.media_path)
                clip_preset = dataclasses.replace(clip_preset, occlusion_matte=str(holdout))
            identity = _signing(clip_preset, env, _preset_dir(base))
            out = clip_preset.output
            check_codec = resolve_codec(out.codec)
        except DoppelError as err:
            problems.append(InputError(f"{where}: {err}"))
            continue
        start, end = _name_times(mc)
        clip_name = Path(mc.clip_name).stem if Path(mc.clip_name).suffix.lower() in MOVIE_SUFFIXES else mc.clip_name
        name = out.file_name(clip=clip_name, start=start, end=end, track=mc.track_index + 1, index=index,
                             preset=base.name, source=mc.media_path.stem)
        output = out_dir / MEDIA_DIR / name
        if output in used_names:  # the same clip and range used twice: keep both, apart
            used_names[output] += 1
            output = output.with_name(f"{Path(name).stem}-{used_names[output]}{output.suffix}")
        used_names.setdefault(output, 1)
        if mc.media_path.suffix.lower() in SEQUENCE_KINDS and "%" in mc.media_path.name:
            # An image sequence comes back as the same kind of sequence, with the source's frame
            # numbers and padding, in its own folder named like a movie output would be.
            src = parse_sequence(mc.media_path)
            stem = output.stem
            output = output.parent / stem / SequencePattern(Path(), f"{stem}.", src.suffix, src.padding).printf.name
        else:
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
            "signing": identity_fingerprint(identity),  # a first or new key makes the re-run sign
            **({"occlusion_matte": _source_fingerprint(holdout)} if holdout is not None else {}),  # a new roto re-renders
        }
        jobs.append(ClipJob(index, mc, clip_preset, p_hash, ref, first, last, output, tc, inputs, identity,
                            _preset_dir(base)))
    if problems:
        cls = ModelError if all(isinstance(p, ModelError) for p in problems) else InputError
        text = "\n  ".join(dict.fromkeys(str(p) for p in problems))
        raise cls(f"{len(problems)} problem(s) before rendering:\n  {text}" if len(problems) > 1 else text)
    return RenderPlan(edit, timeline, base, out_dir, tuple(jobs), tuple(return_edit_paths(edit, out_dir)),
                      tuple(refused), tuple(others))



__all__ = ["ClipJob", "INPUTS_SUFFIX", "MEDIA_DIR", "ModelRef", "RENDER_JSON", "RenderPlan", "SOFTWARE", "check_model",
           "plan_render"]
