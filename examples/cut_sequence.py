"""Cut an image sequence by its own frame numbers into a new sequence, the numbers kept.

    .venv/bin/python examples/cut_sequence.py plates/shot.%04d.exr 1003 1005 cut/shot.%04d.exr

`media.probe` reads a sequence (a pattern or its folder) like a movie: frame index 0 is the first
file, `info.sequence.numbers` maps each index to its file's number. `media.trim` writes the new
sequence into its own folder, which appears only when every frame is there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from renderer import media


def main(src: str, first: int, last: int, out: str) -> int:
    info = media.probe(src)
    numbers = info.sequence.numbers
    if first not in numbers or last not in numbers or last < first:
        sys.exit(f"{src} holds frames {numbers[0]}-{numbers[-1]} (step {info.sequence.step}); asked {first}-{last}")
    cut = media.trim(src, numbers.index(first), numbers.index(last), Path(out))
    kind = cut.codec + (f" {cut.sequence.exr.pixel_type}" if cut.sequence.exr else "")
    print(f"{out}: frames {cut.sequence.numbers[0]}-{cut.sequence.numbers[-1]} ({cut.frames} files, {kind})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
