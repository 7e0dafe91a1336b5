"""The Blender side of the add-on: properties, operators, the sidebar panel. Imports `bpy`.

Everything that does not need Blender lives in `otio_json` (strips <-> OTIO JSON) and `job`
(the background `doppel render` process); this module only moves data between them and bpy.
No torch, no renderer import: the heavy work runs in the `doppel` process.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from pathlib import Path

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import job as jobs
from . import otio_json

ADDON_ID = __package__  # the add-on's module name in Blender (folder or zip name)
POLL_SECONDS = 0.25


# --- preferences and properties -----------------------------------------------------------------


class DoppelPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    doppel_path: StringProperty(  # type: ignore[valid-type]
        name="doppel executable", subtype="FILE_PATH", default="",
        description="Path of the doppel command; empty = $DOPPEL_BIN, then `doppel` on PATH")

    def draw(self, context):  # noqa: ARG002
        self.layout.prop(self, "doppel_path")


class DoppelStripSettings(bpy.types.PropertyGroup):
    faceswap: BoolProperty(name="Face swap", default=False,  # type: ignore[valid-type]
                           description="Render this strip through doppel (exported as a FACESWAP marker)")
    overrides: StringProperty(name="Overrides", default="",  # type: ignore[valid-type]
                              description="key=value settings for this strip, e.g. 'blend=0.8'")
    use_range: BoolProperty(name="Sub-range", default=False,  # type: ignore[valid-type]
                            description="Swap only frames [start, end) of the timeline inside this strip")
    range_start: IntProperty(name="Start", default=1)  # type: ignore[valid-type]
    range_end: IntProperty(name="End", default=2)  # type: ignore[valid-type]
    is_return: BoolProperty(name="Doppel result", default=False)  # type: ignore[valid-type]


class DoppelSceneSettings(bpy.types.PropertyGroup):
    preset: StringProperty(name="Preset", default="default",  # type: ignore[valid-type]
                           description="Preset name or YAML path given to `doppel render --preset`")
    model: StringProperty(name="Model", subtype="DIR_PATH", default="",  # type: ignore[valid-type]
                          description="Trained model directory (`--model`); empty = the preset's")
    out_dir: StringProperty(name="Output", subtype="DIR_PATH", default="//doppel",  # type: ignore[valid-type]
                            description="Folder for the exported edit, rendered media and return edit")
    overrides: StringProperty(name="Overrides", default="",  # type: ignore[valid-type]
                              description="key=value settings written on strips you mark")
    auto_import: BoolProperty(name="Import result", default=True)  # type: ignore[valid-type]
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=100.0,  # type: ignore[valid-type]
                            subtype="PERCENTAGE")
    status: StringProperty(name="Status", default="")  # type: ignore[valid-type]
    running: BoolProperty(default=False)  # type: ignore[valid-type]
    cancel_requested: BoolProperty(default=False)  # type: ignore[valid-type]
    last_return: StringProperty(name="Return edit", subtype="FILE_PATH", default="")  # type: ignore[valid-type]


# --- bpy <-> plain data -------------------------------------------------------------------------


def scene_fps(scene: bpy.types.Scene) -> Fraction:
    """Scene rate as a Fraction (fps_base 1.001 -> 24000/1001)."""
    return Fraction(scene.render.fps) / Fraction(scene.render.fps_base).limit_denominator(100000)


def strip_spec(strip: bpy.types.Sequence, origins: dict[str, int] | None = None) -> otio_json.StripSpec | None:
    """A movie or sound strip as plain data; other strip types (colour, text, effects) give None."""
    if strip.type == "MOVIE":
        path, kind = strip.filepath, "Video"
    elif strip.type == "SOUND" and strip.sound is not None:
        path, kind = strip.sound.filepath, "Audio"
    else:
        return None
    anim_start = int(getattr(strip, "animation_offset_start", 0))
    anim_end = int(getattr(strip, "animation_offset_end", 0))
    mark = None
    settings = strip.doppel
    if kind == "Video" and settings.faceswap:
        mark = otio_json.FaceswapMark(
            overrides=otio_json.parse_overrides(settings.overrides),
            sub_range=(settings.range_start, settings.range_end) if settings.use_range else None)
    filepath = bpy.path.abspath(path)
    return otio_json.StripSpec(
        name=strip.name, filepath=filepath, channel=strip.channel, kind=kind,
        media_origin=(origins or {}).get(filepath, 0),
        record_start=int(strip.frame_final_start), duration=int(strip.frame_final_duration),
        media_start=int(strip.frame_final_start - strip.frame_start) + anim_start,
        media_duration=int(strip.frame_duration) + anim_start + anim_end, faceswap=mark)


def media_origins(scene: bpy.types.Scene, doppel: str) -> dict[str, int]:
    """Start timecode (as scene frames) of every movie file, via `doppel probe --json`: Blender does
    not read timecode, while `doppel render` addresses timecoded media in timecode."""
    fps = scene_fps(scene)
    seqs = scene.sequence_editor.sequences if scene.sequence_editor else []
    origins = {}
    for path in {bpy.path.abspath(st.filepath) for st in seqs if st.type == "MOVIE"}:
        tc = jobs.media_timecode(doppel, path)
        if tc:
            try:
                origins[path] = otio_json.timecode_frames(tc, fps)
            except ValueError:
                pass
    return origins


def export_timeline(scene: bpy.types.Scene, path: str, doppel: str = "") -> Path:
    """Write the scene's top-level movie and sound strips (returned results excluded) as `.otio`.
    With `doppel` (the executable), source times of timecoded media are written in timecode."""
    seqs = scene.sequence_editor.sequences if scene.sequence_editor else []
    origins = media_origins(scene, doppel) if doppel else {}
    specs = [s for s in (strip_spec(st, origins) for st in seqs if not st.doppel.is_return and not st.mute) if s]
    if not any(s.faceswap for s in specs):
        raise ValueError("no strip is marked for face swap; select movie strips and press 'Mark'")
    return otio_json.write_otio(path, otio_json.timeline_from_strips(scene.name, specs, scene_fps(scene)))


def import_return(scene: bpy.types.Scene, return_path: str) -> list[bpy.types.Sequence]:
    """Add the return edit's FACESWAP clips as movie strips on a new channel above every used one."""
    placements = otio_json.read_return(return_path, scene_fps(scene))
    editor = scene.sequence_editor or scene.sequence_editor_create()
    used = [s.channel for s in editor.sequences_all]
    channel = (max(used) if used else 0) + 1
    scratch = channel + 1  # created untrimmed here first, so a long file never collides with a neighbour
    if scratch > 128:
        raise ValueError(f"no free channel above channel {channel - 1} (Blender has 128)")
    created = []
    for p in placements:
        if not os.path.isfile(p.filepath):
            raise FileNotFoundError(f"rendered clip {p.filepath!r} named in {return_path!r} does not exist")
        strip = editor.sequences.new_movie(name=f"{p.name}", filepath=p.filepath, channel=scratch,
                                           frame_start=p.record_start - p.media_start)
        strip.frame_final_start = p.record_start
        strip.frame_final_end = p.record_start + p.duration
        strip.channel = channel
        strip.doppel.is_return = True
        meta = p.metadata.get("doppel") if isinstance(p.metadata.get("doppel"), dict) else {}
        # `doppel render` names the original media file (`source_media`) and clip (`source_clip`)
        strip["doppel_source"] = str(meta.get("source_media") or meta.get("source") or "")[:1000]
        strip["doppel_source_clip"] = str(meta.get("source_clip") or "")[:200]
        created.append(strip)
    return created


