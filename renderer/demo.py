"""The built-in demo: real sample faces -> an edit with marked clips -> a signed render.

    sources = fetch_sources(cache)                        # registry packages, cached
    clips   = make_sample_media(sources, out / "sample" / "media")
    edit    = build_sample_edit(clips, out / "sample" / "cut.otio")
    model   = ensure_model(model_dir, sources, clips, out, cache, ...)   # shipped, else a quick one
    env, trust, note = signing_env(out, os.environ)       # configured keys, else demo-local keys
    report  = render_edit(edit, "review", out, model=model.path, env=env)
    contact_sheet(report, out / "contact_sheet.png")            # renderer.contact_sheet

`run_demo(DemoConfig(...))` does all of it and returns a `DemoSummary`.

Sample media. On Debian/Ubuntu, person A is the man in kphotoalbum's demo `movie.avi`
(upscaled 3x to 480x360, as the shipped demo model saw him) and the B-roll is the faceless
`skagen.jpg`, both from the Debian package. Off Debian that package cannot be fetched, so
the marked clips become a slow pan over person B's own portrait (scikit-image's
`astronaut.png`, Eileen Collins, NASA, public domain) swapped the other way (`direction=b2a`
in the markers: B's face becomes A's), and the B-roll a pan over scikit-image's `rocket.jpg`;
the summary says so. No third person's face is ever used.

The edit (25 fps, record start 01:00:00:00, media timecodes from 01:00:00:00):
  presenter_take1  talking head, source 0-39, point marker `FACESWAP` (whole clip)
  broll            faceless photo panned, 30 frames, unmarked
  presenter_take2  talking head, source 48-87, marker `FACESWAP colour=mean` on 56-75 only
  astronaut        person B panned, 30 frames, unmarked (what the model puts in)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from renderer import sample
from renderer.contact_sheet import contact_sheet
from renderer.errors import DoppelError, InputError

FPS = Fraction(25)
SIZE = (480, 360)  # (W, H): the talking head upscaled 3x
HEAD_FRAMES = 96
STILL_FRAMES = 30
PRESET = "review"
NAME_A = "kpa-presenter"
NAME_B = "Eileen Collins (NASA portrait)"
QUICK_RIGHTS = ("Sample media from registry packages, used only to demonstrate Doppel: kphotoalbum demo data "
                "(Debian package kphotoalbum, GPL-2+) or the face_recognition 1.3.0 test photos (PyPI, MIT), and "
                "scikit-image's astronaut.png (Eileen Collins, NASA, public domain)")

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- sample sources


@dataclass(frozen=True)
class DemoSources:
    """Files the demo is made of. `talking_head` is kphotoalbum's movie.avi (Debian) or None,
    then `person_a_photo` stands in for it. `notes` say what was used instead of what."""

    person_b: Path
    broll: Path
    talking_head: Path | None = None
    person_a_photo: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def debian(self) -> bool:
        return self.talking_head is not None

    @property
    def direction(self) -> str:
        """a2b on the talking head (person A); b2a when the stand-in clip shows person B."""
        return "a2b" if self.debian else "b2a"


def fetch_sources(cache: Path, say: Say = _quiet) -> DemoSources:
    """Fetch (or find cached) the sample media. Raises sample.SampleUnavailable when PyPI is unreachable."""
    skimage = sample.skimage_data(cache)
    say(f"  scikit-image sample photos: {skimage}")
    try:
        kpa = sample.kphotoalbum_demo(cache)
    except sample.SampleUnavailable as err:
        note = (f"NOT ON DEBIAN (or apt unreachable): {err}. The talking-head video exists only in the Debian "
                f"package kphotoalbum, so the marked clips are a slow pan over the astronaut portrait swapped "
                f"B->A (direction=b2a) and the B-roll a pan over scikit-image's rocket.jpg")
        say(f"  {note}")
        return DemoSources(person_b=skimage / "astronaut.png", broll=skimage / "rocket.jpg",
                           person_a_photo=skimage / "astronaut.png", notes=(note,))
    say(f"  kphotoalbum demo media (Debian package): {kpa}")
    return DemoSources(person_b=skimage / "astronaut.png", broll=kpa / "skagen.jpg",
                       talking_head=kpa / sample.KPHOTOALBUM_MOVIE)


# --------------------------------------------------------------------------- sample media


@dataclass(frozen=True)
class DemoClip:
    """One sample media file: `frames` frames at FPS from start timecode `timecode`."""

    name: str
    path: Path
    frames: int
    timecode: str
    role: str


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"sample image {path} is missing or unreadable (delete the cache folder to fetch it again)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def talking_head_frames(movie: Path, frames: int = HEAD_FRAMES, size: tuple[int, int] = SIZE) -> np.ndarray:
    """(frames, H, W, 3) uint8 RGB: the video resized to `size` (3x for movie.avi), played forwards then
    backwards (ping-pong) until `frames` frames."""
    from renderer import media

    info = media.probe(movie)
    src = [cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC) for _, rgb in media.read_frames(movie, 0, info.frames - 1, info)]
    order = np.concatenate([np.arange(len(src)), np.arange(len(src) - 2, 0, -1)])
    return np.stack([src[order[n % len(order)]] for n in range(frames)])


def pan_frames(photo: Path, frames: int, size: tuple[int, int] = SIZE, *, centre_face: bool = False,
               zoom: tuple[float, float] = (1.0, 1.15), drift: float = 0.08) -> np.ndarray:
    """(frames, H, W, 3) uint8 RGB: a slow zoom and sideways drift over a still photo (a "Ken Burns" move).

    The photo is scaled to cover `size`; with `centre_face` the largest face (HOG) is centred and
    sized to a third of the frame height, so the clip looks like a talking-head shot.
    """
    rgb = _read_rgb(photo)
    h0, w0 = rgb.shape[:2]
    w, h = size
    scale = max(w / w0, h / h0)
    cx, cy = w0 / 2, h0 / 2
    if centre_face:
        from renderer.faces.detect import detect

        found = detect(rgb)
        if not found:
            raise InputError(f"sample photo {photo}: no face found to centre on")
        x0, y0, x1, y1 = found[0].box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        scale = (h / 3.0) / (y1 - y0)
    out = np.empty((frames, h, w, 3), np.uint8)
    for n in range(frames):
        t = n / max(1, frames - 1)
        s = scale * (zoom[0] + (zoom[1] - zoom[0]) * t)
        dx = drift * w * (t - 0.5)
        frame_from_photo = np.array([[s, 0, w / 2 - s * cx + dx], [0, s, h / 2 - s * cy]], np.float64)
        out[n] = cv2.warpAffine(rgb, frame_from_photo, (w, h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
    return out


def _write_clip(path: Path, frames: np.ndarray, timecode: str) -> None:
    from renderer import media

    h, w = frames.shape[1:3]
    with media.VideoWriter(path, width=w, height=h, fps=FPS, codec="h264", timecode=timecode) as writer:
        for rgb in frames:
            writer.write(rgb)


def make_sample_media(sources: DemoSources, folder: Path, say: Say = _quiet) -> dict[str, DemoClip]:
    """Write the demo's three source clips (H.264 .mov, 480x360, 25 fps, with start timecodes) into `folder`.

    A clip already there is kept (files land only complete, and keeping them lets a re-run
    find its renders up to date). Returns {"head", "broll", "person_b"} -> DemoClip.
    """
    specs: list[tuple[str, str, str, int, Callable[[], np.ndarray], str]] = []
    if sources.talking_head is not None:
        specs.append(("head", "talking_head.mov", "01:00:00:00", HEAD_FRAMES,
                      lambda: talking_head_frames(sources.talking_head), f"person A: {sources.talking_head.name}, 3x"))
    else:
        assert sources.person_a_photo is not None
        specs.append(("head", "talking_head.mov", "01:00:00:00", HEAD_FRAMES,
                      lambda: pan_frames(sources.person_a_photo, HEAD_FRAMES, centre_face=True),
                      f"person A: pan over {sources.person_a_photo.name}"))
    specs.append(("broll", f"broll_{sources.broll.stem}.mov", "02:00:00:00", STILL_FRAMES,
                  lambda: pan_frames(sources.broll, STILL_FRAMES), f"B-roll: pan over {sources.broll.name} (no faces)"))
    specs.append(("person_b", "astronaut.mov", "03:00:00:00", STILL_FRAMES,
                  lambda: pan_frames(sources.person_b, STILL_FRAMES, zoom=(1.0, 1.1)),
                  f"person B: pan over {sources.person_b.name}"))
    clips = {}
    for key, name, tc, frames, make, role in specs:
        path = folder / name
        if not path.is_file():
            _write_clip(path, make(), tc)
            say(f"  wrote {path} ({frames} frames, {role})")
        clips[key] = DemoClip(key, path, frames, tc, role)
    return clips


# --------------------------------------------------------------------------- the edit


def build_sample_edit(clips: Mapping[str, DemoClip], edit_path: Path, direction: str = "a2b") -> Path:
    """Write the demo edit (see the module docstring) as OTIO; media referenced relative to the edit.

    direction: "b2a" adds `direction=b2a` to both FACESWAP markers (the off-Debian stand-in)."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

    from renderer.media import timecode_to_frame
    from renderer.timeline import write_edit

    rate = float(FPS)
    tl = otio.schema.Timeline(name="Doppel demo")
    tl.global_start_time = RT(timecode_to_frame("01:00:00:00", FPS), rate)
    track = otio.schema.Track(name="V1")

    def clip(key: str, label: str, first: int, frames: int) -> tuple[otio.schema.Clip, int]:
        c = clips[key]
        origin = timecode_to_frame(c.timecode, FPS)
        rel = os.path.relpath(c.path, edit_path.parent)
        ref = otio.schema.ExternalReference(target_url=rel, available_range=TR(RT(origin, rate), RT(c.frames, rate)))
        return otio.schema.Clip(name=label, media_reference=ref, source_range=TR(RT(origin + first, rate),
                                                                                  RT(frames, rate))), origin

    take1, origin = clip("head", "presenter_take1", 0, 40)
    extra = "" if direction == "a2b" else f" direction={direction}"
    take1.markers.append(otio.schema.Marker(name=f"FACESWAP{extra}", marked_range=TR(RT(origin, rate), RT(0, rate)),
                                            color=otio.schema.MarkerColor.GREEN))
    broll, _ = clip("broll", "broll", 0, STILL_FRAMES)
    take2, origin = clip("head", "presenter_take2", 48, 40)
    marker = otio.schema.Marker(name=f"FACESWAP colour=mean{extra}", marked_range=TR(RT(origin + 56, rate), RT(20, rate)),
                                color=otio.schema.MarkerColor.RED)
    take2.markers.append(marker)
    ref_b, _ = clip("person_b", "astronaut", 0, STILL_FRAMES)
    track.extend([take1, broll, take2, ref_b])
    tl.tracks.append(track)
    write_edit(tl, edit_path)
    return edit_path


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    trained_here: bool
    note: str


