"""Run every benchmark (`bench/bench_*.py`) and assemble bench/RESULTS.md.

Each bench script measures one topic and writes its own markdown section to
`bench/results/<topic>.md`. This script runs them one after another (or only
`--only TOPIC,...`), then writes RESULTS.md: a header (date, machine: cores, CPU
model, GPU or none, load average), a summary table (figure, goal from its issue,
met or not, command), then every section as its script wrote it.

  .venv/bin/python bench/run.py                      # full runs (slow: tens of minutes on 2 cores)
  .venv/bin/python bench/run.py --quick              # smaller inputs per script (see QUICK_ARGS)
  .venv/bin/python bench/run.py --only swap,media    # some topics, then assemble all sections
  .venv/bin/python bench/run.py --collect-only       # assemble from bench/results/*.md, run nothing

A script that fails is reported (exit status and the tail of its output) and the others
still run; its old section, if any, is kept and marked as not refreshed. Exit status 1
when any script failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))
from renderer.atomic import write_text_atomic  # noqa: E402  (the checkout's package, not an installed one)

LOGS = BENCH / "out" / "logs"

# Smaller inputs for --quick, per the scripts' own options (a topic missing here runs as is).
QUICK_ARGS: dict[str, list[str]] = {
    "composite": ["--repeats", "10"],
    "faces": ["--frames", "20"],
    "matte": ["--frames", "24", "--repeats", "1"],
    "media": ["--frames", "48"],
    "provenance": ["--frames", "60"],
    "quality": ["--frames", "24", "--every", "4"],
    "upscale": ["--frames", "16", "--every", "4", "--minutes", "2"],
    "swap": ["--frames", "24", "--long", "240"],
    "train": ["--steps", "4", "--warmup", "1"],
    "occlusion": ["--models", "demo"],
}


@dataclass(frozen=True)
class Figure:
    """One row of the summary table."""

    topic: str
    figure: str
    value: str
    goal: str
    met: str  # "met" | "NOT met" | "no goal" | "not measured"
    command: str = ""  # the command that measured it, when not the topic's usual one


Extractor = Callable[[str], list[Figure]]


def _search(pattern: str, text: str) -> re.Match[str] | None:
    return re.search(pattern, text, flags=re.MULTILINE)


def _faces(text: str) -> list[Figure]:
    m = _search(r"Goal with tracking: <= ([\d.]+) ms (?:CPU )?per 1080p frame: (NOT met|met) \(([\d.]+) ms\)", text)
    if not m:
        rows = [Figure("faces", "HOG + tracking, CPU ms per 1080p frame", "?", "<= 15 ms", "not measured")]
    else:
        rows = [Figure("faces", "HOG + tracking, CPU ms per 1080p frame", f"{m.group(3)} ms", f"<= {m.group(1)} ms",
                       m.group(2))]
    # bench_small_swap.py's section: the ~55 px face at 720p, against dlib HOG upsample 2 / the sampled frames
    for label, pattern in (("720p ~55 px face: HOG-up2 frames swapped by `doppel swap`",
                            r"swapped by `doppel swap` \| \d+ \(([\d.]+) %; goal >= ([\d.]+) %\)"),
                           ("720p ~55 px face: `extract --every 10` frames that kept a face",
                            r"kept a face \| \d+ of \d+ \(([\d.]+) %; goal >= ([\d.]+) %\)")):
        s = _search(pattern, text)
        if s:
            rows.append(Figure("faces", label, f"{s.group(1)} %", f">= {s.group(2)} %",
                               "met" if float(s.group(1)) >= float(s.group(2)) else "NOT met",
                               ".venv/bin/python bench/bench_small_swap.py"))
    return rows



def _sample_edits(text: str) -> list[Figure]:
    m = _search(r"\*\*(\d+) of (\d+) edits walked meet", text)
    if not m:
        return [Figure("sample_edits", "adapters' sample edits meeting issue 15's goal", "?", "all", "not measured")]
    return [Figure("sample_edits", "adapters' sample edits meeting issue 15's goal", f"{m.group(1)} of {m.group(2)}",
                   "all", "met" if m.group(1) == m.group(2) else "NOT met")]

def _media(text: str) -> list[Figure]:
    goal = _search(r"goal <= ([\d.]+)", text)
    limit = float(goal.group(1)) if goal else 1.0
    rows = []
    # | codec | doppel wall(s) | ffmpeg wall(s) | ratio | ...; the wall cells may list several runs ("a / b").
    for m in re.finditer(r"^\| (h264|prores_hq|[a-z0-9_]+) \| [\d. /]+ \| [\d. /]+ \| ([\d.]+) \|", text, re.MULTILINE):
        ratio = float(m.group(2))  # judged as printed (bench_media prints three places)
        rows.append(Figure("media", f"`doppel trim` / `ffmpeg` wall time, {m.group(1)}", m.group(2),
                           f"<= {limit:g}", "met" if ratio <= limit else "NOT met"))
    return rows or [Figure("media", "`doppel trim` / `ffmpeg` wall time", "?", f"<= {limit:g}", "not measured")]


def _swap(text: str) -> list[Figure]:
    rows = []
    for m in re.finditer(r"Goal \(([^)]*)\): ratio <= ([\d.]+) — (NOT met|met) \(([\d.]+)\)", text):
        rows.append(Figure("swap", f"`doppel swap` / `ffmpeg` re-encode wall time, {m.group(1)}", m.group(4),
                           f"<= {m.group(2)}", m.group(3)))
    if not rows:
        m = _search(r"Goal: ratio <= ([\d.]+) — (NOT met|met) \(([\d.]+)\)", text)
        rows.append(Figure("swap", "`doppel swap` / `ffmpeg` re-encode wall time, 1080p", m.group(3) if m else "?",
                           f"<= {m.group(1)}" if m else "<= 1.5", m.group(2) if m else "not measured"))
    m = _search(r"Goal: <= ([\d.]+)x — (NOT met|met) \(([\d.]+)\)", text)
    rows.append(Figure("swap", "smart render of 24 frames in a long clip / those frames alone",
                       f"{m.group(3)}x" if m else "?", f"<= {m.group(1)}x" if m else "<= 1.5x",
                       m.group(2) if m else "not measured"))
    return rows


def _train(text: str) -> list[Figure]:
    m = _search(r"\*\*([\d.]+)x\*\* \(goal >= ([\d.]+)x\)", text)
    rows = [Figure("train", "training faces/s, one encoder pass / reference", f"{m.group(1)}x" if m else "?",
                   f">= {m.group(2)}x" if m else ">= 1.3x",
                   ("met" if float(m.group(1)) >= float(m.group(2)) else "NOT met") if m else "not measured")]
    ssim = _search(r"^\| ratio \| \*\*([\d.]+)x\*\* \|", text.split("## The SSIM loss", 1)[1]) if "## The SSIM loss" in text else None
    if ssim:
        cmd = _search(r"Command: `([^`]*bench_train\.py ssim[^`]*)`", text)
        rows.append(Figure("train", "SSIM loss fwd+bwd, depthwise convolutions / matrix products", f"{ssim.group(1)}x",
                           "-", "no goal", cmd.group(1) if cmd else ""))
    quality = text.split("Time to quality", 1)[1] if "Time to quality" in text else ""
    commands = [m.group(1).strip() for arch in ("lite", "original")
                if (m := _search(r"^\s+(\S*python\S* bench/bench_train\.py quality --arch " + arch + r" --cap\S* .*)$", quality))]
    figure = Figure("train", "time to held-out SSIM 0.80, original / lite", "?", ">= 5x", "not measured",
                    "` then `".join(commands))
    both = _search(r"\*\*lite reached SSIM [\d.]+ ([\d.]+)x sooner than original\*\* \(([\d.]+) vs ([\d.]+) CPU minutes; "
                   r"goal >= ([\d.]+)x: (met|not met)\)", quality)
    bound = _search(r"lite reached it in ([\d.]+) min, so \*\*lite is more than ([\d.]+)x sooner\*\* "
                    r"\(goal >= ([\d.]+)x: (met|not shown)\)", quality)
    if both:
        figure = dataclasses.replace(figure, value=f"{both.group(1)}x ({both.group(2)} vs {both.group(3)} min)",
                                     goal=f">= {both.group(4)}x", met=both.group(5).replace("not met", "NOT met"))
    elif bound:
        figure = dataclasses.replace(figure, value=f"> {bound.group(2)}x (lite {bound.group(1)} min; original not reached)",
                                     goal=f">= {bound.group(3)}x", met="met" if bound.group(4) == "met" else "NOT met")
    elif quality:
        figure = dataclasses.replace(figure, value="neither reached it", met="NOT met")
    return [*rows, figure]


def _render(text: str) -> list[Figure]:
    m = _search(r"^\| doppel render, plan excluded[^|]*\| ([\d.]+) \| ([\d.]+) \|", text)
    r = _search(r"^\| re-run, all clips up to date \| ([\d.]+) \|", text)
    return [Figure("render", "`doppel render` / `render_range` alone", f"{m.group(2)}x" if m else "?", "-", "no goal"),
            Figure("render", "re-run with every clip up to date", f"{r.group(1)} s" if r else "?", "-", "no goal")]


def _farm(text: str) -> list[Figure]:
    m = _search(r"^\| 2 \| ([\d.]+) \| ([\d.]+)", text)
    return [Figure("farm", "2 workers / 1 worker wall time", m.group(2) if m else "?", "-", "no goal")]


def _quality(text: str) -> list[Figure]:
    """bench_quality.py's goal lines marked [summary]: `- Goal (clip) label goal: met|NOT met (value...) [summary]`."""
    rows = []
    for m in re.finditer(r"^- Goal \(([^)]+)\) (.+?) ((?:>=|<=) [\d.]+(?: %| dB)?|[\d.]+-[\d.]+): (NOT met|met) "
                         r"\(([^;)]+)[^\n]*\[summary\]$", text, re.MULTILINE):
        rows.append(Figure("quality", f"{m.group(2)}, {m.group(1)}", m.group(5), m.group(3), m.group(4)))
    return rows or [Figure("quality", "swap quality on real footage", "?", "see issue 17", "not measured")]


