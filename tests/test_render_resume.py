"""The render node interrupted and failing: a render stopped mid-clip or killed keeps no partial
file and resumes where it stopped, a failed clip exits 1 and keeps the others (with OpenJD progress
lines), over the same real edits and numbered media as tests/test_render.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import opentimelineio as otio
import pytest

from renderer.media import probe
from renderer.render import RENDER_JSON, plan_render, run_render
from renderer.timeline import read_edit
from tests.media_factory import make_numbered_clip
from tests.timeline_factory import MEDIA_FRAMES, standard_edit
from tests import test_render as render_tests
from tests.test_render import NTSC, PRESET, ROOT, check_outputs, cli, edit_file

# The render tests' module fixtures, shared: pytest finds them by name in this module.
work, model, preset, media, env = (render_tests.work, render_tests.model, render_tests.preset, render_tests.media,
                                   render_tests.env)


def test_interrupted_render_keeps_no_partial_file_and_resumes(work, media, model, preset, env):
    edit = edit_file(work, media, ".otio")
    out = work / "interrupt"
    plan = plan_render(edit, preset, out, model=model)

    def stop_in_second_clip(p):
        if p.job == 1 and p.frame >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_render(plan, on_progress=stop_in_second_clip)
    first, second, third = plan.jobs
    assert first.output.is_file() and first.sidecar.is_file()
    assert not second.output.exists() and not third.output.exists()
    assert not list(out.rglob(".*partial*"))
    report = run_render(plan)
    assert [r.status for r in report.results] == ["skipped", "ok", "ok"]
    check_outputs(out, edit, plan.jobs, plan.timeline)


def test_killed_process_resumes(work, media, model, preset, env):
    """SIGKILL mid-render: nothing half-written under a final name; the re-run finishes the job."""
    edit = edit_file(work, media, ".otio")
    out = work / "killed"
    argv = [sys.executable, "-m", "renderer.cli", "render", str(edit), "--preset", str(preset), "--out", str(out),
            "--model", str(model), "--progress", "--quiet"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("openjd_status: clip 2/3"):
            break
    seen = 0
    for line in proc.stdout:  # a few frames into the second clip
        seen += line.startswith("openjd_progress:")
        if seen == 3:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    jobs = plan_render(edit, preset, out, model=model).jobs
    assert jobs[0].output.is_file() and jobs[0].sidecar.is_file()
    for job in jobs:  # whatever the kill interrupted: a file under a final name is complete
        if job.output.exists():
            assert probe(job.output).frames == job.frames
    left = len(list((out / "media").glob(".*partial*")))
    done = subprocess.run(argv[:-2] + ["--json", "--quiet"], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["skipped"] >= 1 and summary["skipped"] + summary["rendered"] == 3 and summary["failed"] == 0
    assert not list(out.rglob(".*partial*")), left  # the killed writer's leftover was cleaned up
    check_outputs(out, edit, jobs, read_edit(edit))


def test_failed_clip_exits_1_keeps_the_others(work, media, model, preset, env, capsys):
    """A source that vanishes after planning (media went offline) fails its clip; the others render."""
    folder = work / "fail"
    own = {k: (folder / "media" / v[0].name, v[1]) for k, v in media.items()}
    for k, (path, _) in own.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(media[k][0].read_bytes())
    edit = edit_file(folder, own, ".otio")
    plan = plan_render(edit, preset, folder / "out", model=model)
    own["C"][0].unlink()  # shot_c's media
    report = run_render(plan)
    assert [r.status for r in report.results] == ["ok", "failed", "ok"] and report.exit_code == 1
    assert "C.mov" in report.results[1].error
    record = json.loads((folder / "out" / RENDER_JSON).read_text())
    assert record["status"] == "failed" and record["clips"][1]["status"] == "failed" and record["clips"][1]["error"]
    kept = [j for j in plan.jobs if j.clip.clip_name != "shot_c"]
    check_outputs(folder / "out", edit, kept, plan.timeline)


def test_cli_exit_1_and_openjd_progress(work, media, model, env, capsys):
    """Through the CLI: an odd-sized source the marker asks to code as ProRes 422 fails (4:2:2 needs
    an even width); the other clips render; OpenJD lines on stdout, the JSON summary last."""
    folder = work / "odd"
    folder.mkdir()
    for name, tc in (("A", "01:00:00:00"), ("B", "02:00:10:00"), ("C", None)):
        make_numbered_clip(folder / f"{name}.mov", MEDIA_FRAMES, 65 if name == "C" else 64, 48, fps=NTSC,
                           codec="h264_444", timecode=tc)
    media_odd = {n: (folder / f"{n}.mov", tc) for n, tc in (("A", "01:00:00:00"), ("B", "02:00:10:00"), ("C", None))}
    tl, _ = standard_edit(media_odd, NTSC)
    for clip in tl.find_clips():
        for m in clip.markers:
            if clip.name == "shot_c":
                m.name += " codec=prores_hq"
    otio.adapters.write_to_file(tl, str(folder / "cut.otio"))
    small = folder / "p.yaml"
    small.write_text(PRESET)
    code, stdout, err = cli([folder / "cut.otio", "--preset", small, "--out", folder / "out", "--model", model,
                             "--json", "--progress"], capsys)
    assert code == 1, err
    lines = stdout.splitlines()
    progress = [float(x.split(":")[1]) for x in lines if x.startswith("openjd_progress:")]
    assert progress == sorted(progress) and progress[-1] == 100.0 and len(progress) > 10
    assert any(x.startswith("openjd_status: clip 2/3 'shot_c'") for x in lines)
    summary = json.loads("\n".join(lines[next(i for i, x in enumerate(lines) if x.startswith("{")):]))
    assert summary["failed"] == 1 and summary["rendered"] == 2 and "shot_c" in summary["errors"]
    assert "FAILED" in err
