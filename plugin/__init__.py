"""Host-editor integrations of Doppel, each a thin client of the `doppel` CLI.

- `plugin.blender`: Blender Video Sequence Editor add-on (OTIO exchange written by hand).
- `plugin.mlt`: MLT XML writer for Kdenlive / Shotcut / `melt` (`write_mlt`).
- `plugin.resolve`: DaVinci Resolve Workspace > Scripts script (untested against Resolve itself).
"""