def _matte(text: str) -> list[Figure]:
    m = _search(r"^\| matte \| [^|]* \| [^|]* \| [^|]* \| \*\*([\d.]+)\*\* \| ([\d.]+) \|", text)
    return [Figure("matte", "`doppel swap --matte` / plain swap, CPU time (wall)",
                   f"{m.group(2)}x ({m.group(1)}x)" if m else "?", "-", "no goal")]


def _deep(text: str) -> list[Figure]:
    m = _search(r"^\| 10-bit source \(\w+\), deep path \| [\d.]+ \| ([\d.]+) \|", text)
    return [Figure("deep", "deep paste per face (10-bit 4:2:2, 1080p) / the 8-bit paste on the same frame",
                   f"{m.group(1)}x" if m else "?", "-", "no goal" if m else "not measured")]


def _generic(topic: str) -> Extractor:
    """Rows for a topic without its own extractor: every line that states a goal and whether it was met."""

    def extract(text: str) -> list[Figure]:
        rows = []
        for line in text.splitlines():
            m = re.search(r"[Gg]oal[^:]*:?\s*(.*?)\W+(NOT met|met)\b\s*\(?([^)]*)\)?", line)
            if m:
                rows.append(Figure(topic, line.split("Goal")[0].strip(" |-:") or "goal line", m.group(3) or "?",
                                   m.group(1).strip(" —-"), m.group(2)))
        return rows or [Figure(topic, "(see its section)", "-", "-", "no goal")]

    return extract


