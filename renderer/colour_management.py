"""Colour management with OpenColorIO: the source space of a shot <-> the working space of a model.

A model learns faces in one display-referred space (8-bit Rec.709 / sRGB video and photos,
unless its facesets were cut in another). A camera-log shot (ARRI LogC, S-Log3, ACEScct...)
fed to it as it is would be the wrong input, so a managed swap converts the face's crop and
box from the shot's `source_space` into the model's `working_space`, runs the model, the colour
transfer and the blend there, and converts the blended pixels back. Pixels outside the mask
are never converted (the paste writes only where the mask is above 0).

Convention: every array in and out is float32 (H, W, 3) RGB, nominally in [0, 1] (code value
/ 255 for 8-bit, / 65535 for 16-bit data; a scene-linear space may go past 1), so the same
code serves 8-bit and deep pipelines.

Configs: `ocio://studio-config-latest` (built into the `opencolorio` package: the ACES
studio config with camera log, ACES and display spaces; nothing is downloaded), any other
`ocio://` built-in, or a path to a studio's own `config.ocio`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from renderer.errors import InputError

if TYPE_CHECKING:  # OCIO is imported where a config is opened: an unmanaged swap never needs it (~75 ms)
    import PyOpenColorIO as ocio

BUILTIN_CONFIG = "ocio://studio-config-latest"
DEFAULT_WORKING_SPACE = "Rec.1886 Rec.709 - Display"


def load_config(ref: str | Path, where: str = "colour_management.config") -> ocio.Config:
    """The OCIO config named by `ref` (`ocio://...` built-in or a file path). Raises InputError."""
    import PyOpenColorIO as ocio

    text = str(ref)
    if not text.startswith("ocio://") and not Path(text).is_file():
        raise InputError(f"OCIO config {text!r} ({where}) is not a file; give a config.ocio path or a built-in "
                         f"such as {BUILTIN_CONFIG!r}")
    try:
        config = ocio.Config.CreateFromFile(text)
        config.validate()
    except ocio.Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"OCIO config {text!r} ({where}) cannot be read: {first}") from err
    return config


def colour_spaces(config: ocio.Config) -> list[str]:
    """Every colour space name of the config, in the config's order."""
    return [cs.getName() for cs in config.getColorSpaces()]


def check_space(config: ocio.Config, name: str, where: str, config_ref: str = "") -> str:
    """The config's own name for colour space `name` (a name or an alias). Raises InputError.

    The error lists every space of the config and the closest match to what was given.
    """
    cs = config.getColorSpace(name) if isinstance(name, str) and name else None
    if cs is not None:
        return str(cs.getName())
    import difflib

    names = colour_spaces(config)
    by_word = {alias.lower(): cs.getName() for cs in config.getColorSpaces() for alias in cs.getAliases()}
    by_word.update({n.lower(): n for n in names})
    match = difflib.get_close_matches(str(name).lower(), list(by_word), n=1, cutoff=0.6)
    if not match:  # 'S-Log 3' -> 'S-Log3 S-Gamut3': the letters and digits given, at the start of a name
        key = "".join(ch for ch in str(name).lower() if ch.isalnum())
        match = [w for w in by_word if key and "".join(ch for ch in w if ch.isalnum()).startswith(key)][:1]
    hint = f"; did you mean '{by_word[match[0]]}'?" if match else ""
    label = f" in config {config_ref!r}" if config_ref else ""
    raise InputError(f"unknown colour space {name!r} ({where}){label}{hint}; allowed: {', '.join(names)}")


@dataclass(frozen=True)
class ColourSpaces:
    """Which config and spaces a managed swap uses (validated names, see `check_space`)."""

    config: str
    source_space: str
    working_space: str


class ColourManagement:
    """The two OCIO CPU processors of a managed swap: source -> working and working -> source.

    Build it with `ColourManagement.open(spaces)`; `to_working` / `to_source` take float32
    (H, W, 3) RGB and return a new float32 array of the same shape (the input is left as it
    is). OCIO's CPU processors are safe to apply from several threads.
    """

    def __init__(self, spaces: ColourSpaces, forward: ocio.CPUProcessor, inverse: ocio.CPUProcessor,
                 forward_u8: ocio.CPUProcessor) -> None:
        self.spaces = spaces
        self._forward, self._inverse, self._forward_u8 = forward, inverse, forward_u8

    @classmethod
    def open(cls, spaces: ColourSpaces) -> ColourManagement:
        """Load the config and make both processors. Raises InputError (bad config or space)."""
        import PyOpenColorIO as ocio

        config = load_config(spaces.config)
        src = check_space(config, spaces.source_space, "colour_management.source_space", spaces.config)
        work = check_space(config, spaces.working_space, "colour_management.working_space", spaces.config)
        try:
            forward = config.getProcessor(src, work).getOptimizedCPUProcessor(ocio.OPTIMIZATION_DEFAULT)
            inverse = config.getProcessor(work, src).getOptimizedCPUProcessor(ocio.OPTIMIZATION_DEFAULT)
            forward_u8 = config.getProcessor(src, work).getOptimizedCPUProcessor(
                ocio.BIT_DEPTH_UINT8, ocio.BIT_DEPTH_UINT8, ocio.OPTIMIZATION_DEFAULT)
        except ocio.Exception as err:
            raise InputError(f"OCIO cannot convert between {src!r} and {work!r} in {spaces.config!r}: {err}") from err
        return cls(ColourSpaces(spaces.config, src, work), forward, inverse, forward_u8)

    @property
    def identity(self) -> bool:
        """True when source and working space are the same (nothing to convert)."""
        return self.spaces.source_space == self.spaces.working_space

    def to_working(self, rgb: np.ndarray) -> np.ndarray:
        """Source-space float32 (H, W, 3) -> a new working-space float32 (H, W, 3)."""
        return self._apply(self._forward, rgb)

    def to_source(self, rgb: np.ndarray) -> np.ndarray:
        """Working-space float32 (H, W, 3) -> a new source-space float32 (H, W, 3)."""
        return self._apply(self._inverse, rgb)

    def to_working_u8(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) source-space RGB -> a new uint8 working-space copy (within one code value
        of the float conversion rounded): the view faces are detected and landmarked on."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim < 2 or rgb.shape[-1] != 3:
            got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
            raise InputError(f"colour conversion needs uint8 (..., 3) RGB here; got {got}")
        out = np.array(rgb, dtype=np.uint8, order="C", copy=True)
        if out.size and not self.identity:
            self._forward_u8.applyRGB(out)
        return out

    def _apply(self, processor: ocio.CPUProcessor, rgb: np.ndarray) -> np.ndarray:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.float32 or rgb.ndim < 2 or rgb.shape[-1] != 3:
            got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
            raise InputError(f"colour conversion needs float32 (..., 3) RGB; got {got}")
        out = np.array(rgb, dtype=np.float32, order="C", copy=True)
        if out.size and not self.identity:
            processor.applyRGB(out)  # in place, on the contiguous copy
        return out


__all__ = ["BUILTIN_CONFIG", "DEFAULT_WORKING_SPACE", "ColourManagement", "ColourSpaces", "check_space",
           "colour_spaces", "load_config"]
