"""The extract pipeline: images, folders and videos -> aligned face crops + faceset.json.

    sources -> files -> frames -> find_faces / FaceTracker -> filters -> PNG crops + index

Filters, in order: minimum face size, blur (variance of the Laplacian on the
crop resized to 64 px, so the measure does not depend on --size), identity
(embedding distance to a reference face), near-duplicates (64-bit difference
hash of the crop against the faces already kept from the same source).

Idempotent and resumable: a crop is named by source SHA-256 prefix, frame
index and face index; faceset.json is rewritten atomically after each source
and lists the finished sources by SHA-256, so a re-run skips them and an
interrupted run redoes only the source it was in. Bad sources (unreadable,
corrupt, no faces) are recorded in `rejects` and the run goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from renderer.atomic import atomic_output, sha256_file
from renderer.colour_management import ColourManagement, ColourSpaces
from renderer.errors import DoppelError, InputError, closest
from renderer.faces import Face
from renderer.faces.align import DEFAULT_COVERAGE, crop
from renderer.faces.detect import DETECTORS
from renderer.faces.identity import DEFAULT_THRESHOLD, embed, identity_distance, reference_embedding
from renderer.faces.track import FaceTracker, find_faces
from renderer.faceset import INDEX_NAME, Faceset, FaceRecord, load_faceset, save_faceset_index

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".mxf", ".webm", ".m4v", ".mts", ".mpg", ".mpeg", ".y4m"})


@dataclass(frozen=True)
class ExtractSettings:
    """Everything that decides which crops an extract produces (stored in faceset.json)."""

    detector: str = "hog"
    size: int = 256
    every: int = 1
    points: int = 68
    coverage: float = DEFAULT_COVERAGE
    min_face: int = 40
    blur_threshold: float = 20.0
    dedupe_bits: int = 4
    identity_sha256: str | None = None
    identity_threshold: float = DEFAULT_THRESHOLD
    colour: dict[str, str] | None = None  # {"config", "source_space", "working_space"} when colour-managed

    def check(self) -> None:
        if self.detector not in DETECTORS:
            raise InputError(f"--detector {self.detector!r} is not available; choose one of {', '.join(DETECTORS)}{closest(self.detector, list(DETECTORS))}")
        if not 32 <= self.size <= 2048:
            raise InputError(f"--size must be 32..2048 px; got {self.size}")
        if self.every < 1:
            raise InputError(f"--every must be >= 1; got {self.every}")
        if self.points not in (68, 5):
            raise InputError(f"--landmarks must be 68 or 5; got {self.points}")
        if not 0 <= self.coverage < 1:
            raise InputError(f"--coverage must be in [0, 1); got {self.coverage}")
        if self.min_face < 8:
            raise InputError(f"--min-face must be >= 8 px; got {self.min_face}")

    def to_json(self) -> dict[str, Any]:
        # "colour" only when managed: facesets made before it existed resume with the same settings.
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "colour" or self.colour is not None}


@dataclass(frozen=True)
class ExtractSummary:
    """What an extract run did. `faces_total` counts the whole faceset after the run."""

    out_dir: Path
    files: int
    skipped_done: int
    faces_found: int
    faces_kept: int
    faces_total: int
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count (faces)
    bad_sources: tuple[dict[str, Any], ...] = ()  # per-file problems

    @property
    def ok(self) -> bool:
        return self.faces_total > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir), "files": self.files, "skipped_done": self.skipped_done,
            "faces_found": self.faces_found, "faces_kept": self.faces_kept, "faces_total": self.faces_total,
            "rejected": dict(self.rejected), "bad_sources": list(self.bad_sources),
        }


def expand_sources(sources: list[Path]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files to read (sorted within folders) and rejects for files in folders that are neither image nor video."""
    from renderer.media.sequence import folder_sequences, is_sequence_path

    # An image sequence is one source, read like a video: a pattern (shot.%04d.exr), or a folder that
    # holds one sequence of EXR or DPX frames (which are no stills OpenCV reads).
    missing = [str(s) for s in sources if not Path(s).exists() and not is_sequence_path(s)]
    if missing:
        raise InputError(f"source not found: {', '.join(missing)} (give images, folders of images, or videos)")
    files: list[Path] = []
    rejects: list[dict[str, Any]] = []
    for src in map(Path, sources):
        found = folder_sequences(src) if src.is_dir() else []
        if not src.is_dir() and is_sequence_path(src):
            files.append(src)
        elif len(found) == 1 and found[0].suffix.lower() in (".exr", ".dpx") and all(
                p.name in {f.name for f in found[0].scan().values()} or p.name.startswith(".") or p.is_dir()
                for p in src.iterdir()):
            files.append(found[0].printf)
        elif src.is_dir():
            for p in sorted(q for q in src.rglob("*") if q.is_file() and not q.name.startswith(".")):
                if p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
                    files.append(p)
                else:
                    rejects.append({"source": str(p), "frame": None, "reason": f"not an image or video ({p.suffix or 'no extension'})"})
        else:
            files.append(src)
    return files, rejects


