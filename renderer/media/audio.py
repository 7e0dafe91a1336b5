"""Audio carried beside the video: a source's first audio stream over a frame range, decoded and
encoded sample-exact in step with the video (`AudioCarry`, used by `VideoWriter` and the smart
render's splice)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from renderer.errors import InputError
from renderer.media.decode import _check_range
from renderer.media.info import MediaInfo, probe

_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

# FFmpeg's default channel layout for each channel count (av_channel_layout_default).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0(side)", 6: "5.1(side)", 7: "6.1", 8: "7.1"}


def _to_audio_frame(samples: np.ndarray, fmt: str, layout: str) -> av.AudioFrame:
    """An AudioFrame from float32 (channels, n) in -1..1."""
    if fmt == "fltp":
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32), format="fltp", layout=layout)
    scaled = np.clip(np.round(samples.astype(np.float64) * 2147483648.0), -2147483648, 2147483647).astype(np.int32)
    return av.AudioFrame.from_ndarray(np.ascontiguousarray(scaled.T.reshape(1, -1)), format="s32", layout=layout)


class AudioCarry:
    """Decode a source's first audio stream over a video frame range and encode it, sample-exact.

    The range is [start of first_frame, end of last_frame) in the video's clock; samples are
    cut at round(t * rate). Encoded in step with the video (`pump_until`) so the muxer never
    buffers a whole file of video waiting for audio.
    """

    def __init__(self, out: Any, source: Path, first: int, last: int, suffix: str,
                 info: MediaInfo | None = None) -> None:
        info = info or probe(source)
        _check_range(info, first, last)
        if not info.audio:
            raise InputError(f"audio was asked from {source}, which has no audio stream")
        a = info.audio[0]
        self.rate = 48000 if suffix == ".mxf" else a.sample_rate
        if suffix == ".mp4" and self.rate not in _AAC_RATES:  # e.g. 11024 Hz in an old AVI: the next AAC rate up
            self.rate = min((r for r in _AAC_RATES if r >= self.rate), default=48000)
        self.channels = a.channels
        self.start_t = info.frame_time(first)
        self.end_t = info.frame_end_time(last)
        self.total = int(round((self.end_t - self.start_t) * self.rate))
        if suffix == ".mp4":
            codec, self.fmt = "aac", "fltp"
        else:
            codec, self.fmt = "pcm_s24le", "s32"
        self.stream = out.add_stream(codec, rate=self.rate)
        self.stream.codec_context.layout = _DEFAULT_LAYOUTS.get(self.channels, f"{self.channels} channels")
        self.stream.codec_context.format = self.fmt
        self.stream.codec_context.time_base = Fraction(1, self.rate)
        self.stream.time_base = Fraction(1, self.rate)
        if codec == "aac":
            self.stream.codec_context.bit_rate = 96000 * self.channels
        self.layout = self.stream.codec_context.layout.name
        self.out = out
        self.frame_size = 1024  # AAC needs exactly this per frame but the last; PCM takes any
        self.encoded = 0
        self.pending = np.zeros((self.channels, 0), np.float32)
        self._src = av.open(str(source), "r")
        self._astream = self._src.streams.audio[0]
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self._decoded = self._decode_samples()

    def _decode_samples(self) -> Iterator[np.ndarray]:
        """float32 (channels, n) chunks starting exactly at start_t, then silence forever."""
        src, stream = self._src, self._astream
        stb = Fraction(stream.time_base)
        # Seek half a second early: audio packets are small and decoders need pre-roll.
        with contextlib.suppress(av.error.FFmpegError):  # AVI cannot seek its audio: decode from the start
            src.seek(max(0, int(math.floor((self.start_t - Fraction(1, 2)) / stb))), stream=stream, backward=True)
        skip: int | None = None  # samples still to drop before start_t (negative: silence to add)

        def cut(data: np.ndarray) -> Iterator[np.ndarray]:
            nonlocal skip
            assert skip is not None
            if skip < 0:  # the source's audio starts after the range start: lead with silence
                yield np.zeros((self.channels, -skip), np.float32)
                skip = 0
            if skip >= data.shape[1]:
                skip -= data.shape[1]
                return
            out, skip = data[:, skip:], 0
            yield out.astype(np.float32, copy=False)

        try:
            for packet in src.demux(stream):
                for frame in packet.decode():
                    if skip is None:
                        t0 = Fraction(frame.pts) * stb if frame.pts is not None else Fraction(0)
                        skip = int(round((self.start_t - t0) * self.rate))
                    for rf in self._resampler.resample(frame):
                        yield from cut(rf.to_ndarray())
            if skip is not None:
                for rf in self._resampler.resample(None):
                    yield from cut(rf.to_ndarray())
        except av.error.FFmpegError:
            pass  # a damaged audio tail: the rest is silence; the video decides success
        while True:
            yield np.zeros((self.channels, 4096), np.float32)

    def pump_until(self, t: Fraction) -> None:
        """Encode audio up to output time `t` (seconds after the range start)."""
        want = min(self.total, int(round(t * self.rate)))
        self._encode_upto(want, final=False)

    def _encode_upto(self, want: int, final: bool) -> None:
        while self.encoded + self.pending.shape[1] < want:
            self.pending = np.concatenate([self.pending, next(self._decoded)], axis=1)
        while want - self.encoded >= self.frame_size or (final and self.encoded < want):
            n = min(self.frame_size, want - self.encoded)
            chunk, self.pending = self.pending[:, :n], self.pending[:, n:]
            frame = _to_audio_frame(chunk, self.fmt, self.layout)
            frame.sample_rate = self.rate
            frame.pts = self.encoded
            frame.time_base = Fraction(1, self.rate)
            for packet in self.stream.encode(frame):
                self.out.mux(packet)
            self.encoded += n

    def finish(self) -> None:
        self._encode_upto(self.total, final=True)
        for packet in self.stream.encode():
            self.out.mux(packet)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._src.close()
