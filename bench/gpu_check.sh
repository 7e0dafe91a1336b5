#!/usr/bin/env bash
# GPU readiness in one go: on a machine with CUDA, check Doppel's CUDA paths and write the
# figures to bench/results/gpu.md. Without CUDA it says so and exits 0, writing nothing.
#
#   bench/gpu_check.sh [--steps 20] [--frames 240]
#
# What it checks (each part says "skipped: why" in gpu.md when it cannot run, and the script
# exits 1 if a part that could run failed):
#   1. environment: torch / CUDA / GPU name and memory, bf16 support (training's autocast dtype),
#      PyAV's FFmpeg and which NVIDIA codecs its build holds (h264_cuvid / hevc_cuvid = NVDEC,
#      h264_nvenc / hevc_nvenc = NVENC; PyPI's PyAV wheels are built without them);
#   2. training: `doppel train --model hd --device cuda` for --steps iterations on the test
#      facesets (renderer.train uses autocast bf16, or fp16 with a GradScaler, on CUDA) against the
#      same steps on the CPU (2 iterations, scaled); faces/s, and the losses must be finite;
#   3. swap: `doppel swap --device cuda` of a --frames-frame 1080p clip with a ~650 px face (the
#      bench_swap close-up) with the shipped demo model and with the hd model just trained, against
#      `--device cpu` and an `ffmpeg` re-encode of the same clip; per-stage seconds from --json;
#   4. NVDEC / NVENC, where the build has them: decode the clip with h264_cuvid and encode its
#      frames with h264_nvenc through PyAV, against libavcodec's h264 decoder and libx264 medium.
#
# Inputs come from the checkout's git-ignored .cache (nothing is downloaded when they are there):
# the kphotoalbum demo video and the astronaut (.cache/kphotoalbum, .cache/skimage; the facesets
# are extracted from them into .cache/facesets) and the bench clip (.cache/bench/, made here from
# the video when missing). On a machine without internet, bring .cache/kphotoalbum and
# .cache/skimage along. The Python used is $PYTHON, else .venv/bin/python, else python3; it needs
# torch with CUDA, PyAV, OpenCV, dlib (dlib-bin) and the doppel package importable.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then PY=$(command -v python3 || true); fi
if [ -z "$PY" ]; then
  echo "gpu_check: no Python found (set PYTHON=/path/to/python)"; exit 0
fi

if ! reason=$("$PY" - <<'EOF'
import sys
try:
    import torch
except Exception as err:  # no torch at all: nothing to check here
    print(f"torch is not importable with {sys.executable} ({err})")
    sys.exit(1)
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} sees no CUDA device (torch.version.cuda={torch.version.cuda})")
    sys.exit(1)
EOF
); then
  echo "gpu_check: no CUDA here: $reason; nothing checked, bench/results/gpu.md left as it is"
  exit 0
fi

exec "$PY" - "$@" <<'EOF'
"""The checks themselves (see bench/gpu_check.sh)."""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

ap = argparse.ArgumentParser(prog="bench/gpu_check.sh")
ap.add_argument("--steps", type=int, default=20, help="hd training iterations on CUDA")
ap.add_argument("--frames", type=int, default=240, help="frames of the 1080p swap clip")
args = ap.parse_args()
PY = sys.executable
OUT = ROOT / "bench" / "out" / "gpu"
OUT.mkdir(parents=True, exist_ok=True)
lines: list[str] = []
failed: list[str] = []


