"""A model folder's files: saved as one atomic step, read back through one loader.

Layout:
    MODEL_DIR/
      current -> checkpoints/00000250-1a2b3c   the pointer: a relative symlink, switched by one rename
      checkpoints/00000250-1a2b3c/             one complete save: model.safetensors, model.yaml,
                                               optimizer.safetensors, train_state.json, preview.png, loss.png
      model.yaml -> current/model.yaml         one such link per file, for people and tools that open
      ...                                      MODEL_DIR/model.yaml; they always show the current save

`save_files` writes the whole set into a fresh generation folder (each file fsynced),
then renames a new symlink over `current`: a kill at any moment leaves the previous
generation current and complete, never a card paired with other weights. Generations
that are no longer current (and half-written ones a kill left behind) are removed after
the switch. `model_files` is the one place that decides where a model's files are; every
reader (swap, render, resume, the model card) goes through it.

A folder without a `current` link is a flat model (saved before generations existed,
like the shipped models/demo, or copied with links followed): its files are read where
they are, and the next save turns it into the layout above.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

from renderer.errors import ModelError

CURRENT = "current"
GENERATIONS = "checkpoints"
PAUSE_ENV = "DOPPEL_PAUSE_AT"


def safetensors_bytes(tensors: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """safetensors' `save`, with its JSON header's keys in sorted order: the library writes the
    metadata map in hash order, which differs from process to process, so the same weights gave
    other bytes (and another SHA-256 on the card) from one save to the next. Same length, same data."""
    import json
    import struct

    from safetensors.torch import save as st_save

    blob = st_save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode("utf-8")
    assert len(header) <= n, "a re-serialised safetensors header grew"
    return blob[:8] + header.ljust(n, b" ") + blob[8 + n:]


def pause_point(name: str) -> None:
    """Stop this process (SIGSTOP) when $DOPPEL_PAUSE_AT names this point.

    A test hook for fault tests: the test waits for the stop, then sends a real SIGKILL,
    so the process dies exactly between two steps of a save. Costs one dict lookup."""
    if os.environ.get(PAUSE_ENV) == name:
        os.kill(os.getpid(), signal.SIGSTOP)


def model_files(model_dir: Path | str) -> Path:
    """The folder holding MODEL_DIR's current files: the generation `current` points to, or
    MODEL_DIR itself for a flat model. ModelError when MODEL_DIR does not exist, is a file,
    or its pointer is broken."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise ModelError(f"model folder {model_dir} does not exist (train one with `doppel train`)")
    if not model_dir.is_dir():
        raise ModelError(f"model {model_dir} is a file, not a model folder")
    pointer = model_dir / CURRENT
    if not pointer.is_symlink():
        return model_dir  # flat (a real `current/` folder is a copy made with links followed: same files)
    target = model_dir / os.readlink(pointer)
    if not target.is_dir():
        raise ModelError(f"model {model_dir}: {CURRENT} points to {os.readlink(pointer)}, which is missing "
                         f"(the folder was copied without its {GENERATIONS}/ folder?)")
    return target


def holds_model(model_dir: Path) -> bool:
    """True when MODEL_DIR has a model in it (either layout), complete or not."""
    return (model_dir / CURRENT).is_symlink() or any(
        (model_dir / name).exists() for name in ("model.safetensors", "model.yaml"))


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def _write_synced(path: Path, data: bytes, label: str) -> None:
    view = memoryview(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, view[:len(view) // 2])
        pause_point(f"{label}:half:{path.name}")
        _write_all(fd, view[len(view) // 2:])
        os.fsync(fd)  # the bytes are on disk before the pointer can name them
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _symlink_over(target: str, link: Path) -> None:
    """Point `link` at `target` in one rename (a temporary link beside it first)."""
    tmp = link.with_name(f".{link.name}.link-{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    try:
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)  # a real folder (a copy made with links followed) cannot be renamed over
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


# What a model's generation holds besides its card: the training files (weights, optimizer, previews)
# and what later steps add (B's upscaler, the error prior, the occluder segmenter). A step that adds one
# carries the rest.
MODEL_GENERATION_FILES = ("model.safetensors", "optimizer.safetensors", "train_state.json", "preview.png", "loss.png",
                          "upscaler.safetensors", "error_prior.safetensors", "segmenter.safetensors")


def read_beside_model(folder: Path | str, name: str, sha256: str, what: str, redo: str) -> bytes:
    """The bytes of `name` in a model's files folder, checked against the SHA-256 its card section records
    (`what`: the section, e.g. "a segmenter"). ModelError, ending in `redo`, when it is missing or differs."""
    import hashlib

    path = Path(folder) / name
    if not path.is_file():
        raise ModelError(f"model {folder}: the card has {what} section but {name} is missing ({redo})")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise ModelError(f"model {folder}: {name} does not match the SHA-256 in model.yaml (corrupt or replaced; {redo})")
    return blob


def save_beside_model(model_dir: Path | str, new_files: dict[str, bytes], card_bytes: bytes, label: str) -> Path:
    """MODEL_DIR's current files, unchanged, plus `new_files` and the updated card (model.yaml), as one
    new generation (`save_files`). ModelError when the model's weights are missing."""
    files_dir = model_files(model_dir)
    files = {p.name: p.read_bytes() for p in sorted(files_dir.iterdir())
             if p.is_file() and not p.is_symlink() and p.name in MODEL_GENERATION_FILES}
    if "model.safetensors" not in files:
        raise ModelError(f"model {model_dir}: model.safetensors is missing")
    files.update(new_files)
    files["model.yaml"] = card_bytes
    return save_files(model_dir, files, label)


def save_files(model_dir: Path | str, files: dict[str, bytes], label: str) -> Path:
    """Write `files` (name -> bytes) as MODEL_DIR's new current generation in one atomic step.

    `label` names the generation (e.g. the iteration, zero-padded) and the pause points of
    fault tests (`<label>:before:<file>`, `<label>:half:<file>`, `<label>:switch`,
    `<label>:links`, `<label>:prune`). OSError (disk full, read-only) propagates after the
    half-written generation is removed; the previous one stays current. Returns the folder.
    """
    model_dir = Path(model_dir)
    gens = model_dir / GENERATIONS
    gens.mkdir(parents=True, exist_ok=True)
    gen = gens / f"{label}-{uuid.uuid4().hex[:6]}"
    gen.mkdir()
    try:
        for name, data in files.items():
            pause_point(f"{label}:before:{name}")
            _write_synced(gen / name, data, label)
        _fsync_dir(gen)
    except BaseException:
        shutil.rmtree(gen, ignore_errors=True)
        raise
    pause_point(f"{label}:switch")
    _symlink_over(f"{GENERATIONS}/{gen.name}", model_dir / CURRENT)  # the one step that makes it current
    _fsync_dir(model_dir)
    pause_point(f"{label}:links")
    for name in files:  # flat files of an older save become links too; the loader no longer reads them
        link = model_dir / name
        want = f"{CURRENT}/{name}"
        if not (link.is_symlink() and os.readlink(link) == want):
            _symlink_over(want, link)
    pause_point(f"{label}:prune")
    for old in gens.iterdir():
        if old.name != gen.name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in [*model_dir.glob(".*.link-*"), *model_dir.glob(".*.partial-*")]:  # temporaries a kill left
        with contextlib.suppress(OSError):
            stale.unlink()
    return gen
