"""Swap the faces in one clip and write the matte a compositor refines the edge with.

    .venv/bin/python examples/matte_pass.py INPUT.mp4 models/demo OUTPUT.mp4

`media.MatteWriter` takes the blend mask of every frame from the same pass as `render_range`
(the swap hands each frame's pasted faces on, in order) and writes OUTPUT's
`<stem>.matte.mov` beside it: ProRes 4444, the mask in alpha (10-bit, lossless) and luma, the
output's frame count, timing and timecode, labelled as derived from synthetic media.
"""

from __future__ import annotations

import sys
from pathlib import Path

from renderer import media
from renderer.provenance import claim_for_model, label_metadata, matte_label
from renderer.swap import SwapSettings, render_range


def main(src: Path, model_dir: Path, out: Path) -> int:
    info = media.probe(src)
    last = info.frames - 1
    claim = claim_for_model(src, model_dir, [(0, info.frames)])  # refuses a model card without rights
    matte_path, _ = media.matte_paths(out)
    with media.MatteWriter(info, 0, last, matte=matte_path,
                           metadata=matte_label(claim, signed=False, kind="matte", output_name=out.name)) as matte:
        stats = render_range(src, out, model_dir=model_dir, settings=SwapSettings(), first=0, last=last,
                             swap_ranges=[(0, last)], codec="h264", metadata=label_metadata(claim, signed=False),
                             matte=matte)
    alphas = media.decode_matte(matte_path)
    covered = sum(float((a > 0).mean()) for a in alphas) / len(alphas)
    print(f"{out}: {stats.swapped}/{stats.frames} frames swapped; {matte_path}: {len(alphas)} frames, "
          f"the mask covers {100 * covered:.1f} % of the picture on average")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
