"""Build the installable Blender add-on: a zip (or folder) holding `doppel_vse/`.

    python -m plugin.blender.package doppel_vse.zip          # Preferences > Add-ons > Install...
    python -m plugin.blender.package --folder ADDONS_DIR     # copies ADDONS_DIR/doppel_vse/

The add-on uses relative imports only, so the folder name is free; `doppel_vse` is the default.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ADDON_NAME = "doppel_vse"
FILES = ("__init__.py", "addon.py", "job.py", "otio_json.py")
HERE = Path(__file__).resolve().parent


def build_zip(out: str | os.PathLike[str], name: str = ADDON_NAME) -> Path:
    """Write the add-on zip (`<name>/<files>`) atomically and return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.partial-", suffix=".zip", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in FILES:
                zf.write(HERE / f, f"{name}/{f}")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def install_folder(addons_dir: str | os.PathLike[str], name: str = ADDON_NAME) -> Path:
    """Copy the add-on to `addons_dir/<name>/` (replacing an older copy) and return that folder."""
    target = Path(addons_dir) / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=Path(addons_dir).mkdir(parents=True, exist_ok=True)
                                    or addons_dir))
    for f in FILES:
        shutil.copy2(HERE / f, staging / f)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin.blender.package", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="zip file to write, or with --folder the Blender addons folder")
    parser.add_argument("--folder", action="store_true", help="install as a folder instead of writing a zip")
    parser.add_argument("--name", default=ADDON_NAME, help=f"add-on module name (default {ADDON_NAME})")
    args = parser.parse_args(argv)
    path = install_folder(args.target, args.name) if args.folder else build_zip(args.target, args.name)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
