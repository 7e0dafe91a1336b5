"""Swap the faces of a camera-log clip in the Rec.709 space the model learned in, from Python.

    .venv/bin/python examples/colour_managed_swap.py INPUT.mkv "ARRI LogC3 (EI800)" models/demo OUTPUT.mkv

`ColourManagement.open` loads the OpenColorIO config (here the ACES studio config built into
the `opencolorio` package) and makes the two processors; `render_range` then finds faces on a
Rec.709 view of each frame, converts each face's crop and box to Rec.709, runs the model and the
blend there, and converts the blended pixels back to the log space. Pixels outside the mask are
the source's own samples. The output is lossless FFV1 at 16 bits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from renderer import media
from renderer.colour_management import BUILTIN_CONFIG, DEFAULT_WORKING_SPACE, ColourManagement, ColourSpaces
from renderer.provenance import claim_for_model, label_metadata
from renderer.swap import SwapSettings, render_range


def main(src: Path, space: str, model_dir: Path, out: Path) -> int:
    info = media.probe(src)
    last = info.frames - 1
    colour = ColourManagement.open(ColourSpaces(BUILTIN_CONFIG, space, DEFAULT_WORKING_SPACE))  # InputError if unknown
    claim = claim_for_model(src, model_dir, [(0, info.frames)])  # refuses a model card without rights
    stats = render_range(src, out, model_dir=model_dir, settings=SwapSettings(colour=colour), first=0, last=last,
                         swap_ranges=[(0, last)], codec="ffv1", pix_fmt="yuv444p16le",
                         metadata=label_metadata(claim, signed=False))
    print(f"{out}: {stats.swapped}/{stats.frames} frames swapped in {colour.spaces.working_space!r} "
          f"from {colour.spaces.source_space!r}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