def out_dir(scene: bpy.types.Scene) -> Path:
    return Path(bpy.path.abspath(scene.doppel.out_dir or "//doppel")).resolve()


# --- the background job -----------------------------------------------------------------------


def _set_status(text: str | None) -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        window.workspace.status_text_set(text)
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def poll_job(scene_name: str, job: jobs.RenderJob, edit: str, out: str) -> float | None:
    """One poll of the scene's job: update progress, import when done. Timer protocol: seconds
    until the next call, or None to stop. The job travels in the timer's closure, not in a global."""
    scene = bpy.data.scenes.get(scene_name)
    settings = getattr(scene, "doppel", None)
    if settings is None or settings.cancel_requested:  # scene deleted, add-on unregistered, or cancelled
        job.cancel()
        if settings is not None:
            settings.cancel_requested = False
            settings.status = "cancelling"
    state = job.poll()
    if settings is None:
        return None if state.done else POLL_SECONDS
    settings.progress = state.percent
    settings.status = state.status
    if not state.done:
        _set_status(f"Doppel: {state.percent:5.1f}%  {state.status}")
        return POLL_SECONDS
    settings.running = False
    _set_status(None)
    if state.returncode not in (0, 1):
        settings.status = f"failed: {state.error_line()}"
        print(f"doppel render failed ({state.returncode}): {state.error_line()}")
        return None
    try:
        ret = jobs.return_edit_path(out, edit, state.summary())
        settings.last_return = str(ret)
        if settings.auto_import:
            created = import_return(scene, str(ret))
            settings.status = (f"imported {len(created)} clip(s) on channel {created[0].channel}" if created
                               else "render finished; nothing to import")
        else:
            settings.status = f"done: {ret}"
        if state.returncode == 1:
            settings.status += f" (some clips failed: {state.error_line()})"
    except (OSError, ValueError) as err:
        settings.status = f"import failed: {err}"
        print(f"doppel: {settings.status}")
    return None


