"""python -m plugin.mlt RETURN.otio OUT.mlt [--fps 25] [--size 1920x1080]

Write a Doppel return edit (or any edit Doppel reads: .otio, FCP7 .xml, .fcpxml, .edl, .aaf) as
MLT XML that Kdenlive and Shotcut open and `melt OUT.mlt -consumer avformat:out.mkv` renders:
all tracks, the FACESWAP track on top, media times counted from frame 0, no black tail.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction

from renderer.errors import DoppelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin.mlt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("edit", help="return edit from `doppel render` (OUT_DIR/<name>.doppel.otio)")
    parser.add_argument("out", help="MLT file to write (.mlt)")
    parser.add_argument("--fps", type=Fraction, default=None,
                        help="profile frame rate, e.g. 25 or 24000/1001 (default: the first video clip's)")
    parser.add_argument("--size", default=None, help="profile WIDTHxHEIGHT (default: the first video clip's media)")
    args = parser.parse_args(argv)
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            parser.error(f"--size {args.size!r} is not WIDTHxHEIGHT (e.g. 1920x1080)")
    from plugin.mlt.writer import write_mlt

    try:
        print(write_mlt(args.edit, args.out, fps=args.fps, size=size))
    except DoppelError as err:
        print(f"plugin.mlt: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