def _occlusion(text: str) -> list[Figure]:
    """The chosen default mode's occluder IoU on the models trained here (bench_occlusion.py's table)."""
    rows = []
    for m in re.finditer(r"^\| (demo|plain|occ|seg) \| (\w+) \| \*\*([\d.]+)\*\* \|", text, re.MULTILINE):
        model, mode, iou = m.group(1), m.group(2), float(m.group(3))
        if mode in ("reconstruction", "learned"):
            rows.append(Figure("occlusion", f"occluder IoU, occlusion={mode}, model {model}", f"{iou:.3f}", ">= 0.9",
                               "met" if iou >= 0.9 else "NOT met"))
    return rows or [Figure("occlusion", "occluder IoU", "?", ">= 0.9", "not measured")]


def _upscale(text: str) -> list[Figure]:
    """bench_upscale.py's goal lines: `- Goal (clip) sharpness ratio >= 0.8 with the upscaler: met|NOT met (v; b without it, ...)`."""
    rows = [Figure("upscale", f"sharpness ratio with B's face upscaler, {m.group(1)}",
                   f"{m.group(3)} ({m.group(4)} without)", ">= 0.8", m.group(2))
            for m in re.finditer(r"^- Goal \((\S+)\) sharpness ratio >= 0\.8 with the upscaler: (NOT met|met) "
                                 r"\(([\d.]+); ([\d.]+) without", text, re.MULTILINE)]
    return rows or [Figure("upscale", "sharpness ratio with B's face upscaler", "?", ">= 0.8", "not measured")]