def model_ready(model_dir: Path) -> bool:
    from renderer.checkpoint import model_files
    from renderer.errors import ModelError

    try:
        files = model_files(model_dir)  # the last complete checkpoint, or a flat model's folder
    except ModelError:
        return False
    return (files / "model.safetensors").is_file() and (files / "model.yaml").is_file()


def default_model_dir() -> Path:
    """`models/demo` in the working folder, else the one beside this package (a source checkout)."""
    here = Path("models") / "demo"
    if model_ready(here):
        return here
    beside = Path(__file__).resolve().parents[1] / "models" / "demo"
    return beside if model_ready(beside) else here


def ensure_model(model_dir: Path, sources: DemoSources, clips: Mapping[str, DemoClip], out_dir: Path, cache: Path,
                 *, iterations: int | None = None, minutes: float = 4.0, threads: int | None = None,
                 progress: bool = True, say: Say = _quiet) -> ModelChoice:
    """`model_dir` when it holds a trained model; else extract the two facesets (cached) and train a
    quick lite model into `out_dir/quick-model` (`iterations`, else `minutes` of training)."""
    if model_ready(model_dir):
        return ModelChoice(Path(model_dir), False, f"shipped demo model {model_dir}")
    quick = out_dir / "quick-model"
    banner = "!" * 78
    if model_ready(quick):
        say(f"{banner}\n  no demo model at {model_dir}: using the quick model trained by an earlier run, {quick}\n{banner}")
        return ModelChoice(quick, True, f"quick model from an earlier run ({quick}); {model_dir} is missing")
    budget = f"{iterations} iterations" if iterations else f"{minutes:g} minutes"
    say(f"{banner}\n  NO DEMO MODEL at {model_dir} (models/ is not in this checkout?)\n"
        f"  TRAINING A QUICK ONE INSTEAD ({budget}, lite): expect a blurry, barely-there swap.\n"
        f"  The shipped model trained for 80 CPU minutes (6332 iterations); `doppel train` makes a real one.\n{banner}")
    from renderer.extract import extract
    from renderer.train import TrainConfig, train

    a_src = sources.talking_head if sources.talking_head is not None else clips["head"].path
    sets = cache / "sample" / "facesets"
    fa, fb = sets / f"a-{a_src.stem}", sets / "b-astronaut"
    for label, src, dst, extra in (("A", a_src, fa, {"dedupe_bits": -1}), ("B", sources.person_b, fb, {})):
        say(f"  extracting faces of person {label} from {src.name} -> {dst}")
        summary = extract([src], dst, size=128, progress=progress, **extra)
        if not summary.ok:
            raise DoppelError(f"no faces of person {label} found in {src}; cannot train the demo model")
    cfg = TrainConfig(faceset_a=fa, faceset_b=fb, out=quick, rights=QUICK_RIGHTS, name_a=NAME_A, name_b=NAME_B,
                      model="lite", iterations=iterations, minutes=None if iterations else minutes, batch=8,
                      save_every=max(50, iterations or 250), threads=threads, seed=0)
    result = train(cfg, progress=progress)
    say(f"  trained quick model: {result.iterations} iterations in {result.seconds:.0f} s -> {quick}")
    return ModelChoice(quick, True, f"QUICK model trained here ({result.iterations} iterations) because "
                                    f"{model_dir} is missing")


