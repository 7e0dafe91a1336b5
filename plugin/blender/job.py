"""Run `doppel render` as a background process and follow its progress (standard library only).

The host stays responsive: `RenderJob.start` launches the process and a reader thread; the host
polls `RenderJob.poll()` from its own timer (Blender: `bpy.app.timers`) and shows the state.
`doppel render --progress` prints OpenJD progress lines on stdout:

    openjd_progress: 42.5
    openjd_status: clip 2/3: frame 17/40

and `--json` prints a JSON summary at the end. Nothing here imports torch or the renderer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DoppelNotFound(RuntimeError):
    """The doppel executable could not be found; says where we looked."""


def find_doppel(preference: str = "", env: Mapping[str, str] | None = None) -> str:
    """The doppel executable: the add-on preference if set, else $DOPPEL_BIN, else `doppel` on PATH."""
    env = os.environ if env is None else env
    tried = []
    for source, value in (("add-on preference", preference), ("DOPPEL_BIN", env.get("DOPPEL_BIN", ""))):
        if value:
            path = Path(os.path.expanduser(value))
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            tried.append(f"{source} {value!r} (not an executable file)")
    found = shutil.which("doppel", path=env.get("PATH"))
    if found:
        return found
    tried.append("'doppel' on PATH")
    raise DoppelNotFound("cannot find the doppel executable; tried " + ", ".join(tried)
                         + ". Set the add-on preference or DOPPEL_BIN to the path of `doppel` "
                         "(e.g. /path/to/venv/bin/doppel).")


def render_argv(doppel: str, edit: str | os.PathLike[str], preset: str, out_dir: str | os.PathLike[str],
                model: str = "", media_root: str = "", extra: Sequence[str] = ()) -> list[str]:
    """argv of `doppel render EDIT --preset P --out DIR [--model M] [--media-root R] --json --progress`."""
    argv = [doppel, "render", str(edit), "--preset", preset, "--out", str(out_dir)]
    if model:
        argv += ["--model", str(model)]
    if media_root:
        argv += ["--media-root", str(media_root)]
    return argv + list(extra) + ["--json", "--progress"]


def media_timecode(doppel: str, path: str, timeout: float = 60.0) -> str | None:
    """The start timecode of a media file from `doppel probe --json` (None when it has none or the
    probe fails: the export then addresses the media from frame 0)."""
    try:
        proc = subprocess.run([doppel, "probe", "--json", path], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        value = json.loads(proc.stdout).get("timecode") if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def parse_progress_line(line: str) -> tuple[str, Any] | None:
    """('progress', 42.5) / ('status', 'text') for OpenJD lines, None for anything else."""
    line = line.strip()
    if line.startswith("openjd_progress:"):
        try:
            return "progress", float(line.split(":", 1)[1])
        except ValueError:
            return None
    if line.startswith("openjd_status:"):
        return "status", line.split(":", 1)[1].strip()
    return None


def parse_summary(text: str) -> dict[str, Any] | None:
    """The JSON summary at the end of stdout (from the last line that starts a JSON object)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith("{"):
            try:
                value = json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
            return value if isinstance(value, dict) else None
    return None


def return_edit_path(out_dir: str | os.PathLike[str], edit: str | os.PathLike[str],
                     summary: Mapping[str, Any] | None = None) -> Path:
    """Where `doppel render` wrote the return `.otio`: the summary's path when it names one, else
    OUT_DIR/<edit stem>.doppel.otio, else the only `*.doppel.otio` in OUT_DIR."""
    out = Path(out_dir)
    for key in ("return_otio", "return_edit", "return_edit_otio", "otio"):
        value = (summary or {}).get(key)
        if isinstance(value, str) and value.endswith(".otio"):
            p = Path(value)
            return p if p.is_absolute() else out / p
    candidate = out / f"{Path(edit).stem}.doppel.otio"
    if candidate.exists():
        return candidate
    found = sorted(out.glob("*.doppel.otio"))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(f"no return edit in {str(out)!r}: expected {candidate.name!r}; "
                            f"found {[p.name for p in found]}")


@dataclass
class JobState:
    """A snapshot of a running or finished job. percent in 0..100; returncode None while running."""

    percent: float = 0.0
    status: str = "starting"
    returncode: int | None = None
    stdout: str = ""
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.returncode is not None

    def summary(self) -> dict[str, Any] | None:
        return parse_summary(self.stdout)

    def error_line(self) -> str:
        """The last non-empty stderr line (doppel prints one line per error)."""
        for line in reversed(self.stderr_tail):
            if line.strip():
                return line.strip()
        return f"doppel exited with status {self.returncode}"


class RenderJob:
    """One background `doppel` process. `start()` launches it; `poll()` never blocks."""

    def __init__(self, argv: Sequence[str], cwd: str | None = None) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._state = JobState()
        self._stdout: list[str] = []
        self._stderr: deque[str] = deque(maxlen=50)
        self._threads: list[threading.Thread] = []

    def start(self) -> RenderJob:
        self._proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parsed = parse_progress_line(line)
            with self._lock:
                if parsed is None:
                    self._stdout.append(line)
                elif parsed[0] == "progress":
                    self._state.percent = max(0.0, min(100.0, parsed[1]))
                else:
                    self._state.status = parsed[1]

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            with self._lock:
                self._stderr.append(line.rstrip("\n"))

    def poll(self) -> JobState:
        """A copy of the current state; once the process ended and its pipes drained, returncode is set."""
        if self._proc is None:
            raise RuntimeError("RenderJob.poll() before start()")
        code = self._proc.poll()
        if code is not None:
            for t in self._threads:
                t.join(timeout=5)
        with self._lock:
            state = JobState(percent=self._state.percent, status=self._state.status,
                             returncode=code, stdout="".join(self._stdout), stderr_tail=list(self._stderr))
        if code == 0:
            state.percent = 100.0
        return state

    def wait(self, timeout: float | None = None) -> JobState:
        if self._proc is None:
            raise RuntimeError("RenderJob.wait() before start()")
        self._proc.wait(timeout)
        return self.poll()

    def cancel(self) -> None:
        """Terminate the process (doppel keeps no half-written file under a final name)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
