"""Convert: swap faces frame by frame and lay them back so that only the face changed.

Per frame:  track -> align (crop with `crop_from_frame`) -> model (A->B or B->A)
            [-> B's face upscaler, S -> S * scale, when the model has one: `renderer.upscale`]
            -> colour match + mask -> composite back with `frame_from_crop`.

`render_range` runs that over a frame range of one video as a pipeline: a decode thread,
the face/model/composite work on the calling thread (torch, dlib and OpenCV release the
GIL in their kernels), and an encode thread, joined by small bounded queues so memory
stays flat whatever the clip length. Frames whose faces are not swapped go to the encoder
as they were decoded, with no RGB round trip.

Chunk invariance (render farms): everything stateful (tracker, landmark smoothing,
temporal blend) restarts at every multiple of `SEGMENT_FRAMES` in absolute frame index,
and model batches always have the same shape, so the pixels of frame N depend only on
frames from the start of N's segment (or of its swap range) to N. A chunk that starts
mid-segment decodes that pre-roll first and discards it; its frames then come out
identical to the same frames of an unchunked render. The tracker gives a frame out up to
`detect_every` frames late (a face it missed there is held if found again in time), so a
chunk that ends mid-segment decodes that post-roll too (`postroll_end`) and discards it.
"""

from __future__ import annotations

from renderer.swap.faces import FaceSwapper
from renderer.swap.model import SwapModel, SwapModels
from renderer.swap.run import FACE_THREADS, postroll_end, preroll_start, render_range
from renderer.swap.settings import MODEL_BATCH, PASS_REASONS, PRECISIONS, QUEUE_FRAMES, RUNTIMES, SEGMENT_FRAMES, SwapSettings, SwapStats, swap_settings

__all__ = [
    "FACE_THREADS", "MODEL_BATCH", "PASS_REASONS", "PRECISIONS", "QUEUE_FRAMES", "RUNTIMES", "SEGMENT_FRAMES", "FaceSwapper", "SwapModel", "SwapModels",
    "SwapSettings", "SwapStats", "postroll_end", "preroll_start", "render_range", "swap_settings",
]
