"""`.otioz` bundles (an OTIO edit and its media in one zip), unpacked safely.

Each read unpacks into a new private folder (mode 0700, made by `mkdtemp`: no other user can
plant or read files in it, and nothing from an earlier run is trusted), removed when the
process ends; a run that was killed leaves one behind, which the next read removes (only
folders of dead processes on this host, see `renderer.atomic.remove_stale_partials`).
The unpacked size is capped before anything is written, so a small bundle cannot fill the disk.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from renderer.atomic import remove_stale_partials, temp_dir_for
from renderer.errors import InputError

CONTENT = "content.otio"
# Media in a bundle is stored (video does not compress), so unpacked ~= packed; the JSON edit
# deflates about 10x. More than this is a zip bomb, not an edit.
MAX_RATIO = 20
MIN_ALLOWANCE = 64 * 1024 * 1024  # bytes always allowed, whatever the bundle's size


def unpack_limit(bundle_bytes: int) -> int:
    """The most bytes a bundle of `bundle_bytes` may unpack to."""
    return MIN_ALLOWANCE + MAX_RATIO * bundle_bytes


def _work_name() -> Path:
    return Path(tempfile.gettempdir()) / "doppel-otioz"


def _unpack_root(path: Path) -> Path | None:
    return next((p for p in Path(path).parents if p.name.startswith(f".{_work_name().name}.partial-")), None)


def unpacked_copy(path: Path) -> bool:
    """True when `path` lies in a folder `unpack` made (media a bundle carries, not the user's files)."""
    return _unpack_root(path) is not None


def member_name(path: Path) -> str | None:
    """`media/shot.mov` for a file `unpack` wrote (the same on every read of the bundle), else None."""
    root = _unpack_root(path)
    return Path(path).relative_to(root).as_posix() if root is not None else None


def unpack(bundle: Path) -> Path:
    """Unpack `bundle` into a fresh private folder and return it (it holds `content.otio` and
    `media/`). InputError for a bundle that is not a zip, lacks content.otio, names a path
    outside itself, or would unpack to more than `unpack_limit` bytes."""
    bundle = Path(bundle)
    size = bundle.stat().st_size
    try:
        with zipfile.ZipFile(bundle) as zf:
            members = zf.infolist()
            names = {m.filename for m in members}
            if CONTENT not in names:
                raise InputError(f"bundle {bundle} has no {CONTENT}; an .otioz holds {CONTENT} and media/")
            for m in members:
                parts = PurePosixPath(m.filename).parts
                if m.filename.startswith("/") or ".." in parts or "\\" in m.filename or ":" in m.filename:
                    raise InputError(f"bundle {bundle}: member {m.filename!r} points outside the bundle")
            total = sum(m.file_size for m in members)
            limit = unpack_limit(size)
            if total > limit:
                raise InputError(
                    f"bundle {bundle} would unpack to {total / 1e6:.1f} MB from {size / 1e6:.1f} MB; the limit is "
                    f"{limit / 1e6:.1f} MB ({MIN_ALLOWANCE // (1024 * 1024)} MiB + {MAX_RATIO}x the bundle size): "
                    f"refusing what looks like a zip bomb")
            remove_stale_partials(_work_name())
            folder = temp_dir_for(_work_name())
            # The timeline's media paths point in here for as long as this process may render from it.
            atexit.register(shutil.rmtree, folder, True)
            try:
                for m in members:
                    target = Path(zf.extract(m, folder))  # declared sizes bound the bytes: longer fails its CRC
                    if not m.is_dir():  # the member's own date, so a re-read of the same bundle looks the same
                        when = time.mktime((*m.date_time, 0, 0, -1))
                        os.utime(target, (when, when))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
    except zipfile.BadZipFile as err:
        raise InputError(f"cannot read edit {bundle} as an OpenTimelineIO zip bundle: {err}") from err
    return folder
