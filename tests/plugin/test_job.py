"""The background-process side of the plugins: finding doppel, argv, OpenJD progress parsing.

The process tests run a real child Python process that speaks the `doppel render --progress --json`
protocol, so the reader threads, polling and exit codes are exercised for real.
"""

from __future__ import annotations

import os
import stat
import sys
import time

import pytest

from plugin.blender import job


def test_parse_progress_lines():
    assert job.parse_progress_line("openjd_progress: 42.5\n") == ("progress", 42.5)
    assert job.parse_progress_line("openjd_status: clip 1/2") == ("status", "clip 1/2")
    assert job.parse_progress_line("openjd_progress: lots") is None
    assert job.parse_progress_line('{"ok": true}') is None


def test_parse_summary_after_progress():
    text = 'openjd_progress: 10\nnoise\n{\n  "clips": 2,\n  "return_otio": "x.doppel.otio"\n}\n'
    assert job.parse_summary(text) == {"clips": 2, "return_otio": "x.doppel.otio"}
    assert job.parse_summary("no json here") is None


def test_render_argv():
    argv = job.render_argv("/bin/doppel", "/e/edit.otio", "hq", "/o", model="/m", media_root="/r")
    assert argv == ["/bin/doppel", "render", "/e/edit.otio", "--preset", "hq", "--out", "/o", "--model", "/m",
                    "--media-root", "/r", "--json", "--progress"]
    assert "--model" not in job.render_argv("d", "e", "p", "o")


def test_find_doppel(tmp_path):
    exe = tmp_path / "bin" / "doppel"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    assert job.find_doppel(str(exe), env={"PATH": ""}) == str(exe)
    assert job.find_doppel("", env={"DOPPEL_BIN": str(exe), "PATH": ""}) == str(exe)
    assert job.find_doppel("", env={"PATH": str(exe.parent)}) == str(exe)
    with pytest.raises(job.DoppelNotFound, match=r"DOPPEL_BIN '/nope'.*'doppel' on PATH"):
        job.find_doppel("", env={"DOPPEL_BIN": "/nope", "PATH": str(tmp_path)})


def test_return_edit_path(tmp_path):
    (tmp_path / "cut.doppel.otio").write_text("{}")
    assert job.return_edit_path(tmp_path, "/x/cut.otio") == tmp_path / "cut.doppel.otio"
    assert job.return_edit_path(tmp_path, "/x/other.otio") == tmp_path / "cut.doppel.otio"
    assert job.return_edit_path(tmp_path, "/x/a.otio", {"return_otio": "/abs/r.otio"}).as_posix() == "/abs/r.otio"
    (tmp_path / "two.doppel.otio").write_text("{}")
    with pytest.raises(FileNotFoundError, match="other.doppel.otio"):
        job.return_edit_path(tmp_path, "/x/other.otio")


SPEAKER = r"""
import sys, time
for i in range(5):
    print(f"openjd_progress: {i * 20}", flush=True)
    print(f"openjd_status: step {i}", flush=True)
    time.sleep(0.05)
print("warning: something", file=sys.stderr, flush=True)
if len(sys.argv) > 1:
    print("doppel render: error: bad preset 'x'", file=sys.stderr, flush=True)
    sys.exit(2)
print('{"clips": 1, "failed": 0}', flush=True)
"""


def test_render_job_polls_without_blocking():
    j = job.RenderJob([sys.executable, "-c", SPEAKER]).start()
    seen, t0 = set(), time.monotonic()
    while not (state := j.poll()).done:
        seen.add(state.percent)
        assert time.monotonic() - t0 < 30
        time.sleep(0.01)
    assert state.returncode == 0 and state.percent == 100.0 and state.status == "step 4"
    assert state.summary() == {"clips": 1, "failed": 0}
    assert len(seen) >= 2  # progress was seen moving while the process ran


def test_render_job_failure_and_cancel():
    state = job.RenderJob([sys.executable, "-c", SPEAKER, "fail"]).start().wait(30)
    assert state.returncode == 2
    assert state.error_line() == "doppel render: error: bad preset 'x'"
    j = job.RenderJob([sys.executable, "-c", "import time; time.sleep(30)"]).start()
    j.cancel()
    assert j.wait(10).returncode != 0
    assert os.name != "posix" or j.poll().returncode < 0