EXTRACTORS: dict[str, Extractor] = {
    "upscale": _upscale,
    "occlusion": _occlusion,
    "occlusion_segmenter": _occlusion,  # the same table: the shipped model, and a copy with an occluder segmenter
    "faces": _faces, "sample_edits": _sample_edits, "media": _media, "swap": _swap, "train": _train, "render": _render, "farm": _farm,
    "quality": _quality, "matte": _matte,
    "deep": _deep,
}


# --------------------------------------------------------------------------- running


# Scripts that write a section of another topic's results file (between their own markers), not a file of their own.
SECTION_OF = {"small_faces": "faces", "small_swap": "faces"}
# Results files another topic's script writes when asked (`--out`): file stem -> the script's topic.
WRITTEN_BY = {"occlusion_segmenter": "occlusion"}


def topics() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in BENCH.glob("bench_*.py"))


def run_one(topic: str, quick: bool, timeout: float) -> tuple[int, float, str]:
    """Run bench_<topic>.py from the repository root; (exit status, seconds, log path). Output goes to a log."""
    script = BENCH / f"bench_{topic}.py"
    cmd = [sys.executable, str(script.relative_to(ROOT)), *(QUICK_ARGS.get(topic, []) if quick else [])]
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{topic}.log"
    started = time.monotonic()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            fh.write(f"\n[bench/run.py: killed after {timeout:.0f} s]\n")
            rc = 124
    return rc, time.monotonic() - started, str(log)


# --------------------------------------------------------------------------- assembling


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "none"
    if shutil.which("nvidia-smi"):
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True)
        gpu = ", ".join(proc.stdout.split("\n")).strip(", ") if proc.returncode == 0 and proc.stdout.strip() else "none"
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {"cores": str(os.cpu_count()), "cpu": cpu, "gpu": gpu, "load": load,
            "python": platform.python_version(), "os": platform.platform()}


