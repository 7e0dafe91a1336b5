"""Runs INSIDE Blender (`blender -b --factory-startup --python blender_script.py -- SPEC.json`).

Installs the add-on from its zip the way a user does, builds a sequence from the spec's strips,
marks strips through the add-on's operator, exports the OTIO edit, then either imports a given
return edit or runs the add-on's render operator (real `doppel render`), renders frames of the
sequence to PNG and writes a JSON report of every strip for the test to check.
"""

import json
import sys

import bpy


def render_png(scene, frames, prefix):
    """Render the sequencer's output for frames [first, last] to `prefix` (#### = frame) PNGs."""
    scene.frame_start, scene.frame_end = frames
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = prefix
    bpy.ops.render.render(animation=True)


def main(spec):
    bpy.ops.preferences.addon_install(filepath=spec["addon_zip"], overwrite=True)
    bpy.ops.preferences.addon_enable(module="doppel_vse")
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = spec["fps"], 1.0
    scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    editor = scene.sequence_editor_create()
    for s in spec["strips"]:
        strip = editor.sequences.new_movie(name=s["name"], filepath=s["path"], channel=s["channel"],
                                           frame_start=s["frame_start"])
        strip.frame_final_start = s["final_start"]
        strip.frame_final_end = s["final_end"]
        strip.select = False
    if spec.get("png_before"):  # the sequence as it was, for comparing frame by frame
        render_png(scene, spec["render_frames"], spec["png_before"])
    for name, rng in spec["mark"].items():
        strip = editor.sequences[name]
        strip.select = True
    scene.doppel.overrides = spec.get("overrides", "")
    assert bpy.ops.doppel.mark() == {"FINISHED"}
    for name, rng in spec["mark"].items():
        if rng:
            st = editor.sequences[name].doppel
            st.use_range, st.range_start, st.range_end = True, rng[0], rng[1]
    assert bpy.ops.doppel.export_otio(filepath=spec["export"]) == {"FINISHED"}
    settings = scene.doppel
    if spec.get("return_edit"):
        assert bpy.ops.doppel.import_return(filepath=spec["return_edit"]) == {"FINISHED"}
    else:
        settings.preset = spec["preset"]
        settings.model = spec.get("model", "")
        settings.out_dir = spec["out_dir"]
        try:
            result = bpy.ops.doppel.render(wait=True)
        except RuntimeError as err:  # an operator reporting ERROR raises in background mode
            result = {"CANCELLED"}
            print("doppel operator:", err)
        print("doppel status:", settings.status)
        if spec.get("expect_failure"):
            assert result == {"CANCELLED"} and settings.status.startswith("failed: "), settings.status
            assert not settings.running
        else:
            assert result == {"FINISHED"}, settings.status
    report = {"status": settings.status, "strips": []}
    for st in editor.sequences_all:
        report["strips"].append({
            "name": st.name, "channel": st.channel, "final_start": st.frame_final_start,
            "final_end": st.frame_final_end, "frame_start": st.frame_start,
            "filepath": bpy.path.abspath(st.filepath), "is_return": st.doppel.is_return,
            "faceswap": st.doppel.faceswap, "doppel_source": st.get("doppel_source", "")})
    render_png(scene, spec["render_frames"], spec["png_prefix"])
    with open(spec["report"], "w") as fh:
        json.dump(report, fh, indent=2)


if __name__ == "__main__":
    # an exception here makes Blender exit non-zero (the test passes --python-exit-code 1)
    with open(sys.argv[sys.argv.index("--") + 1]) as fh:
        main(json.load(fh))
