"""Render presets: YAML files validated once, at the edge, into frozen dataclasses.

A preset says how a marked clip is swapped and encoded: which model, detector and
landmarks, which faces, mask/colour/blend settings, temporal smoothing, handles,
and the output (codec, container, pixel format, file-name pattern, colour tags, matte pass).

Every key is described once in `renderer.preset_schema.FIELDS` (dotted path -> type, allowed values,
default). A file may give any subset; the rest take the defaults. Errors name the
file, the line, the key, the value received and what is allowed:

    unknown key 'colour_mode' in presets/x.yaml line 7; did you mean 'colour'?

Per-clip overrides from edit markers (`FACESWAP colour=rct codec=ffv1`) go through
`Preset.with_overrides`, which parses the strings with the same rules.

Loading is always `yaml.SafeLoader` (node by node, so we know every key's line).
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import renderer
from renderer.errors import InputError, closest
from renderer.preset_schema import (  # noqa: F401 (public here too)
    ALIASES, CODECS, CODEC_CONTAINERS, CODEC_PIX_FMTS, CONTAINERS, CONTAINER_AUDIO, FIELDS, Field, GROUPS, NAME_FIELDS, PIX_FMT_SOURCE,
)

PRESETS_DIR = Path(renderer.__file__).resolve().parent.parent / "presets"


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class MaskSettings:
    kind: str
    erode: float
    feather: float
    forehead: float = 0.0


@dataclass(frozen=True)
class SmoothingSettings:
    landmarks: bool
    temporal: float
    colour: float = 0.0


@dataclass(frozen=True)
class ColorTags:
    """Output colour tags; each is an FFmpeg name or "source" (copy the source's tag)."""

    primaries: str
    transfer: str
    matrix: str
    range: str


@dataclass(frozen=True)
class OutputSettings:
    codec: str
    container: str
    pix_fmt: str  # resolved: the codec's default when the file gave null; or "source"
    audio: str
    name: str
    color: ColorTags
    matte: bool = False  # write <output stem>.matte.mov beside the output
    plate: bool = False  # write <output stem>.plate.mov beside the output

    @property
    def writer_pix_fmt(self) -> str | None:
        """What the writer is asked for: None for "source" (it then keeps the source's layout and
        at least its depth where the codec has one: `media.VideoWriter`), else the format itself."""
        return None if self.pix_fmt == PIX_FMT_SOURCE else self.pix_fmt

    def file_name(self, *, clip: str, start: str, end: str, track: int = 0, index: int = 0,
                  preset: str = "", source: str = "") -> str:
        """The rendered file's name: the pattern filled in, plus `.<container>`.

        Characters that are unsafe in file names (`/`, `\\`, `:` and the like) become `_`.
        """
        text = self.name.format(clip=clip, start=start, end=end, track=track, index=index,
                                preset=preset, source=source)
        safe = "".join(c if (c.isalnum() or c in "._-+=@,") else "_" for c in text)
        return f"{safe}.{self.container}"


@dataclass(frozen=True)
class ColourManagementSettings:
    """OpenColorIO spaces of a managed swap; names are the config's own (aliases resolved).

    source_space None: unmanaged (the model sees the decoded RGB as it is).
    """

    config: str
    source_space: str | None
    working_space: str

    @property
    def enabled(self) -> bool:
        return self.source_space is not None


@dataclass(frozen=True)
class SigningSettings:
    cert: str | None
    key: str | None


@dataclass(frozen=True)
class Preset:
    """A validated preset. `source` says where it came from (file path or "defaults")."""

    name: str
    source: str
    description: str
    model: str | None
    detector: str
    landmarks: int
    faces: str
    identity: str | None
    direction: str
    mask: MaskSettings
    occlusion: str
    occlusion_matte: str | None
    occlusion_prior: str
    colour: str
    blend: str
    grain: str
    detail: float
    upscale: str
    precision: str
    runtime: str
    smoothing: SmoothingSettings
    handles: int
    detect_every: int
    min_face: int
    output: OutputSettings
    colour_management: ColourManagementSettings
    signing: SigningSettings

    def values(self) -> dict[str, Any]:
        """Flat `{dotted key: value}` of every field in `FIELDS` (the canonical form)."""
        out: dict[str, Any] = {}
        for key in FIELDS:
            obj: Any = self
            for part in key.split("."):
                obj = getattr(obj, part)
            out[key] = obj
        return out

    def with_overrides(self, overrides: dict[str, str], source: str) -> "Preset":
        """A copy with `key=value` string overrides applied and validated.

        Keys are dotted paths (`output.codec`) or short aliases (`codec`, `colour`);
        `source` names where they came from (e.g. "edit.edl clip 'A003' marker
        'FACESWAP codec=ffv1'") and appears in every error. Raises InputError.
        """
        if not overrides:
            return self
        flat = self.values()
        given: set[str] = set()
        for raw_key, raw_value in overrides.items():
            key = ALIASES.get(raw_key.lower(), raw_key.lower())
            if key not in FIELDS or key == "description":
                allowed = sorted(set(FIELDS) - {"description"} | set(ALIASES))
                raise InputError(
                    f"unknown key '{raw_key}' in {source}{closest(raw_key.lower(), allowed)} "
                    f"(allowed: {', '.join(allowed)})"
                )
            flat[key] = _check_value(key, _parse_string(key, raw_value), f"{source} key '{raw_key}'")
            given.add(key)
        # A marker that only says `codec=ffv1` means "the usual ffv1 output": follow the
        # codec with the first container / pixel format / audio that suit it, unless
        # those were given too (then a bad pair is an error, as in a file).
        codec = flat["output.codec"]
        if "output.container" not in given and flat["output.container"] not in CODEC_CONTAINERS[codec]:
            flat["output.container"] = CODEC_CONTAINERS[codec][0]
        if ("output.pix_fmt" not in given and flat["output.pix_fmt"] not in CODEC_PIX_FMTS[codec]
                and flat["output.pix_fmt"] != PIX_FMT_SOURCE):
            flat["output.pix_fmt"] = None
        if "output.audio" not in given and flat["output.audio"] not in CONTAINER_AUDIO[flat["output.container"]]:
            flat["output.audio"] = CONTAINER_AUDIO[flat["output.container"]][0]
        return _build(flat, name=self.name, source=f"{self.source} + {source}", where=source)


# --------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader; we compose nodes ourselves so every key keeps its line number."""


def _default_pix_fmt(codec: str) -> str:
    return CODEC_PIX_FMTS[codec][0]


def _flatten(node: yaml.Node, loader: _Loader, prefix: str, path: str,
             out: dict[str, tuple[Any, int]]) -> None:
    """Walk a mapping node into `{dotted key: (python value, line)}`; reject unknown keys."""
    if not isinstance(node, yaml.MappingNode):
        where = f"{path} line {node.start_mark.line + 1}"
        what = f"'{prefix}'" if prefix else "the document"
        raise InputError(f"{what} in {where} must be a mapping of keys, got {node.tag.rsplit(':', 1)[-1]}")
    seen: set[str] = set()
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = str(loader.construct_object(key_node))
        dotted = f"{prefix}.{key}" if prefix else key
        if key in seen:
            raise InputError(f"duplicate key '{dotted}' in {path} line {line}")
        seen.add(key)
        if dotted == "output.color" and isinstance(value_node, yaml.ScalarNode):
            value = loader.construct_object(value_node)
            if value != "source":
                raise InputError(
                    f"bad value {value!r} for key 'output.color' in {path} line {line}; "
                    f"allowed: 'source' or a mapping of primaries, transfer, matrix, range"
                )
            for sub in ("primaries", "transfer", "matrix", "range"):
                out[f"output.color.{sub}"] = ("source", line)
            continue
        if dotted in GROUPS:
            _flatten(value_node, loader, dotted, path, out)
            continue
        if dotted not in FIELDS:
            siblings = [k.split(".")[-1] for k in list(FIELDS) + list(GROUPS)
                        if ("." in k and k.rsplit(".", 1)[0] == prefix) or (not prefix and "." not in k)]
            allowed = sorted(set(siblings))
            raise InputError(
                f"unknown key '{dotted}' in {path} line {line}{closest(key, allowed)} "
                f"(allowed{' under ' + repr(prefix) if prefix else ''}: {', '.join(allowed)})"
            )
        if not isinstance(value_node, yaml.ScalarNode):
            raise InputError(
                f"key '{dotted}' in {path} line {line} must be a single value, not a "
                f"{'list' if isinstance(value_node, yaml.SequenceNode) else 'mapping'}; "
                f"allowed: {FIELDS[dotted].describe()}"
            )
        out[dotted] = (loader.construct_object(value_node), line)


def _parse_string(key: str, text: str) -> Any:
    """A marker override string -> a Python value of the field's kind (checked later)."""
    f = FIELDS[key]
    low = text.strip().lower()
    if f.nullable and low in ("null", "none", "~", ""):
        return None
    if f.kind == "bool":
        return {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}.get(low, text)
    if f.kind in ("int", "float") or (f.kind == "enum" and isinstance(f.allowed[0], int)):
        try:
            return int(low) if f.kind != "float" else float(low)
        except ValueError:
            return text
    if f.kind == "enum":
        return low
    return text  # str and path values keep their case (file names)


def _check_value(key: str, value: Any, where: str) -> Any:
    """Validate one value against FIELDS[key]; return it (ints widened to float for floats)."""
    f = FIELDS[key]

    def bad() -> InputError:
        hint = closest(str(value), [str(a) for a in f.allowed]) if f.kind == "enum" else ""
        return InputError(f"bad value {value!r} for {where}{hint}; allowed: {f.describe()}")

    if value is None:
        if f.nullable:
            return None
        raise bad()
    if f.kind == "enum":
        if value not in f.allowed or isinstance(value, bool):
            raise bad()
        return value
    if f.kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if f.kind in ("int", "float"):
        ok = isinstance(value, int) if f.kind == "int" else isinstance(value, (int, float))
        if not ok or isinstance(value, bool) or not math.isfinite(value):  # NaN passes every bound check
            raise bad()
        if (f.minimum is not None and value < f.minimum) or (f.maximum is not None and value > f.maximum):
            raise bad()
        return float(value) if f.kind == "float" else value
    if not isinstance(value, str):
        raise bad()
    return value


def _build(flat: dict[str, Any], *, name: str, source: str, where: str,
           lines: dict[str, int] | None = None) -> Preset:
    """Cross-field checks, then the frozen Preset. `where` prefixes errors (file or marker)."""
    lines = lines or {}

    def at(key: str) -> str:
        return f"{where} line {lines[key]}" if key in lines else where

    codec, container, audio = flat["output.codec"], flat["output.container"], flat["output.audio"]
    if container not in CODEC_CONTAINERS[codec]:
        raise InputError(
            f"codec '{codec}' cannot go in container '{container}' ({at('output.container')}); "
            f"allowed containers for {codec}: {', '.join(CODEC_CONTAINERS[codec])}"
        )
    if audio not in CONTAINER_AUDIO[container]:
        raise InputError(
            f"audio '{audio}' cannot go in container '{container}' ({at('output.audio')}); "
            f"allowed audio for {container}: {', '.join(CONTAINER_AUDIO[container])}"
        )
    pix_fmt = flat["output.pix_fmt"] or _default_pix_fmt(codec)
    if pix_fmt not in CODEC_PIX_FMTS[codec] and pix_fmt != PIX_FMT_SOURCE:
        raise InputError(
            f"pixel format '{pix_fmt}' does not suit codec '{codec}' ({at('output.pix_fmt')}); "
            f"allowed for {codec}: {PIX_FMT_SOURCE}, {', '.join(CODEC_PIX_FMTS[codec])}"
        )
    pattern = flat["output.name"]
    if not pattern.strip():
        raise InputError(f"empty name pattern {pattern!r} ({at('output.name')}); give a file name pattern, e.g. "
                         f"'{FIELDS['output.name'].default}' (fields: " + ", ".join("{" + n + "}" for n in NAME_FIELDS) + ")")
    try:
        used = {fld for _, fld, _, _ in string.Formatter().parse(pattern) if fld is not None}
    except ValueError as err:
        raise InputError(f"bad name pattern {pattern!r} ({at('output.name')}): {err}") from err
    unknown = sorted(u for u in used if u not in NAME_FIELDS)
    if unknown:
        raise InputError(
            f"unknown field '{{{unknown[0]}}}' in name pattern {pattern!r} ({at('output.name')})"
            f"{closest(unknown[0], NAME_FIELDS)}; allowed: "
            + ", ".join("{" + n + "}" for n in NAME_FIELDS)
        )
    if "/" in pattern or "\\" in pattern:
        raise InputError(f"name pattern {pattern!r} ({at('output.name')}) must be a file name, not a path")
    if flat["faces"] == "identity" and not flat["identity"]:
        raise InputError(
            f"faces: identity needs an 'identity' reference (image or faceset path) ({at('faces')})"
        )
    if (flat["signing.cert"] is None) != (flat["signing.key"] is None):
        raise InputError(f"signing needs both 'cert' and 'key', or neither ({at('signing.cert')})")
    colour = _colour_management(flat, at)
    return Preset(
        name=name, source=source, description=flat["description"], model=flat["model"],
        detector=flat["detector"], landmarks=flat["landmarks"], faces=flat["faces"],
        identity=flat["identity"], direction=flat["direction"],
        mask=MaskSettings(flat["mask.kind"], flat["mask.erode"], flat["mask.feather"], flat["mask.forehead"]),
        occlusion=flat["occlusion"], occlusion_matte=flat["occlusion_matte"],
        occlusion_prior=flat["occlusion_prior"],
        colour=flat["colour"], blend=flat["blend"], grain=flat["grain"], detail=flat["detail"],
        upscale=flat["upscale"], precision=flat["precision"],
        runtime=flat["runtime"],
        smoothing=SmoothingSettings(flat["smoothing.landmarks"], flat["smoothing.temporal"], flat["smoothing.colour"]),
        handles=flat["handles"], detect_every=flat["detect_every"], min_face=flat["min_face"],
        output=OutputSettings(
            codec=codec, container=container, pix_fmt=pix_fmt, audio=audio, name=pattern,
            color=ColorTags(flat["output.color.primaries"], flat["output.color.transfer"],
                            flat["output.color.matrix"], flat["output.color.range"]),
            matte=flat["output.matte"], plate=flat["output.plate"],
        ),
        colour_management=colour,
        signing=SigningSettings(flat["signing.cert"], flat["signing.key"]),
    )


def _colour_management(flat: dict[str, Any], at: Any) -> ColourManagementSettings:
    """Check the OCIO config and spaces (loading the config only when a key differs from the defaults)."""
    config, src, work = (flat[f"colour_management.{k}"] for k in ("config", "source_space", "working_space"))
    keys = ("config", "source_space", "working_space")
    if all(flat[f"colour_management.{k}"] == FIELDS[f"colour_management.{k}"].default for k in keys):
        return ColourManagementSettings(config, None, work)
    from renderer.colour_management import check_space, load_config

    cfg = load_config(config, at("colour_management.config"))
    work = check_space(cfg, work, f"key 'colour_management.working_space' in {at('colour_management.working_space')}", config)
    if src is not None:
        src = check_space(cfg, src, f"key 'colour_management.source_space' in {at('colour_management.source_space')}", config)
    return ColourManagementSettings(config, src, work)


def parse_preset(text: str, *, name: str, path: str) -> Preset:
    """Validate YAML `text` (named `path` in errors) into a Preset. Raises InputError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise InputError(f"{path}{line} is not valid YAML: {problem}") from err
    finally:
        loader.dispose()
    found: dict[str, tuple[Any, int]] = {}
    if node is not None:
        _flatten(node, loader, "", path, found)
    flat = {key: f.default for key, f in FIELDS.items()}
    lines: dict[str, int] = {}
    for key, (value, line) in found.items():
        flat[key] = _check_value(key, value, f"key '{key}' in {path} line {line}")
        lines[key] = line
    config = flat["colour_management.config"]
    if "colour_management.config" in found and not config.startswith("ocio://") and not Path(config).is_absolute():
        flat["colour_management.config"] = str((Path(path).parent / config).resolve())  # beside the preset
    return _build(flat, name=name, source=path, where=path, lines=lines)


def shipped_presets() -> dict[str, Path]:
    """`{name: path}` of the presets shipped in the package's `presets/` folder."""
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))}