def _command(topic: str, text: str) -> str:
    m = re.search(r"`([^`]*bench_" + re.escape(topic) + r"\.py[^`]*)`", text) or re.search(
        r"^\s+(\S*python\S* bench/bench_" + re.escape(topic) + r"\.py.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else f".venv/bin/python bench/bench_{topic}.py"


def assemble(out: Path, ran: dict[str, tuple[int, float, str]] | None = None) -> tuple[Path, list[Figure]]:
    """Write `out` from bench/results/*.md (every script's topic, plus any other section file)."""
    names = sorted((set(topics()) | {p.stem for p in RESULTS.glob("*.md")}) - set(SECTION_OF))
    figures: list[Figure] = []
    sections: list[str] = []
    commands: dict[str, str] = {}
    for topic in names:
        path = RESULTS / f"{topic}.md"
        if not path.is_file():
            figures.append(Figure(topic, "(no results yet)", "-", "-", "not measured"))
            commands[topic] = f".venv/bin/python bench/bench_{topic}.py"
            sections.append(f"## {topic}\n\nNot measured yet: run `.venv/bin/python bench/bench_{topic}.py`.\n")
            continue
        text = path.read_text(encoding="utf-8")
        script = WRITTEN_BY.get(topic, topic)
        commands[topic] = _command(script, text)
        figures.extend(EXTRACTORS.get(topic, _generic(topic))(text))
        when = dt.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        note = f"_Section written {when} by `bench/bench_{script}.py`"
        if ran is not None and topic in ran:
            rc, secs, log = ran[topic]
            note += (f"; refreshed by this run ({secs:.0f} s)" if rc == 0 else
                     f"; this run FAILED (exit {rc}, log `{os.path.relpath(log, ROOT)}`), so this section is older")
        sections.append(f"{text.rstrip()}\n\n{note}._\n")
    m = machine()
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "# Doppel benchmark results",
        "",
        f"Assembled {now} by `bench/run.py` (`make bench`; `--collect-only` assembles without re-running).",
        f"Machine: {m['cores']} cores (`nproc`), {m['cpu']}; GPU: {m['gpu']}; load average {m['load']} "
        f"(1/5/15 min) at assembly; Python {m['python']}; {m['os']}.",
        "Each section below says the machine state it was measured in; ratios compare runs made in the same "
        "script run, so they hold better than absolute times on a shared machine.",
        "",
        "## Summary",
        "",
        "| topic | figure | measured | goal | met | command |",
        "|---|---|---:|---|---|---|",
    ]
    for f in figures:
        met = f"**{f.met}**" if f.met == "NOT met" else f.met
        lines.append(f"| {f.topic} | {f.figure} | {f.value} | {f.goal} | {met} | `{f.command or commands.get(f.topic, '')}` |")
    lines.append("")
    body = "\n".join(lines) + "\n" + "\n".join(sections)
    write_text_atomic(out, body)
    if out.resolve() == (BENCH / "RESULTS.md").resolve():
        update_readme(ROOT / "README.md", lines[lines.index("## Summary") + 2:], lines[2:4])
    return out, figures


README_BEGIN = "<!-- bench-summary: written by bench/run.py from bench/RESULTS.md; do not edit by hand -->"
README_END = "<!-- /bench-summary -->"


def update_readme(readme: Path, table: list[str], header: list[str]) -> None:
    """Replace the README's benchmark table (between the markers under `## Benchmarks`) with `table`."""
    text = readme.read_text(encoding="utf-8")
    block = "\n".join([README_BEGIN, "", *header, "", *table, "", "Every section, with its machine state and "
                       "command: [bench/RESULTS.md](bench/RESULTS.md).", README_END]) + ("" if README_END in text else "\n")
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        text = head + block + rest.split(README_END, 1)[1]
    else:
        text = text.replace("## Benchmarks\n", f"## Benchmarks\n\n{block}\n", 1)
    write_text_atomic(readme, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="file to write (default bench/RESULTS.md)")
    ap.add_argument("--collect-only", action="store_true", help="run nothing; assemble from bench/results/*.md")
    ap.add_argument("--quick", action="store_true", help="smaller inputs per script (QUICK_ARGS)")
    ap.add_argument("--only", metavar="TOPICS", help="comma-separated topics to run, e.g. swap,media")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per script before it is killed (default 3600)")
    args = ap.parse_args(argv)
    available = topics()
    chosen = available
    if args.only:
        chosen = [t.strip() for t in args.only.split(",") if t.strip()]
        unknown = [t for t in chosen if t not in available]
        if unknown:
            print(f"bench/run.py: unknown topic(s) {', '.join(unknown)}; available: {', '.join(available)}",
                  file=sys.stderr)
            return 2
    ran: dict[str, tuple[int, float, str]] | None = None
    if not args.collect_only:
        from tqdm import tqdm

        ran = {}
        bar = tqdm(chosen, desc="bench", unit="script", file=sys.stderr)
        for topic in bar:
            bar.set_postfix_str(topic)
            ran[topic] = run_one(topic, args.quick, args.timeout)
            rc, secs, log = ran[topic]
            tqdm.write(f"bench {topic}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {secs:.0f} s, log {log}",
                       file=sys.stderr)
    out, figures = assemble(args.out, ran)
    unmet = sum(f.met == "NOT met" for f in figures)
    print(f"bench/run.py: wrote {out}: {len(figures)} figures, {unmet} goal(s) not met", file=sys.stderr)
    return 1 if ran and any(rc != 0 for rc, _, _ in ran.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
