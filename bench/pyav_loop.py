"""The least a PyAV re-encode can do: decode a clip's video and hand every frame to libx264 (crf 18,
medium) with the settings `doppel swap --codec h264` uses (frame threads, picture types left to x264),
no audio. Run under `bench/thread_cpu.py` beside `ffmpeg -i SRC -c:v libx264 -crf 18 -an OUT`, it
says what PyAV's bundled x264 costs alone, so a render's x264 threads can be compared with it.

    .venv/bin/python bench/thread_cpu.py .venv/bin/python bench/pyav_loop.py SRC OUT
"""

from __future__ import annotations

import sys

import av


def main(src_path: str, out_path: str) -> int:
    with av.open(src_path) as src, av.open(out_path, "w") as dst:
        video = src.streams.video[0]
        video.thread_type = "AUTO"
        out = dst.add_stream("libx264", rate=video.average_rate, options={"crf": "18"})
        out.width, out.height, out.pix_fmt = video.width, video.height, "yuv420p"
        out.thread_type = "AUTO"
        for frame in src.decode(video):
            frame.pict_type = av.video.frame.PictureType.NONE  # x264 picks the frame types, as the CLI's
            for packet in out.encode(frame):
                dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
