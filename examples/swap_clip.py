"""Swap the faces in one clip from Python, the way `doppel swap` does, in a dozen lines.

    .venv/bin/python examples/swap_clip.py INPUT.mp4 models/demo OUTPUT.mp4

The stages are plain functions: `media.probe` reads the clip's facts, `render_range` runs
decode -> track -> align -> model -> composite -> encode over a frame range, and the
provenance helpers label the result as synthetic media (and sign it when a key is set up).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from renderer import media
from renderer.provenance import claim_for_model, label_metadata, resolve_signing_identity, sign_media
from renderer.swap import SwapSettings, render_range


def main(src: Path, model_dir: Path, out: Path) -> int:
    info = media.probe(src)
    last = info.frames - 1
    claim = claim_for_model(src, model_dir, [(0, info.frames)])  # refuses a model card without rights
    identity = resolve_signing_identity(None, os.environ)  # None: unsigned, labelled only
    stats = render_range(src, out, model_dir=model_dir, settings=SwapSettings(), first=0, last=last,
                         swap_ranges=[(0, last)], codec="h264",
                         metadata=label_metadata(claim, signed=identity is not None))
    signed = sign_media(out, claim, identity, source=src)
    print(f"{out}: {stats.swapped}/{stats.frames} frames swapped, {stats.to_json()['fps']} frames/s, "
          f"{'signed' if signed.signed else 'unsigned (run `doppel keys init` to sign)'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
