"""Atomic output: owner-tagged temp names, cleaning what killed writers left, --out checks.

The leftovers are made by real processes killed with SIGKILL; the read-only folder is a real
read-only tmpfs mount (root writes through chmod).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from renderer.atomic import (
    atomic_output, check_new_output, check_writable, remove_stale_partials, temp_dir_for, temp_path_for,
)
from renderer.errors import InputError
from tests.faults import tmpfs

ROOT = Path(__file__).resolve().parents[1]
# A writer that makes a temp file (and work folder) for OUT, says so, then waits to be killed.
WRITER = """
import sys, time
from pathlib import Path
from renderer.atomic import temp_dir_for, temp_path_for
out = Path(sys.argv[1])
tmp = temp_path_for(out); tmp.write_bytes(b"half")
work = temp_dir_for(out); (work / "span.mp4").write_bytes(b"half")
print(tmp, work, flush=True)
time.sleep(60)
"""


def _writer(out: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    tmp, work = proc.stdout.readline().split()
    return proc, Path(tmp), Path(work)


def test_temp_names_keep_the_suffix_and_a_temp_of_a_temp_names_the_same_output(tmp_path: Path) -> None:
    out = tmp_path / "shot.v2.mov"
    tmp = temp_path_for(out)
    assert tmp.suffix == ".mov" and tmp.name.startswith(".shot.v2.partial-") and f"-{os.getpid()}-" in tmp.name
    assert temp_path_for(tmp).name.startswith(".shot.v2.partial-")
    work = temp_dir_for(tmp)
    assert work.name.startswith(".shot.v2.partial-") and (work.stat().st_mode & 0o777) == 0o700


def test_a_killed_writers_leftovers_are_removed_and_a_live_writers_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    dead, dead_tmp, dead_work = _writer(out)
    live, live_tmp, live_work = _writer(out)
    other, other_tmp, other_work = _writer(tmp_path / "other.mp4")
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=10)
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)
        foreign = tmp_path / ".out.partial-0000beef-1-deadbeef.mp4"  # another host's writer on shared storage
        foreign.write_bytes(b"x")
        assert dead_tmp.is_file() and dead_work.is_dir()
        removed = remove_stale_partials(out)
        assert sorted(removed) == sorted([dead_tmp, dead_work])
        assert not dead_tmp.exists() and not dead_work.exists()
        assert live_tmp.is_file() and live_work.is_dir()  # still being written
        assert other_tmp.is_file() and other_work.is_dir()  # not a leftover of out.mp4
        assert foreign.is_file()
    finally:
        live.kill()
        live.wait(timeout=10)
    assert sorted(remove_stale_partials(out)) == sorted([live_tmp, live_work])


def test_a_killed_child_not_yet_reaped_counts_as_gone(tmp_path: Path) -> None:
    out = tmp_path / "z.mov"
    proc, tmp, _ = _writer(out)
    proc.send_signal(signal.SIGKILL)
    for _ in range(100):  # a zombie until waited for
        if Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.02)
    try:
        assert tmp in remove_stale_partials(out)
    finally:
        proc.wait(timeout=10)


def test_atomic_output_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "x.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_names_the_path_and_the_reason(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "x.mp4").write_bytes(b"not a folder")
    with pytest.raises(InputError, match=r"--out .*x\.mp4/o\.mp4: .*x\.mp4 is a file, not a folder"):
        check_writable(media / "x.mp4" / "o.mp4", "--out")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_writable(media / "x.mp4", "--out", is_dir=True)
    with pytest.raises(InputError, match="is a folder; give a file name"):
        check_writable(media, "--out")
    check_writable(tmp_path / "new" / "deeper" / "o.mp4", "--out")  # would be created
    assert not (tmp_path / "new").exists()  # and checking created nothing


def test_check_writable_sees_a_read_only_mount_as_root(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", read_only=True, fill={"old.mp4": b"old"}) as ro:
        with pytest.raises(InputError, match=r"cannot write into .*ro: Read-only file system"):
            check_writable(ro / "sub" / "o.mp4", "--out")
        with pytest.raises(InputError, match="Read-only file system"):
            check_writable(ro, "--out", is_dir=True)


def test_check_new_output_refuses_an_existing_file_without_force(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists; pass --force"):
        check_new_output(out, "--out", force=False)
    check_new_output(out, "--out", force=True)
    assert out.read_bytes() == b"precious"  # the check replaces nothing
