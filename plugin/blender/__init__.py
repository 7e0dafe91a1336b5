"""Doppel face swap for Blender's Video Sequence Editor (an add-on; a thin client of `doppel`).

Install: `python -m plugin.blender.package doppel_vse.zip`, then in Blender
Edit > Preferences > Add-ons > Install... pick the zip (or copy this folder into
`~/.config/blender/<version>/scripts/addons/doppel_vse/`). The panel is in the sequencer's
sidebar (N), tab "Doppel".

Importing this package outside Blender is safe: `bpy` is only imported by `register()`, and the
conversion (`otio_json`) and process (`job`) modules use the standard library only.
"""

from __future__ import annotations

bl_info = {
    "name": "Doppel face swap (VSE)",
    "author": "Doppel",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Sequencer > Sidebar (N) > Doppel",
    "description": "Mark strips for face swap, render them with the doppel CLI in the background, "
                   "and import the synthetic (labelled) results on a new channel",
    "category": "Sequencer",
}


def register() -> None:
    from . import addon

    addon.register()


def unregister() -> None:
    from . import addon

    addon.unregister()
