"""Bounded hand-offs between the threads of a media pipeline (decode -> work -> encode).

PyAV releases the GIL inside FFmpeg's decode and encode calls, and torch, dlib and OpenCV in
their kernels, so stages on their own threads overlap. Queues are small and bounded: memory
stays flat whatever the clip length. Every wait polls a stop event, so one failing stage stops
the others instead of leaving them blocked.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()  # prefetch queue: the producer finished


def since_process_start() -> float | None:
    """Seconds since this process started (Linux: from /proc, read once), None where unknown.
    For start-up timelines: interpreter start and imports count too."""
    origin = _process_origin()
    return None if origin is None else time.monotonic() - origin


@functools.cache
def _process_origin() -> float | None:
    """The monotonic clock's reading when this process started (10 ms resolution)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return time.monotonic() - max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def batch_scheduling() -> bool:
    """Put the calling thread, and the threads and processes it starts from now on, under Linux's
    SCHED_BATCH policy: the same CPU share as the default policy, but a waking thread does not
    preempt a running one, so a render's stages (the decoder's, the encoder's, the model process)
    switch cores less often and keep their caches (bench/results/swap.md, 1r: a 1080p swap
    0.988x the wall time, 0.991x the CPU, 10 pairs). Interactive programs beside it keep their
    wake-up latency. DOPPEL_SCHED=normal leaves the policy alone. Returns whether it was set
    (False off Linux, when opted out, or where the system refuses)."""
    if os.environ.get("DOPPEL_SCHED", "batch") == "normal" or not hasattr(os, "SCHED_BATCH"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:
        return False
    return True


def peak_rss_mib(pid: int | None = None) -> float | None:
    """Peak resident memory (MiB, VmHWM) of this process or of `pid` while it runs; None where unknown."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def put_until_stopped(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put `item` on `q`, waiting while it is full; False (not put) once `stop` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yield `items`, produced on a background thread at most `depth` ahead of the consumer.

    A decode generator on that thread overlaps with encoding on the caller's. An exception in
    the producer is raised here; when the consumer stops early (an error, Ctrl-C) and closes
    this generator (`contextlib.closing`), the producer stops and its generator is closed.
    """
    q: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not put_until_stopped(q, (None, item), stop):
                    return
        except BaseException as err:  # handed to the consumer, which raises it
            put_until_stopped(q, (err, None), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            put_until_stopped(q, _DONE, stop)

    thread = threading.Thread(target=produce, name="doppel-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = q.get()
            if got is _DONE:
                return
            err, item = got
            if err is not None:
                raise err
            yield item
    finally:
        stop.set()
        thread.join()
