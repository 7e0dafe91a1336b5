"""Atomic file output: write under a temporary name beside the target, rename when complete.

A crash, an exception or a kill leaves either the old file or nothing under the
final name, never a half-written one. The temporary name keeps the extension so
muxers that pick the format from the name still work, and names its owner
(`.<stem>.partial-<host>-<pid>-<random><suffix>`): a later run removes the leftovers of
a killed writer of the same output (`remove_stale_partials`), and only those whose
process is gone from this host, so it never deletes what a live writer is writing.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from renderer.errors import InputError

_PARTIAL = re.compile(r"^\.(?P<stem>.*?)\.partial-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-z_]+")


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def _final_stem(final: Path) -> str:
    """The stem of the file a temp name stands for (a temp of a temp names the same final)."""
    m = _PARTIAL.match(final.name)
    return m.group("stem") if m else final.stem


def final_path_of(path: Path) -> Path:
    """The output a temp file stands for (`.o.partial-…mp4` -> `o.mp4`); other paths unchanged."""
    path = Path(path)
    m = _PARTIAL.match(path.name)
    return path.with_name(m.group("stem") + path.suffix) if m and not path.name.endswith(".d") else path


def temp_path_for(final: Path) -> Path:
    """A unique hidden sibling of `final` with the same suffix (`.name.partial-<host>-<pid>-<id>.mp4`)."""
    final = Path(final)
    tag = f"{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return final.with_name(f".{_final_stem(final)}.partial-{tag}{final.suffix}")


def temp_dir_for(final: Path) -> Path:
    """A new private (0700) work folder beside `final`, named like its temp files (so it is cleaned alike)."""
    final = Path(final)
    prefix = f".{_final_stem(final)}.partial-{_host_tag()}-{os.getpid()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=".d", dir=final.parent))


def _process_gone(pid: int) -> bool:
    """True when no live process has `pid` on this host (a zombie counts as gone)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # Linux: a killed child nobody reaped yet is a zombie, its files are stale
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def remove_stale_partials(final: Path) -> list[Path]:
    """Delete the temp files and work folders a killed writer of `final` left beside it.

    Only ours (named after `final`, made on this host) and only stale (their process is gone):
    a live writer's temp file, or one another machine is writing on shared storage, stays.
    Returns what was removed.
    """
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    host = _host_tag()
    for leftover in final.parent.glob(f".{glob.escape(final.stem)}.partial-*"):
        m = _PARTIAL.match(leftover.name)
        if not m or m.group("stem") != final.stem or m.group("host") != host:
            continue
        if not (leftover.name.endswith(final.suffix) or leftover.name.endswith(".d")):
            continue
        if not _process_gone(int(m.group("pid"))):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path; on normal exit rename it to `final`, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_output(final) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final: Path, text: str) -> None:
    write_bytes_atomic(final, text.encode("utf-8"))


def write_json_atomic(final: Path, obj: Any) -> None:
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_writable(path: Path, what: str, *, is_dir: bool = False) -> None:
    """InputError (exit 2) unless `path` (a file, or with `is_dir` a folder) could be created or
    replaced: the nearest existing folder above it is writable and nothing on the way is a file.

    Checked before any work, so a read-only or mistyped --out fails in one line with nothing written.
    `os.access` asks the kernel, so a read-only mount is caught for root too.
    """
    path = Path(path).expanduser()
    target = path if is_dir else path.parent
    if is_dir and path.exists() and not path.is_dir():
        raise InputError(f"{what} {path}: is a file, not a folder")
    if not is_dir and path.is_dir():
        raise InputError(f"{what} {path}: is a folder; give a file name")
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"{what} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        reason = os.strerror(errno.EROFS) if _read_only_mount(probe) else "permission denied"
        raise InputError(f"{what} {path}: cannot write into {probe}: {reason}")


def check_new_output(out: Path, what: str, *, force: bool) -> None:
    """`check_writable`, and InputError when `out` exists and not `force` (nothing is replaced by
    surprise); then clears what a killed earlier writer of `out` left beside it.

    An image sequence pattern (out/shot/shot.%04d.exr) is written as its own folder: that folder
    must be new or empty; `force` replaces it only when it holds nothing but one sequence."""
    from renderer.media.sequence import is_sequence_path, parse_sequence
    from renderer.media.sequence_write import replace_sequence_folder

    if is_sequence_path(out) and not Path(out).is_dir():
        folder = parse_sequence(out).folder
        check_writable(folder, what, is_dir=True)
        if folder.is_dir() and any(folder.iterdir()):
            if not force:
                raise InputError(f"{what} {out}: the folder {folder} already exists and is not empty; pass --force "
                                 f"to replace the sequence in it, or give a new folder")
            replace_sequence_folder(folder)
        remove_stale_partials(folder)
        return
    check_writable(out, what)
    if Path(out).exists() and not force:
        raise InputError(f"{what} {out} already exists; pass --force to replace it")
    remove_stale_partials(out)


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (memory stays flat for big media)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
