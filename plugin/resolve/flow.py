"""The Resolve script's steps: export -> patch markers -> `doppel render` -> add the FACESWAP track.

Settings come from the environment Resolve was started with (Resolve scripts have no argv):
DOPPEL_PRESET (default "default"), DOPPEL_MODEL (optional), DOPPEL_OUT (default ~/Doppel),
DOPPEL_BIN (the doppel executable; else `doppel` on PATH). Progress prints to Resolve's console
(Workspace > Console). Untested against Resolve itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin.blender import job as jobs
from plugin.blender import otio_json
from plugin.resolve import core


@dataclass(frozen=True)
class FlowSettings:
    preset: str
    model: str
    out_root: str
    doppel: str


def settings_from_env(env: Mapping[str, str] | None = None) -> FlowSettings:
    env = os.environ if env is None else env
    return FlowSettings(preset=env.get("DOPPEL_PRESET", "default"), model=env.get("DOPPEL_MODEL", ""),
                        out_root=env.get("DOPPEL_OUT", os.path.expanduser("~/Doppel")),
                        doppel=env.get("DOPPEL_BIN", ""))


def main(resolve: Any, settings: FlowSettings | None = None) -> int:
    from plugin.resolve import resolve_api as api  # the only module that touches Resolve

    settings = settings or settings_from_env()
    project, timeline, pool = api.current(resolve)
    fps = api.timeline_fps(timeline)
    paths = core.job_paths(settings.out_root, *api.names(project, timeline))
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    api.export_otio(resolve, timeline, str(paths.edit))
    edit = otio_json.load_otio(paths.edit)
    marked = core.apply_markers(edit, api.item_markers(timeline), fps)
    if not marked:
        print("Doppel: no clip carries a FACESWAP marker (name or note starting with FACESWAP); nothing to do")
        return 2
    otio_json.write_otio(paths.edit, edit)
    argv = jobs.render_argv(jobs.find_doppel(settings.doppel), paths.edit, settings.preset, paths.out_dir,
                            model=settings.model)
    print("Doppel:", " ".join(argv))
    job = jobs.RenderJob(argv).start()
    last = ""
    while not (state := job.poll()).done:
        line = f"Doppel: {state.percent:5.1f}%  {state.status}"
        if line != last:
            print(line)
            last = line
        time.sleep(0.5)
    if state.returncode not in (0, 1):
        print(f"Doppel: render failed: {state.error_line()}")
        return int(state.returncode or 1)
    ret = jobs.return_edit_path(paths.out_dir, paths.edit, state.summary())
    infos = core.append_infos(ret, fps, api.timeline_start(timeline))
    track = api.add_faceswap_track(timeline, pool, infos)
    print(f"Doppel: placed {len(infos)} synthetic clip(s) on video track {track} (FACESWAP); return edit {ret}")
    return int(state.returncode)