def blur_measure(crop_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the crop resized to 64x64 grey (higher = sharper)."""
    grey = cv2.cvtColor(cv2.resize(crop_rgb, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def dhash(crop_rgb: np.ndarray) -> int:
    """64-bit difference hash of a crop (near-duplicate test by Hamming distance)."""
    grey = cv2.cvtColor(cv2.resize(crop_rgb, (9, 8), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def _read_image(path: Path) -> np.ndarray | None:
    # IMREAD_COLOR applies EXIF orientation; np.fromfile keeps non-ASCII paths working.
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _reference(path: Path) -> np.ndarray:
    """(128,) embedding of the largest face in the --identity image; InputError when there is none."""
    rgb = _read_image(Path(path)) if Path(path).is_file() else None
    if rgb is None:
        raise InputError(f"--identity {path}: not a readable image")
    emb = reference_embedding(rgb)
    if emb is None:
        raise InputError(f"--identity {path}: no face found in the reference image")
    return emb


def _is_sequence(path: Path) -> bool:
    from renderer.media.sequence import is_sequence_path

    return is_sequence_path(path)


def _source_sha256(path: Path) -> str:
    """A file's SHA-256; for an image sequence one hash over all its frames in order."""
    if _is_sequence(path):
        from renderer.media.sequence import parse_sequence, sequence_sha256

        return sequence_sha256(parse_sequence(path))
    return sha256_file(path)


def _frames(path: Path, settings: ExtractSettings, tracker_fps: list[float]) -> Iterator[tuple[int, np.ndarray]]:
    from renderer.media import probe, read_frames

    info = probe(path)
    tracker_fps.append(float(info.fps))
    for i, rgb in read_frames(path, 0, info.frames - 1, info):
        if i % settings.every == 0:
            yield i, rgb


def extract(
    sources: list[Path],
    out_dir: Path,
    *,
    detector: str = "hog",
    size: int = 256,
    every: int = 1,
    identity_ref: Path | None = None,
    points: int = 68,
    coverage: float = DEFAULT_COVERAGE,
    min_face: int = 40,
    blur_threshold: float = 20.0,
    dedupe_bits: int = 4,
    identity_threshold: float = DEFAULT_THRESHOLD,
    colour: ColourSpaces | None = None,
    progress: bool = True,
) -> ExtractSummary:
    """Find, align and save the faces of `sources` into the faceset at `out_dir` (created or resumed).

    colour: the OCIO space the sources are in (`source_space`) and the one to store the crops in
    (`working_space`; the same name stores them as they are). The faceset records the crops'
    space, so `train` can refuse facesets cut in different spaces. Each frame is converted to
    the working space before faces are found (detectors and landmarks expect display
    contrast) and cut. None: undeclared (display RGB).
    """
    out_dir = Path(out_dir)
    ref_sha = sha256_file(Path(identity_ref)) if identity_ref is not None and Path(identity_ref).is_file() else None
    cm = ColourManagement.open(colour) if colour is not None else None  # InputError on a bad config or space
    settings = ExtractSettings(detector, size, every, points, coverage, min_face, blur_threshold, dedupe_bits,
                               ref_sha, identity_threshold,
                               None if cm is None else {"config": cm.spaces.config, "source_space": cm.spaces.source_space,
                                                        "working_space": cm.spaces.working_space})
    settings.check()
    files, folder_rejects = expand_sources(list(sources))
    ref = _reference(Path(identity_ref)) if identity_ref is not None else None

    if (out_dir / INDEX_NAME).exists():
        old = load_faceset(out_dir)
        if old.settings is not None and old.settings != settings.to_json():
            diff = {k: (old.settings.get(k), v) for k, v in settings.to_json().items() if old.settings.get(k) != v}
            raise InputError(f"{out_dir} holds a faceset made with other settings ({', '.join(f'{k}: {a!r} there, {b!r} now' for k, (a, b) in diff.items())}); use another --out or the same settings")
        records, rejects, done = list(old.records), list(old.rejects), list(old.sources)
    else:
        records, rejects, done = [], [], []
    done_shas = {d["sha256"] for d in done}
    known_rejects = {(r["source"], r["frame"], r["reason"]) for r in rejects}
    for r in folder_rejects:
        if (r["source"], r["frame"], r["reason"]) not in known_rejects:
            rejects.append(r)
    (out_dir / "faces").mkdir(parents=True, exist_ok=True)

    def save() -> None:
        save_faceset_index(Faceset(root=out_dir, crop_size=size, coverage=coverage, landmark_points=points,
                                   records=tuple(records), rejects=tuple(rejects),
                                   identity=str(identity_ref) if identity_ref else None,
                                   sources=tuple(done), settings=settings.to_json(),
                                   colour_space=None if cm is None else cm.spaces.working_space,
                                   colour_config=None if cm is None else cm.spaces.config))

    counts: Counter[str] = Counter()
    found = kept = skipped = 0
    bad: list[dict[str, Any]] = list(folder_rejects)
    bar = tqdm(files, desc="extract", unit="file", disable=not progress, dynamic_ncols=True)
    for path in bar:
        try:
            sha = _source_sha256(path)
        except OSError as err:
            bad.append({"source": str(path), "frame": None, "reason": f"unreadable: {err.strerror}"})
            rejects.append(bad[-1])
            continue
        if sha in done_shas:
            skipped += 1
            continue
        kind = ("video" if path.suffix.lower() in VIDEO_EXTS else
                "sequence" if _is_sequence(path) else "image")
        new_records: list[FaceRecord] = []
        source_rejects: list[dict[str, Any]] = []
        hashes: list[int] = []
        frames_seen = 0

        def consider(frame_index: int, rgb: np.ndarray, faces: list[Face]) -> None:
            nonlocal found, kept
            for k, face in enumerate(faces):
                found += 1
                reason = None
                if face.width < min_face:
                    reason = f"face smaller than {min_face} px"
                c = crop(rgb, face)
                blur = blur_measure(c)
                if reason is None and blur < blur_threshold:
                    reason = f"blurry (measure {blur:.1f} < {blur_threshold})"
                h = dhash(c)
                if reason is None and any(bin(h ^ o).count("1") <= dedupe_bits for o in hashes):
                    reason = "near-duplicate"
                emb = None
                if reason is None:  # the embedding is the costly step: only for faces still in
                    emb = face.embedding if face.embedding is not None else embed(rgb, face.landmarks)
                    if ref is not None and identity_distance(emb, ref) > identity_threshold:
                        reason = f"not the --identity person (distance > {identity_threshold})"
                if reason is not None:
                    counts[reason.split(" (")[0]] += 1
                    source_rejects.append({"source": str(path), "frame": frame_index, "reason": reason})
                    continue
                hashes.append(h)
                name = f"faces/{sha[:12]}_{frame_index:06d}_{k:02d}.png"
                with atomic_output(out_dir / name) as tmp:
                    if not cv2.imwrite(str(tmp), cv2.cvtColor(c, cv2.COLOR_RGB2BGR)):
                        raise DoppelError(f"could not write crop {out_dir / name}")
                new_records.append(FaceRecord(
                    file=name, source=str(path), source_sha256=sha, frame=frame_index, box=face.box,
                    score=face.score, landmarks=face.landmarks, crop_from_frame=face.crop_from_frame,
                    blur=blur, embedding=emb))
                kept += 1
            bar.set_postfix(found=found, kept=kept, rejected=sum(counts.values()), refresh=False)

        problem = None
        if kind == "image":
            rgb = _read_image(path)
            rgb = cm.to_working_u8(rgb) if cm is not None and rgb is not None else rgb
            if rgb is None:
                problem = "unreadable image (corrupt or not an image)"
            else:
                frames_seen = 1
                consider(0, rgb, find_faces(rgb, detector=detector, points=points, crop_size=size,
                                            coverage=coverage, min_size=min_face))
        else:
            fps: list[float] = []
            tracker: FaceTracker | None = None
            try:
                for i, rgb in _frames(path, settings, fps):
                    frames_seen += 1
                    rgb = cm.to_working_u8(rgb) if cm is not None else rgb
                    if every == 1:
                        tracker = tracker or FaceTracker(detector=detector, points=points, crop_size=size,
                                                         coverage=coverage, fps=fps[0], min_size=min_face)
                        faces = tracker.update(i, rgb)
                    else:
                        faces = find_faces(rgb, detector=detector, points=points, crop_size=size,
                                           coverage=coverage, min_size=min_face)
                    consider(i, rgb, faces)
            except DoppelError as err:  # corrupt or unsupported video: recorded, the run goes on
                problem = f"unreadable video: {err}"
        if problem is None and not new_records and not source_rejects:
            problem = f"no faces found in {frames_seen} frame{'s' if frames_seen != 1 else ''}"
        if problem is not None:
            entry = {"source": str(path), "frame": None, "reason": problem}
            bad.append(entry)
            source_rejects.append(entry)
        records.extend(new_records)
        rejects.extend(source_rejects)
        done.append({"path": str(path), "sha256": sha, "kind": kind, "frames": frames_seen, "faces": len(new_records)})
        done_shas.add(sha)
        save()
    bar.close()
    save()
    return ExtractSummary(out_dir=out_dir, files=len(files), skipped_done=skipped, faces_found=found,
                          faces_kept=kept, faces_total=len(records), rejected=dict(counts), bad_sources=tuple(bad))