# --------------------------------------------------------------------------- signing


def signing_env(out_dir: Path, env: Mapping[str, str]) -> tuple[dict[str, str], Path | None, str]:
    """(environment for the render, CA to verify against or None, what was decided).

    A configured identity (env DOPPEL_SIGN_CERT/KEY or the keys folder) is used as it is;
    otherwise demo-local keys are made in `out_dir/keys` (once) and passed through the env.
    """
    from renderer import provenance as P

    env = dict(env)
    identity = P.resolve_signing_identity(None, env)
    if identity is not None:
        ca = identity.cert_chain_pem.parent / P.CA_CERT_NAME
        return env, ca if ca.is_file() else None, f"signing with the configured identity ({identity.origin})"
    keys = out_dir / "keys"
    if not ((keys / P.CHAIN_NAME).is_file() and (keys / P.KEY_NAME).is_file() and (keys / P.CA_CERT_NAME).is_file()):
        P.init_keys(keys, common_name="Doppel demo signer", organization="Doppel demo", overwrite=True, valid_days=30)
        note = f"no signing key configured: made demo-local keys in {keys} (valid 30 days; trust anchor {keys / P.CA_CERT_NAME})"
    else:
        note = f"no signing key configured: using the demo-local keys in {keys}"
    env[P.ENV_CERT], env[P.ENV_KEY] = str(keys / P.CHAIN_NAME), str(keys / P.KEY_NAME)
    return env, keys / P.CA_CERT_NAME, note


