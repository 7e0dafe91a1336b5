"""Debian's `melt` (MLT 7.12) as the tests drive it: headless, into a file, checked readable."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path


def melt_render(args: list[str], out: Path, timeout: float = 300) -> None:
    """`melt -quiet ARGS -consumer avformat:OUT ...` (`args` holds the producer, `-consumer` and its
    properties); RuntimeError with melt's stderr when it fails. stdin is closed: melt reads transport
    keys from a terminal on it.

    Once in a full `make test` here (stop 29) melt exited 0 leaving a file FFmpeg could not open;
    not reproduced alone, nor under two CPU burners in 12 runs. The same input is rendered once more
    then, with a warning; a second unreadable file is an error."""
    cmd = ["melt", "-quiet", *args]
    for attempt in (1, 2):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"melt failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
        if subprocess.run(["ffprobe", "-v", "error", str(out)], capture_output=True).returncode == 0:
            return
        out.unlink(missing_ok=True)
        if attempt == 1:
            warnings.warn(f"melt exited 0 with an unreadable {out.name} (stderr: {proc.stderr[-300:]!r}); rendering again")
    raise RuntimeError(f"melt exited 0 twice leaving an unreadable {out}: {' '.join(cmd)}")
