"""CPU seconds per thread of a command and of its child processes (Linux), to see where a render's
CPU goes: the x264 encoder's threads, the decoder's, Doppel's main thread, its model process.

Samples /proc/<pid>/task/*/stat (utime + stime) every 0.1 s until the command exits and prints
each thread's last reading, largest first, then the total. Threads started by C libraries inherit
the process name, so they are told apart by thread id (for libx264: the three ~equal busiest
threads are its frame threads, the next its lookahead).

    .venv/bin/python bench/thread_cpu.py CMD [ARG ...]
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def _threads(pid: int) -> dict[int, tuple[str, float]]:
    """thread id -> (name, CPU seconds so far) of every thread of `pid`; {} once it has gone."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1] == str(pid):
                    kids.append(int(entry))
            except OSError:
                continue
    return kids


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    seen: dict[tuple[str, int], tuple[str, float]] = {}
    t0 = time.perf_counter()
    while proc.poll() is None:
        for who, pid in [("main", proc.pid)] + [("child", k) for k in _children(proc.pid)]:
            for tid, reading in _threads(pid).items():
                seen[(who, tid)] = reading
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    rows = collections.Counter({f"{who:5s} {name}:{tid}": cpu for (who, tid), (name, cpu) in seen.items()})
    for label, cpu in rows.most_common():
        if cpu >= 0.05:
            print(f"{cpu:7.2f}  {label}")
    print(f"{sum(rows.values()):7.2f}  total CPU s; wall {wall:.2f} s; exit {proc.returncode}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