# --------------------------------------------------------------------------- the whole demo


@dataclass(frozen=True)
class DemoConfig:
    """`out`: output folder. `model`: model folder (None: `default_model_dir()`); when it holds no
    model a quick one is trained (`train_iterations`, else `train_minutes`). `cache`: fetch cache
    root (None: `sample.default_cache`)."""

    out: Path
    model: Path | None = None
    cache: Path | None = None
    train_iterations: int | None = None
    train_minutes: float = 4.0
    threads: int | None = None
    frames_per_clip: int = 3
    force: bool = False
    progress: bool = True
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class DemoSummary:
    status: str  # "ok" | "failed"
    out_dir: Path
    edit: Path
    model: ModelChoice
    report: Any  # RenderReport
    return_edits: tuple[Path, ...]
    render_json: Path
    contact_sheet: Path
    sheet_size: tuple[int, int]
    sheet_rows: int
    keys_note: str
    trust: Path | None
    verified: tuple[Any, ...]  # provenance.VerifyResult per output
    notes: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "ok" else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "out_dir": str(self.out_dir),
            "edit": str(self.edit),
            "model": {"path": str(self.model.path), "trained_here": self.model.trained_here, "note": self.model.note},
            "render": self.report.to_json(),
            "outputs": [r.entry["output"]["path"] for r in self.report.results if r.status != "failed"],
            "return_edits": [str(p) for p in self.return_edits],
            "render_json": str(self.render_json),
            "contact_sheet": {"path": str(self.contact_sheet), "width": self.sheet_size[0],
                              "height": self.sheet_size[1], "rows": self.sheet_rows},
            "signing": {"note": self.keys_note, "trust": str(self.trust) if self.trust else None},
            "verified": [v.to_json() for v in self.verified],
            "notes": list(self.notes),
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def _render_bars(enabled: bool) -> tuple[Callable[[Any], None], Callable[[], None]]:
    from tqdm import tqdm

    state: dict[str, Any] = {"job": -1, "bar": None}

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    def on_progress(p: Any) -> None:
        if not enabled:
            return
        if p.job != state["job"]:
            close()
            state["job"] = p.job
            state["bar"] = tqdm(total=p.frames, unit="frame", desc=f"render {p.job + 1}/{p.jobs} {p.clip_name}",
                                dynamic_ncols=True)
        state["bar"].update(p.frame - state["bar"].n)

    return on_progress, close


