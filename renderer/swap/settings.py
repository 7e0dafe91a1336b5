"""Swap settings from a preset, the per-render counters, and the pipeline's fixed sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from renderer.colour_management import ColourManagement, ColourSpaces
from renderer.composite import CompositeSettings, OcclusionSettings
from renderer.errors import InputError
from renderer.faces.detect import MIN_FACE
from renderer.faces.identity import DEFAULT_THRESHOLD, reference_embedding
from renderer.model_process import RUNTIMES
from renderer.pipeline import since_process_start

SEGMENT_FRAMES = 48  # processing state restarts at multiples of this absolute frame index
MODEL_BATCH = 8  # faces per model call; partial batches are zero-padded to this shape
QUEUE_FRAMES = 8  # frames in flight between pipeline stages (bounded: flat memory)

PASS_REASONS = ("outside range", "no face", "not identity")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True, eq=False)
class SwapSettings:
    """How faces are found, chosen and laid back. Built from a preset by `swap_settings`.

    identity: (128,) float32 reference embedding when faces == "identity".
    occlusion: how occluders in front of the face are found (`renderer.composite.occlusion`).
    holdout: the shot's hold-out matte clip (one frame per source frame, same size), always
        respected: the swap never paints where it is 1.
    colour: managed colour (the clip's source space -> the model's working space), or None:
        the model sees the decoded RGB as it is.
    """

    detector: str = "hog"
    landmarks: int = 68
    faces: str = "all"
    identity: np.ndarray | None = None
    identity_threshold: float = DEFAULT_THRESHOLD
    direction: str = "a2b"
    composite: CompositeSettings = field(default_factory=CompositeSettings)
    occlusion: OcclusionSettings = field(default_factory=OcclusionSettings)
    holdout: Path | None = None
    smooth_landmarks: bool = True
    temporal: float = 0.0
    colour_smoothing: float = 0.0  # weight of the past in the per-track rct statistics (0: off)
    detect_every: int = 8
    min_face: int = MIN_FACE  # smallest face searched for (px)
    full_search_every: int = 2  # every Nth key frame searches the whole frame (new faces), the others near tracks
    device: str | None = None
    colour: ColourManagement | None = None
    upscale: str = "auto"  # B's face upscaler: auto (when the model has one), on (required), off
    precision: str = "auto"  # the network's arithmetic when a render loads it: auto, fp32, bf16 (`model_process`)
    runtime: str = "auto"  # what runs the network: auto, torch, openvino, onnxruntime (`model_process.resolve_runtime`)

    def __post_init__(self) -> None:
        if self.faces not in ("all", "largest", "identity"):
            raise InputError(f"faces={self.faces!r} is not allowed (allowed: all, largest, identity)")
        if self.faces == "identity" and self.identity is None:
            raise InputError("faces=identity needs a reference: set `identity:` in the preset to an image of the person")
        if self.direction not in ("a2b", "b2a"):
            raise InputError(f"direction={self.direction!r} is not allowed (allowed: a2b, b2a)")
        if self.upscale not in ("auto", "on", "off"):
            raise InputError(f"upscale={self.upscale!r} is not allowed (allowed: auto, on, off)")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision={self.precision!r} is not allowed (allowed: {', '.join(PRECISIONS)})")
        if self.runtime not in RUNTIMES:
            raise InputError(f"runtime={self.runtime!r} is not allowed (allowed: {', '.join(RUNTIMES)})")
        if self.occlusion.mode == "matte" and self.holdout is None:
            raise InputError("occlusion=matte needs a hold-out matte: set `occlusion_matte:` in the preset or "
                             "`holdout=PATH` on the clip's FACESWAP marker (or choose occlusion reconstruction, "
                             "learned or off)")


def swap_settings(preset: Any, *, direction: str | None = None, device: str | None = None,
                  base_dir: Path | None = None) -> SwapSettings:
    """SwapSettings from a validated `renderer.presets.Preset` (optionally overriding direction)."""
    identity = None
    if preset.faces == "identity":
        if not preset.identity:
            raise InputError(f"preset {preset.source}: faces=identity needs `identity:` (a reference image)")
        ref = Path(preset.identity)
        if not ref.is_absolute() and base_dir is not None:
            ref = base_dir / ref
        identity = _reference(ref, preset.detector)
    holdout = None
    if preset.occlusion_matte:
        holdout = Path(preset.occlusion_matte).expanduser()
        if not holdout.is_absolute() and base_dir is not None:
            holdout = base_dir / holdout
    cm = preset.colour_management
    colour = (ColourManagement.open(ColourSpaces(cm.config, cm.source_space, cm.working_space))
              if cm.enabled else None)
    return SwapSettings(
        detector=preset.detector,
        landmarks=int(preset.landmarks),
        faces=preset.faces,
        identity=identity,
        direction=direction or preset.direction,
        composite=CompositeSettings(mask=preset.mask.kind, erode=preset.mask.erode, feather=preset.mask.feather,
                                    forehead=preset.mask.forehead,
                                    colour=preset.colour, blend=preset.blend, grain=preset.grain,
                                    detail=float(preset.detail)),
        occlusion=OcclusionSettings(mode=preset.occlusion, prior=preset.occlusion_prior),
        holdout=holdout,
        smooth_landmarks=preset.smoothing.landmarks,
        temporal=min(float(preset.smoothing.temporal), 0.95),
        colour_smoothing=min(float(preset.smoothing.colour), 0.95),
        detect_every=int(preset.detect_every),
        min_face=int(preset.min_face),
        device=device,
        colour=colour,
        upscale=preset.upscale, precision=preset.precision, runtime=preset.runtime,
    )


def _reference(image: Path, detector: str) -> np.ndarray:
    """(128,) embedding of the largest face in the preset's identity reference image."""
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"identity reference {image} is missing or not an image (allowed: jpg, png, ...)")
    emb = reference_embedding(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), detector)
    if emb is None:
        raise InputError(f"identity reference {image}: no face found in it; use a clear frontal photo")
    return emb


