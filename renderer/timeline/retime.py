"""Speed effects: which media frames a retimed clip shows, and which effects Doppel cannot follow.

OTIO's convention (what every adapter reads into): a clip's `source_range` starts at the
media time of its first record frame and lasts as long as the clip does on its track; a
`LinearTimeWarp` with `time_scalar` s shows, `k` record frames in, the media time
`start + k * s`. A `FreezeFrame` is s = 0, a reverse clip s < 0 (frames counting down from the
start), CMX 3600 `M2` events and Avid's motion effects come in as these two. The frame shown is
the media frame that time falls in (floor), as NLEs hold the last whole frame.

Doppel renders the media frames such a clip shows (the span from the lowest to the highest,
at 1x, with handles) and gives the return clip the same source range and the same effect, so
the NLE retimes the swapped media exactly as it retimed the original. Everything else that
changes time is refused for that clip, by name: variable-speed (keyframed) remaps, FCP7 `Time
Remap` filters (the FCP7 adapter reads them as an opaque effect and drops them on writing),
and any other OTIO TimeEffect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import opentimelineio as otio
from opentimelineio.opentime import RationalTime


class Unsupported(Exception):
    """A time effect Doppel cannot follow; the text names it (one line)."""


@dataclass(frozen=True)
class Speed:
    """The clip's time map: media time = start + k * scalar. `effects` are the effects to copy."""

    scalar: float
    effects: tuple[otio.schema.Effect, ...] = ()

    @property
    def retimed(self) -> bool:
        """True when the clip shows other frames than at 1x (a 100 % LinearTimeWarp is not)."""
        return self.scalar != 1.0

    def describe(self) -> str:
        if not self.effects:
            return "normal speed"
        if self.scalar == 0:
            return "freeze frame"
        return f"{'reverse ' if self.scalar < 0 else ''}{abs(self.scalar) * 100:g} % speed"


def _name(effect: otio.schema.Effect) -> str:
    return effect.effect_name or effect.name or type(effect).__name__


def _is_fcp7_remap(effect: otio.schema.Effect) -> bool:
    fcp = effect.metadata.get("fcp_xml") if effect.metadata else None
    return fcp is not None and hasattr(fcp, "get") and str(fcp.get("effectid", "")).lower() == "timeremap"


def time_effect_names(item: otio.core.Item) -> list[str]:
    """Names of the effects of `item` that change which frames it shows (a 100 % warp does not)."""
    return [_name(e) for e in item.effects
            if _is_fcp7_remap(e) or (isinstance(e, otio.schema.TimeEffect)
                                     and not (isinstance(e, otio.schema.LinearTimeWarp) and e.time_scalar == 1.0))]


def clip_speed(clip: otio.core.Item) -> Speed:
    """The clip's constant speed through its time effects; Unsupported naming any it cannot follow."""
    scalar = 1.0
    kept: list[otio.schema.Effect] = []
    for effect in clip.effects:
        if _is_fcp7_remap(effect):
            raise Unsupported("FCP7 'Time Remap' effect (the FCP7 XML adapter reads it as an opaque filter "
                              "and drops it when writing): speed changes in FCP7 XML are not supported yet")
        if isinstance(effect, otio.schema.LinearTimeWarp):  # FreezeFrame is one, scalar 0
            if effect.metadata and any("keyframe" in str(k).lower() for k in effect.metadata.keys()):
                raise Unsupported(f"time effect '{_name(effect)}' with keyframes (variable speed)")
            scalar *= float(effect.time_scalar)
            kept.append(effect)
        elif isinstance(effect, otio.schema.TimeEffect):
            raise Unsupported(f"time effect '{_name(effect)}' ({type(effect).__name__}) is not supported; "
                              f"supported: LinearTimeWarp, FreezeFrame")
    return Speed(scalar, tuple(kept))


def shown_times(start: RationalTime, offset: int, frames: int, speed: Speed) -> list[float]:
    """Media times (in `start`'s rate units, not rounded) of record frames offset..offset+frames-1."""
    return [start.value + (offset + k) * speed.scalar for k in range(frames)]


def media_frame(value: float) -> int:
    """The frame a media time falls in (the small epsilon absorbs 2.0000000001-style float error)."""
    return math.floor(value + 1e-6)


__all__ = ["Speed", "Unsupported", "clip_speed", "media_frame", "shown_times", "time_effect_names"]
