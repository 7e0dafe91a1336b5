"""python -m plugin.resolve install [--scripts-dir DIR]

Write the "Doppel Face Swap" launcher into DaVinci Resolve's Workspace > Scripts > Utility folder
(default: the per-user folder of this platform). The launcher points at this checkout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plugin.resolve import core


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin.resolve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="write the launcher script into Resolve's Scripts folder")
    inst.add_argument("--scripts-dir", type=Path, default=None,
                      help=f"target folder (default: {core.default_scripts_dir()})")
    args = parser.parse_args(argv)
    target_dir = args.scripts_dir or core.default_scripts_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "Doppel Face Swap.py"
    tmp = target.with_name(f".{target.name}.partial")
    tmp.write_text(core.launcher_text(Path(__file__).resolve().parents[2]), encoding="utf-8")
    tmp.replace(target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
