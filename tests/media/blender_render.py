"""Run inside Debian's headless Blender (`blender -b --factory-startup --python THIS -- OUT.mp4`):
render 40 frames of a sequencer edit (a colour strip under a text strip) to H.264 in MP4,
with B-frames and a 12-frame GOP, through Blender's own FFmpeg writer."""

import sys

import bpy

out = sys.argv[sys.argv.index("--") + 1]
scene = bpy.context.scene
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 160, 96, 100
scene.render.fps, scene.render.fps_base = 25, 1.0
scene.frame_start, scene.frame_end = 1, 40
editor = scene.sequence_editor_create()
colour = editor.sequences.new_effect("background", "COLOR", channel=1, frame_start=1, frame_end=41)
colour.color = (0.2, 0.4, 0.8)
text = editor.sequences.new_effect("title", "TEXT", channel=2, frame_start=1, frame_end=41)
text.text = "Doppel"
text.font_size = 30
scene.render.image_settings.file_format = "FFMPEG"
scene.render.ffmpeg.format = "MPEG4"
scene.render.ffmpeg.codec = "H264"
scene.render.ffmpeg.constant_rate_factor = "MEDIUM"
scene.render.ffmpeg.use_max_b_frames = True
scene.render.ffmpeg.max_b_frames = 2
scene.render.ffmpeg.gopsize = 12
scene.render.filepath = out
bpy.ops.render.render(animation=True)