@dataclass
class SwapStats:
    """What a render did. `passed_through` counts written frames left untouched, by reason.

    held: frames swapped on a face the detector missed there but found again within
    detect_every frames. lost: the frame, once per face, where a tracked face was missed and
    not found again in time (or before a segment start), so it is not swapped from that
    frame until it is found anew.
    """

    frames: int = 0
    swapped: int = 0
    faces: int = 0
    passed_through: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PASS_REASONS, 0))
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("decode", "track", "model", "composite", "encode", "total"), 0.0))
    preroll: int = 0
    held: int = 0
    lost: list[int] = field(default_factory=list)
    # When the run first reached each point, seconds since the process started (`mark`).
    timeline: dict[str, float] = field(default_factory=dict)
    # Peak resident memory (MiB) by process: "render" (this one), "model_process" (the network's own, when it has one).
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    precision: str | None = None  # the arithmetic the network ran at ("fp32", "bf16"), once it had loaded
    runtime: str | None = None  # what ran the network ("torch", "openvino", "onnxruntime"), once it had loaded

    def mark(self, point: str) -> None:
        """Note the first time the run reaches `point` (e.g. "first_decoded"); none where the
        process start is unknown."""
        if point not in self.timeline and (t := since_process_start()) is not None:
            self.timeline[point] = t

    def to_json(self) -> dict[str, Any]:
        total = self.seconds["total"] or 1e-9
        return {
            "frames": self.frames,
            "swapped": self.swapped,
            "faces": self.faces,
            "passed_through": dict(self.passed_through),
            "preroll_frames": self.preroll,
            "frames_held": self.held,
            "faces_lost": list(self.lost),
            "seconds": {**{k: round(v, 3) for k, v in self.seconds.items()},
                        # start-up: process start to the first frame decoded (imports, probe, model card, ...)
                        **({"startup": round(self.timeline["first_decoded"], 3)} if "first_decoded" in self.timeline
                           else {})},
            "timeline": {k: round(v, 3) for k, v in sorted(self.timeline.items(), key=lambda kv: kv[1])},
            "fps": round(self.frames / total, 2),
            "peak_rss_mib": {k: round(v, 1) for k, v in self.peak_rss_mib.items()},
            "model_precision": self.precision,
            "model_runtime": self.runtime,
        }