# --- operators ---------------------------------------------------------------------------------


class DOPPEL_OT_mark(bpy.types.Operator):
    """Mark the selected movie strips for face swap"""

    bl_idname = "doppel.mark"
    bl_label = "Mark for face swap"
    bl_options = {"REGISTER", "UNDO"}

    clear: BoolProperty(name="Clear", default=False)  # type: ignore[valid-type]

    def execute(self, context):
        settings = context.scene.doppel
        try:
            otio_json.parse_overrides(settings.overrides)
        except ValueError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        seqs = context.scene.sequence_editor.sequences_all if context.scene.sequence_editor else []
        chosen = [s for s in seqs if s.select and s.type == "MOVIE" and not s.doppel.is_return]
        if not chosen:
            self.report({"ERROR"}, "select one or more movie strips to mark")
            return {"CANCELLED"}
        for strip in chosen:
            strip.doppel.faceswap = not self.clear
            if not self.clear:
                strip.doppel.overrides = settings.overrides
        self.report({"INFO"}, f"{'unmarked' if self.clear else 'marked'} {len(chosen)} strip(s)")
        return {"FINISHED"}


class DOPPEL_OT_export(bpy.types.Operator):
    """Write the sequence as an OpenTimelineIO edit with FACESWAP markers"""

    bl_idname = "doppel.export_otio"
    bl_label = "Export OTIO"

    filepath: StringProperty(subtype="FILE_PATH", default="")  # type: ignore[valid-type]

    def execute(self, context):
        path = self.filepath or str(out_dir(context.scene) / f"{bpy.path.clean_name(context.scene.name)}.otio")
        prefs = context.preferences.addons[ADDON_ID].preferences if ADDON_ID in context.preferences.addons else None
        try:
            doppel = jobs.find_doppel(prefs.doppel_path if prefs else "")
        except jobs.DoppelNotFound:
            doppel = ""  # without doppel, media are addressed from frame 0
        try:
            export_timeline(context.scene, path, doppel)
        except (OSError, ValueError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"wrote {path}")
        return {"FINISHED"}