def run_demo(cfg: DemoConfig, say: Say = _quiet) -> DemoSummary:
    """Fetch, build, (train,) render, sign, verify and summarise the demo into `cfg.out`."""
    from renderer.provenance import verify_media
    from renderer.render import plan_render, run_render
    from renderer.timeline import read_edit, write_edit

    env = dict(os.environ if cfg.env is None else cfg.env)
    out = Path(cfg.out)
    cache = Path(cfg.cache) if cfg.cache is not None else sample.default_cache(env)
    model_dir = Path(cfg.model) if cfg.model is not None else default_model_dir()
    seconds: dict[str, float] = {}
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        seconds[name] = now - t
        t = now

    say(f"[1/7] sample media of real faces from package registries (cache: {cache})")
    sources = fetch_sources(cache, say)
    lap("fetch")
    say(f"[2/7] sample clips and the edit in {out / 'sample'}")
    clips = make_sample_media(sources, out / "sample" / "media", say)
    edit = build_sample_edit(clips, out / "sample" / "cut.otio", sources.direction)
    say(f"  edit {edit}: 4 clips; presenter_take1 marked whole (point marker), presenter_take2 marked on 20 frames")
    lap("media")
    say("[3/7] model")
    model = ensure_model(model_dir, sources, clips, out, cache, iterations=cfg.train_iterations,
                         minutes=cfg.train_minutes, threads=cfg.threads, progress=cfg.progress, say=say)
    say(f"  {model.note}")
    lap("model")
    say("[4/7] signing identity")
    render_env, trust, keys_note = signing_env(out, env)
    say(f"  {keys_note}")
    say(f"[5/7] render with preset '{PRESET}' into {out}")
    plan = plan_render(edit, PRESET, out, model=model.path, env=render_env)
    on_progress, close = _render_bars(cfg.progress)

    def on_clip(r: Any) -> None:
        close()
        what = {"ok": "rendered", "skipped": "up to date"}.get(r.status, f"FAILED: {r.error}")
        say(f"  clip '{r.job.clip.clip_name}': {what} -> {r.entry['output']['path']}")

    try:
        report = run_render(plan, on_progress=on_progress, on_clip=on_clip, force=cfg.force)
    finally:
        close()
    returns = list(report.return_edits)
    xml = out / f"{edit.stem}.doppel.xml"
    write_edit(read_edit(returns[0]), xml)  # FCP7 XML for Premiere/Resolve users (render writes the input's format)
    returns.append(xml)
    lap("render")
    say("[6/7] verify the C2PA manifests")
    verified = []
    for r in report.results:
        if r.status == "failed":
            continue
        v = verify_media(Path(r.entry["output"]["path"]), trust_pem=trust)
        verified.append(v)
        say(f"  {Path(v.path).name}: {v.status}, signer {v.signer!r}"
            + (f", {'trusted' if v.trusted else 'NOT trusted'} under {trust}" if trust else ", trust not checked"))
    lap("verify")
    say("[7/7] contact sheet")
    sheet, size, nrows = contact_sheet(report, out / "contact_sheet.png", frames_per_clip=cfg.frames_per_clip)
    say(f"  {sheet} ({size[0]}x{size[1]}, {nrows} rows: source | swapped | mask)")
    lap("contact_sheet")
    ok = report.exit_code == 0 and all(v.exit_code == 0 for v in verified) and bool(verified)
    return DemoSummary("ok" if ok else "failed", out, edit, model, report, tuple(returns), report.plan.render_json,
                       sheet, size, nrows, keys_note, trust, tuple(verified), sources.notes, seconds)


__all__ = [
    "DemoClip", "DemoConfig", "DemoSources", "DemoSummary", "ModelChoice", "build_sample_edit",
    "default_model_dir", "ensure_model", "fetch_sources", "make_sample_media",
    "model_ready", "pan_frames", "run_demo", "signing_env", "talking_head_frames",
]