def load_preset(name_or_path: str | Path) -> Preset:
    """A shipped preset by name (`prores_hq`) or any YAML file by path. Raises InputError."""
    text = str(name_or_path)
    shipped = shipped_presets()
    if text in shipped:
        path = shipped[text]
    else:
        path = Path(text)
        if not path.is_file():
            raise InputError(
                f"no preset '{text}': not a shipped preset name and not a file"
                f"{closest(text, list(shipped))}; shipped presets: {', '.join(shipped) or '(none)'}"
            )
    try:
        body = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read preset {path}: {err}") from err
    return parse_preset(body, name=path.stem, path=str(path))


def preset_sha256(preset: Preset) -> str:
    """Hex SHA-256 of the canonical resolved values (name, description and source excluded).

    Two presets that render the same way hash the same, whatever their file layout.
    """
    values = {k: v for k, v in preset.values().items() if k != "description"}
    if not preset.colour_management.enabled:  # unmanaged presets hash as they did before these keys existed
        values = {k: v for k, v in values.items() if not k.startswith("colour_management.")}
    values["output.pix_fmt"] = preset.output.pix_fmt
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def preset_to_yaml(preset: Preset) -> str:
    """The resolved preset as YAML (every key, nested), loadable by `parse_preset`."""
    nested: dict[str, Any] = {}
    for key, value in preset.values().items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return yaml.safe_dump(nested, sort_keys=False, default_flow_style=False)


__all__ = [
    "ALIASES", "CODECS", "CODEC_CONTAINERS", "CONTAINERS", "ColorTags", "ColourManagementSettings", "FIELDS", "MaskSettings",
    "OutputSettings", "PRESETS_DIR", "Preset", "SigningSettings", "SmoothingSettings",
    "load_preset", "parse_preset", "preset_sha256", "preset_to_yaml", "shipped_presets",
]