def run(cmd: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a child; RuntimeError with its stderr tail when it fails."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return wall, done.stdout


def part(title: str, fn) -> None:
    """Run one check; a failure is written into the report and makes the script exit 1."""
    lines.extend(["", f"### {title}", ""])
    try:
        fn()
    except SkipPart as why:
        lines.append(f"Skipped: {why}")
    except Exception as err:  # reported, then the next part runs
        failed.append(title)
        lines.append(f"**FAILED**: {type(err).__name__}: {err}")
        lines.append("")
        lines.append("```")
        lines.extend(traceback.format_exc().splitlines()[-12:])
        lines.append("```")


class SkipPart(Exception):
    pass


# ---------------------------------------------------------------- 1. environment
def environment() -> None:
    import av

    props = torch.cuda.get_device_properties(0)
    codecs = sorted(av.codecs_available)
    nv = [c for c in ("h264_cuvid", "hevc_cuvid", "av1_cuvid", "h264_nvenc", "hevc_nvenc", "av1_nvenc") if c in codecs]
    lines.extend([
        "| item | value |", "|---|---|",
        f"| GPU | {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor} |",
        f"| torch / CUDA / cuDNN | {torch.__version__} / {torch.version.cuda} / {torch.backends.cudnn.version()} |",
        f"| bf16 supported (training autocast dtype) | {torch.cuda.is_bf16_supported()} "
        f"({'bfloat16' if torch.cuda.is_bf16_supported() else 'float16 + GradScaler'}) |",
        f"| PyAV / its FFmpeg | {av.__version__} / {av.library_versions.get('libavcodec')} (libavcodec) |",
        f"| NVIDIA codecs in this PyAV build | {', '.join(nv) or 'none (NVDEC/NVENC part skipped)'} |",
        f"| CPU | {platform.machine()}, {os.cpu_count()} cores |",
    ])


# ---------------------------------------------------------------- 2. training
def training() -> None:
    from tests.model_fixtures import RIGHTS, facesets

    try:
        a, b = facesets()
    except Exception as err:  # face_data.FaceDataUnavailable: no registry to fetch them from
        raise SkipPart(f"no facesets: the kphotoalbum video / astronaut are not in .cache ({err})") from None
    rows = []
    for device, steps in (("cuda", args.steps), ("cpu", 2)):
        out = OUT / f"hd-{device}"
        shutil.rmtree(out, ignore_errors=True)
        wall, stdout = run([PY, "-m", "renderer.cli", "train", "--a", str(a), "--b", str(b), "--out", str(out),
                            "--rights", RIGHTS, "--model", "hd", "--iterations", str(steps), "--save-every",
                            str(steps), "--device", device, "--json", "--no-progress"])
        s = json.loads(stdout)
        if not (s["loss_a"] == s["loss_a"] and s["loss_b"] == s["loss_b"]):  # NaN
            raise RuntimeError(f"hd training on {device} gave a non-finite loss: {s['loss_a']}, {s['loss_b']}")
        if s["device"] != device and not str(s["device"]).startswith(device):
            raise RuntimeError(f"asked --device {device}, the card says it trained on {s['device']}")
        rows.append((device, steps, wall, s))
    lines.extend(["`doppel train --model hd` (128 px, batch 16 per person) on the test facesets; training uses "
                  "autocast (bf16, or fp16 with a GradScaler) and channels-last on CUDA.", "",
                  "| device | iterations | wall incl. start (s) | train seconds | faces/s | loss A | loss B |",
                  "|---|---:|---:|---:|---:|---:|---:|"])
    for device, steps, wall, s in rows:
        lines.append(f"| {device} | {steps} | {wall:.1f} | {s['seconds']:.1f} | {s['faces_per_second']:.1f} | "
                     f"{s['loss_a']:.4f} | {s['loss_b']:.4f} |")
    cuda_fps, cpu_fps = rows[0][3]["faces_per_second"], rows[1][3]["faces_per_second"]
    lines.extend(["", f"CUDA / CPU training throughput: **{cuda_fps / max(cpu_fps, 1e-9):.1f}x** (faces/s)."])


# ---------------------------------------------------------------- 3. swap
def swap() -> None:
    from bench_swap import CACHE, face_video, ffmpeg_reencode

    try:
        src = face_video(CACHE / f"swap-650-{args.frames}.mp4", args.frames, (1920, 1080), 48, audio=True, face_px=650)
    except Exception as err:
        raise SkipPart(f"cannot make the 1080p clip: the kphotoalbum video is not in .cache ({err})") from None
    models = [("demo (lite, 64 px)", ROOT / "models" / "demo")]
    if (OUT / "hd-cuda" / "model.safetensors").is_file():
        models.append(("hd (128 px, the few steps above)", OUT / "hd-cuda"))
    rows = []
    if shutil.which("ffmpeg"):
        wall, _ = run(ffmpeg_reencode(src, OUT / "ffmpeg.mp4"))
        rows.append(("ffmpeg re-encode (baseline)", "-", wall, None))
    for name, model in models:
        for device in ("cuda", "cpu"):
            wall, stdout = run([PY, "-m", "renderer.cli", "swap", str(src), "--model", str(model), "--out",
                                str(OUT / f"swap-{device}.mp4"), "--codec", "h264", "--device", device, "--json",
                                "--no-progress", "--force"])
            s = json.loads(stdout)
            if s["swapped"] != args.frames:
                raise RuntimeError(f"{name} on {device}: swapped {s['swapped']} of {args.frames} frames")
            rows.append((f"doppel swap, {name}", device, wall, s))
    base = rows[0][2] if rows and rows[0][3] is None else None
    lines.extend([f"`doppel swap` of {args.frames} frames of 1920x1080 with one ~650 px face (bench_swap's close-up), "
                  "every frame swapped, H.264 out (libx264 medium crf 18).", "",
                  "| job | device | runtime | wall (s) | x ffmpeg | track | model | composite | encode (busy s) |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|"])
    for name, device, wall, s in rows:
        ratio = f"{wall / base:.2f}" if base else "-"
        secs = s["seconds"] if s else {}
        runtime = (s or {}).get("model_runtime") or "-"  # cuda: torch; cpu: openvino (preset `runtime`)
        lines.append(f"| {name} | {device} | {runtime} | {wall:.1f} | {ratio} | "
                     + " | ".join(f"{secs.get(k, 0):.1f}" if s else "-" for k in ("track", "model", "composite", "encode"))
                     + " |")


# ---------------------------------------------------------------- 4. NVDEC / NVENC
def nv_codecs() -> None:
    import av

    from bench_swap import CACHE

    have = set(av.codecs_available)
    if not ({"h264_cuvid", "h264_nvenc"} & have):
        raise SkipPart("this PyAV build holds neither h264_cuvid (NVDEC) nor h264_nvenc (NVENC); Doppel's "
                       "codecs are software (renderer.media.CODECS)")
    src = CACHE / f"swap-650-{args.frames}.mp4"
    if not src.exists():
        raise SkipPart(f"{src} was not made (see the swap part)")

    def decode(codec_name: str | None) -> tuple[float, list]:
        frames = []
        t0 = time.perf_counter()
        with av.open(str(src)) as c:
            stream = c.streams.video[0]
            ctx = av.CodecContext.create(codec_name, "r") if codec_name else stream.codec_context
            if codec_name:
                ctx.extradata = stream.codec_context.extradata
            for packet in c.demux(stream):  # the last, empty packet flushes the decoder
                for f in ctx.decode(packet):
                    frames.append(f.reformat(format="yuv420p"))
        return time.perf_counter() - t0, frames

    def encode(codec_name: str, frames: list, options: dict) -> float:
        out = OUT / f"enc-{codec_name}.mp4"
        t0 = time.perf_counter()
        with av.open(str(out), "w") as c:
            s = c.add_stream(codec_name, rate=24, options=options)
            s.width, s.height, s.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
            for i, f in enumerate(frames):
                f.pts = i
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        return time.perf_counter() - t0

    sw_dec, frames = decode(None)
    rows = [("decode", "h264 (software, frame threads)", sw_dec, len(frames))]
    if "h264_cuvid" in have:
        hw_dec, hw_frames = decode("h264_cuvid")
        rows.append(("decode", "h264_cuvid (NVDEC)", hw_dec, len(hw_frames)))
    rows.append(("encode", "libx264 medium crf 18", encode("libx264", frames, {"preset": "medium", "crf": "18"}),
                 len(frames)))
    if "h264_nvenc" in have:
        rows.append(("encode", "h264_nvenc p5 cq 18", encode("h264_nvenc", frames, {"preset": "p5", "cq": "18"}),
                     len(frames)))
    lines.extend(["Raw PyAV decode / encode of the swap clip (Doppel's own pipeline uses the software codecs).", "",
                  "| step | codec | seconds | frames | frames/s |", "|---|---|---:|---:|---:|"])
    lines.extend(f"| {step} | {name} | {sec:.2f} | {n} | {n / sec:.0f} |" for step, name, sec, n in rows)


cmd = "bench/gpu_check.sh" + "".join(f" {a}" for a in sys.argv[1:])
lines.extend(["## GPU: Doppel's CUDA paths", "", f"Command: `{cmd}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"])
part("1. Environment", environment)
part("2. Training (hd, mixed precision)", training)
part("3. Swap, 1080p close-up", swap)
part("4. NVDEC / NVENC through PyAV", nv_codecs)
if failed:
    lines.extend(["", f"Failed parts: {', '.join(failed)}."])
results = ROOT / "bench" / "results"
results.mkdir(parents=True, exist_ok=True)
tmp = Path(tempfile.mkstemp(dir=results, prefix=".gpu.md.")[1])
tmp.write_text("\n".join(lines) + "\n")
os.replace(tmp, results / "gpu.md")
print("\n".join(lines))
sys.exit(1 if failed else 0)
EOF
