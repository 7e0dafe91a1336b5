"""renderer.pipeline: the bounded thread hand-offs of the decode -> work -> encode pipeline."""

from __future__ import annotations

import pytest

from renderer.errors import MediaError
from renderer.pipeline import prefetch


def test_prefetch_keeps_order_raises_the_producers_error_and_stops_early() -> None:
    assert list(prefetch(iter(range(50)), 3)) == list(range(50))

    def broken():
        yield 1
        raise MediaError("decoding failed after frame 1")

    got = []
    with pytest.raises(MediaError, match="after frame 1"):
        for x in prefetch(broken(), 2):
            got.append(x)
    assert got == [1]
    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    for x in prefetch(endless(), 2):
        if x == 5:
            break
    assert closed == [True]  # the consumer stopped: the producer's generator was closed, its thread joined
