"""Make the README's Blender screenshots: the add-on's panel, and the timeline after the round trip.

    .venv/bin/python -m plugin.blender.screenshots [--out docs] [--model MODEL_DIR] [--work DIR]

Run from the repository root with the project's venv, on a machine with Debian's `blender` and
`xvfb-run`. In the venv it writes the demo media (the real talking-head face clips of the
test suite and a numbered clip without a face), then starts Blender's real UI under Xvfb with
this same file as the startup script. Inside Blender it installs the add-on zip, builds the
sequence, marks two strips (one with a sub-range) through the add-on's operator, opens the
sequencer with the Doppel sidebar tab, takes `blender_panel.png`, presses Render face swap
(the real `doppel render`, in the background, followed by the add-on's own timer), and once the
results are imported on the new channel takes `blender_result.png`. Back in the venv both
images are downscaled until each is at most 400 KB.

Not part of the test suite (it needs an X server); `tests/plugin/test_blender_roundtrip.py`
checks the same round trip headless, frame by frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MAX_BYTES = 400_000
SCREEN = "1600x900x24"


# --- inside Blender ------------------------------------------------------------------------------


def blender_main(spec: dict) -> None:  # pragma: no cover - runs in Blender's UI
    import bpy

    bpy.ops.preferences.addon_install(filepath=spec["addon_zip"], overwrite=True)
    bpy.ops.preferences.addon_enable(module="doppel_vse")
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = spec["fps"], 1.0
    scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
    scene.frame_start, scene.frame_end = spec["frames"]
    editor = scene.sequence_editor_create()
    for s in spec["strips"]:
        strip = editor.sequences.new_movie(name=s["name"], filepath=s["path"], channel=1, frame_start=s["frame_start"])
        strip.frame_final_start, strip.frame_final_end = s["final_start"], s["final_end"]
        strip.select = s["name"] in spec["mark"]
    settings = scene.doppel
    settings.preset, settings.model, settings.out_dir = spec["preset"], spec["model"], spec["out_dir"]
    bpy.ops.doppel.mark()
    for name, rng in spec["mark"].items():
        if rng:
            st = editor.sequences[name].doppel
            st.use_range, st.range_start, st.range_end = True, rng[0], rng[1]
    editor.active_strip = editor.sequences[spec["active"]]
    scene.frame_current = spec["show_frame"]

    def sequencer():
        window = bpy.context.window_manager.windows[0]
        area = max(window.screen.areas, key=lambda a: a.width * a.height)  # the 3D viewport of the default screen
        return window, area

    def setup():
        window, area = sequencer()
        area.type = "SEQUENCE_EDITOR"
        space = area.spaces.active
        space.view_type = "SEQUENCER_PREVIEW"
        space.show_region_ui = True
        return None

    # Blender 3.4 cannot pick a sidebar tab from Python: scroll the tabs with simulated Ctrl+wheel
    # events (Blender runs with --enable-event-simulate) until the add-on's panel is drawn.
    panel = bpy.types.SEQUENCER_PT_doppel
    draws = {"n": 0, "scrolls": 0}
    original_draw = panel.draw

    def counting_draw(self, context):
        draws["n"] += 1
        original_draw(self, context)

    panel.draw = counting_draw

    def fit_timeline():
        window, area = sequencer()
        with bpy.context.temp_override(window=window, area=area,
                                       region=next(r for r in area.regions if r.type == "WINDOW")):
            bpy.ops.sequencer.view_all()

    def show_tab():
        window, area = sequencer()
        if draws["n"]:
            fit_timeline()
            bpy.app.timers.register(step, first_interval=1.5)
            return None
        if draws["scrolls"] > 20:
            raise RuntimeError("the Doppel sidebar tab never showed up")
        ui = next(r for r in area.regions if r.type == "UI")
        x, y = ui.x + ui.width // 2, ui.y + ui.height // 2
        window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        window.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", ctrl=True, x=x, y=y)
        draws["scrolls"] += 1
        return 0.5

    phase = {"now": "panel"}  # panel -> wait (doppel running) -> result

    def step():
        window, area = sequencer()
        if phase["now"] == "panel":
            with bpy.context.temp_override(window=window, area=area):
                bpy.ops.screen.screenshot(filepath=spec["panel_png"])
            print("doppel screenshots: wrote", spec["panel_png"])
            bpy.ops.doppel.render()  # the timer path: Blender keeps drawing while doppel runs
            phase["now"] = "wait"
            return 1.0
        if phase["now"] == "wait":
            if settings.running:
                print(f"doppel screenshots: {settings.progress:.0f}% {settings.status}")
                return 1.0
            print("doppel screenshots: status:", settings.status)
            fit_timeline()
            phase["now"] = "result"
            return 2.0
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.screen.screenshot(filepath=spec["result_png"])
        print("doppel screenshots: wrote", spec["result_png"])
        with open(spec["status_json"], "w") as fh:
            json.dump({"status": settings.status,
                       "returned": [[s.name, s.channel, s.frame_final_start, s.frame_final_end]
                                    for s in editor.sequences_all if s.doppel.is_return]}, fh)
        bpy.ops.wm.quit_blender()
        return None

    bpy.app.timers.register(setup, first_interval=0.5)
    bpy.app.timers.register(show_tab, first_interval=1.5)


# --- in the project's venv -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse
    from fractions import Fraction

    from plugin.blender.package import build_zip
    from tests.media_factory import cached_clip
    from tests.model_fixtures import face_clip, trained_model

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m plugin.blender.screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(root / "docs"), help="folder for blender_panel.png, blender_result.png")
    parser.add_argument("--model", default="", help="model directory (default: the test suite's trained model)")
    parser.add_argument("--work", default=str(root / ".cache" / "blender_screenshots"),
                        help="folder for the demo media and the render")
    args = parser.parse_args(argv)
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    fps = 25
    fa = face_clip(work / "interview_a.mov", frames=20, fps=Fraction(fps), timecode="01:00:00:00")
    fb = face_clip(work / "interview_b.mp4", frames=24, fps=Fraction(fps))
    plain = cached_clip("blender-noface", frames=30, width=480, height=360, fps=Fraction(fps))
    preset = work / "screenshots.yaml"
    preset.write_text("description: screenshot demo preset\nhandles: 2\noutput:\n  codec: h264\n"
                      "  container: mp4\n  audio: none\n  name: \"{clip}_{start}-{end}.doppel\"\n")
    spec = {
        "addon_zip": str(build_zip(work / "doppel_vse.zip")), "fps": fps, "width": 480, "height": 360,
        "frames": [1, 40],
        "strips": [
            {"name": "interview_a", "path": str(fa), "frame_start": -1, "final_start": 1, "final_end": 17},
            {"name": "cutaway", "path": str(plain), "frame_start": 7, "final_start": 17, "final_end": 25},
            {"name": "interview_b", "path": str(fb), "frame_start": 21, "final_start": 25, "final_end": 41},
        ],
        "mark": {"interview_a": None, "interview_b": [29, 37]},
        "active": "interview_b", "show_frame": 32,
        "preset": str(preset), "model": args.model or str(trained_model()), "out_dir": str(work / "out"),
        "panel_png": str(out / "blender_panel.png"), "result_png": str(out / "blender_result.png"),
        "status_json": str(work / "status.json"),
    }
    for p in (spec["panel_png"], spec["result_png"], spec["status_json"]):
        Path(p).unlink(missing_ok=True)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "DOPPEL_BIN": str(root / ".venv" / "bin" / "doppel"),
           "BLENDER_USER_CONFIG": str(work / "bconfig"), "BLENDER_USER_SCRIPTS": str(work / "bscripts")}
    # opening a .blend (an empty one) keeps the splash screen away; it would swallow the events
    empty = work / "empty.blend"
    subprocess.run(["blender", "-b", "--factory-startup", "--python-expr",
                    f"import bpy; bpy.ops.wm.save_as_mainfile(filepath={str(empty)!r})"],
                   env=env, check=True, timeout=300, capture_output=True)
    subprocess.run(["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", "blender", "--factory-startup",
                    "--enable-event-simulate", str(empty), "--python", str(Path(__file__).resolve()),
                    "--", str(spec_path)], env=env, check=True, timeout=900)
    status = json.loads(Path(spec["status_json"]).read_text())
    print("blender:", status["status"], status["returned"])
    if not status["returned"]:
        raise SystemExit(f"the round trip imported nothing: {status['status']}")
    from renderer.contact_sheet import shrink_png

    for name in ("panel_png", "result_png"):
        png = Path(spec[name])
        w, h = shrink_png(png, png, MAX_BYTES)
        print(f"{png}: {w}x{h}, {png.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    try:
        import bpy  # noqa: F401
    except ImportError:
        sys.exit(main())
    else:
        with open(sys.argv[sys.argv.index("--") + 1]) as fh:
            blender_main(json.load(fh))