class DOPPEL_OT_render(bpy.types.Operator):
    """Export the edit and run `doppel render` in the background; the results land on a new channel"""

    bl_idname = "doppel.render"
    bl_label = "Render face swap"

    wait: BoolProperty(name="Wait", default=False,  # type: ignore[valid-type]
                       description="Block until done (scripts and headless use); the UI uses a timer")

    def execute(self, context):
        scene = context.scene
        if scene.doppel.running:
            self.report({"ERROR"}, "a doppel render of this scene is already running")
            return {"CANCELLED"}
        settings = scene.doppel
        prefs = context.preferences.addons[ADDON_ID].preferences if ADDON_ID in context.preferences.addons else None
        try:
            doppel = jobs.find_doppel(prefs.doppel_path if prefs else "")
            out = out_dir(scene)
            edit = export_timeline(scene, str(out / f"{bpy.path.clean_name(scene.name)}.otio"), doppel)
        except (jobs.DoppelNotFound, OSError, ValueError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        model = bpy.path.abspath(settings.model) if settings.model else ""
        argv = jobs.render_argv(doppel, edit, settings.preset, out, model=model)
        print("doppel:", " ".join(argv))
        try:
            job = jobs.RenderJob(argv).start()
        except OSError as err:
            self.report({"ERROR"}, f"cannot start {doppel!r}: {err}")
            return {"CANCELLED"}
        settings.running, settings.progress, settings.status = True, 0.0, "starting"
        if self.wait:
            import time

            while poll_job(scene.name, job, str(edit), str(out)) is not None:
                time.sleep(POLL_SECONDS)
            level = "ERROR" if settings.status.startswith(("failed", "import failed")) else "INFO"
            self.report({level}, settings.status)
            return {"FINISHED"} if level == "INFO" else {"CANCELLED"}
        bpy.app.timers.register(functools.partial(poll_job, scene.name, job, str(edit), str(out)),
                                first_interval=POLL_SECONDS)
        return {"FINISHED"}


class DOPPEL_OT_cancel(bpy.types.Operator):
    """Stop the running doppel render of this scene"""

    bl_idname = "doppel.cancel"
    bl_label = "Cancel render"

    def execute(self, context):
        if not context.scene.doppel.running:
            return {"CANCELLED"}
        context.scene.doppel.cancel_requested = True  # the polling timer stops the process
        return {"FINISHED"}


class DOPPEL_OT_import(bpy.types.Operator):
    """Import a return edit's FACESWAP track as strips on a new channel"""

    bl_idname = "doppel.import_return"
    bl_label = "Import return edit"

    filepath: StringProperty(subtype="FILE_PATH", default="")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.otio", options={"HIDDEN"})  # type: ignore[valid-type]

    def execute(self, context):
        path = bpy.path.abspath(self.filepath or context.scene.doppel.last_return)
        try:
            created = import_return(context.scene, path)
        except (OSError, ValueError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"imported {len(created)} clip(s)")
        return {"FINISHED"}

    def invoke(self, context, event):  # noqa: ARG002
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


class SEQUENCER_PT_doppel(bpy.types.Panel):
    bl_label = "Doppel face swap"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Doppel"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.doppel
        col = layout.column()
        col.prop(settings, "preset")
        col.prop(settings, "model")
        col.prop(settings, "out_dir")
        col.prop(settings, "overrides")
        row = layout.row(align=True)
        row.operator("doppel.mark", text="Mark", icon="CHECKMARK").clear = False
        row.operator("doppel.mark", text="Unmark", icon="X").clear = True
        strip = context.scene.sequence_editor.active_strip if context.scene.sequence_editor else None
        if strip is not None and strip.type == "MOVIE":
            box = layout.box()
            box.label(text=f"Strip: {strip.name}")
            box.prop(strip.doppel, "faceswap")
            if strip.doppel.faceswap:
                box.prop(strip.doppel, "overrides")
                box.prop(strip.doppel, "use_range")
                if strip.doppel.use_range:
                    r = box.row(align=True)
                    r.prop(strip.doppel, "range_start")
                    r.prop(strip.doppel, "range_end")
        layout.prop(settings, "auto_import")
        if settings.running:
            layout.prop(settings, "progress", slider=True)
            layout.operator("doppel.cancel", icon="CANCEL")
        else:
            layout.operator("doppel.render", icon="RENDER_ANIMATION")
        row = layout.row(align=True)
        row.operator("doppel.export_otio", icon="EXPORT")
        row.operator("doppel.import_return", icon="IMPORT")
        if settings.status:
            layout.label(text=settings.status)
        layout.label(text="Results are labelled synthetic media", icon="INFO")


CLASSES = (DoppelPreferences, DoppelStripSettings, DoppelSceneSettings, DOPPEL_OT_mark, DOPPEL_OT_export,
           DOPPEL_OT_render, DOPPEL_OT_cancel, DOPPEL_OT_import, SEQUENCER_PT_doppel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Sequence.doppel = PointerProperty(type=DoppelStripSettings)
    bpy.types.Scene.doppel = PointerProperty(type=DoppelSceneSettings)


def unregister() -> None:
    # running jobs see `scene.doppel` vanish on their next poll and stop their process
    del bpy.types.Scene.doppel
    del bpy.types.Sequence.doppel
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
