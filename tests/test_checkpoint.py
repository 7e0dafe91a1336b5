"""Checkpoints are one atomic step: a real SIGKILL at every file boundary of a save leaves a model that loads
and resumes to the same numbers as an uninterrupted run; flat model folders (models/demo) still load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from renderer.checkpoint import CURRENT, GENERATIONS, PAUSE_ENV, model_files, safetensors_bytes
from renderer.model import WEIGHTS_NAME, load_model
from renderer.modelcard import CARD_NAME, load_model_card
from renderer.render import check_model
from renderer.train import OPTIMIZER_NAME, STATE_NAME, TrainConfig, train
from tests.train_data import faceset_astronaut, faceset_presenter, tiny_config

ROOT = Path(__file__).resolve().parents[1]
RIGHTS = "Public test media (kphotoalbum demo video, GPL-2+; NASA astronaut portrait, public domain); tests only"
# The order save_model writes a generation in: weights, optimizer, state, previews, and the card last.
FILES = (WEIGHTS_NAME, OPTIMIZER_NAME, STATE_NAME, "preview.png", "loss.png", CARD_NAME)
SAVE = "00000004"  # the second checkpoint (save_every 2): the first one, of iteration 2, is complete
POINTS = ([f"{SAVE}:before:{name}" for name in FILES] + [f"{SAVE}:half:{name}" for name in (WEIGHTS_NAME, CARD_NAME)]
          + [f"{SAVE}:{step}" for step in ("switch", "links", "prune")])

DRIVER = textwrap.dedent("""
    import signal
    import sys
    from pathlib import Path
    # A suite started in the background by a shell without job control inherits SIGINT ignored;
    # the Ctrl-C tests need it as a terminal gives it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from renderer.atomic import write_text_atomic
    from renderer.train import TrainConfig, train
    from tests.train_data import faceset_astronaut, faceset_presenter, tiny_config
    threads = int(sys.argv[3]) if sys.argv[3] != "default" else None
    progress = Path(sys.argv[4]) if len(sys.argv) > 4 else None

    def report(it, model):  # the parent reads how far training got (written whole, then renamed:
        if progress:         # a read never sees the file truncated and not yet rewritten)
            write_text_atomic(progress, str(it))
        return False

    cfg = TrainConfig(faceset_a=faceset_presenter(64), faceset_b=faceset_astronaut(64), out=Path(sys.argv[1]),
                      rights=%r, model_config=tiny_config(), batch=8, lr=1e-3, seed=1, device="cpu",
                      threads=threads, iterations=int(sys.argv[2]), save_every=2)
    try:
        train(cfg, progress=False, hooks=[report])
    except KeyboardInterrupt:
        sys.exit(130)
""") % RIGHTS


def _cfg(out: Path, iterations: int, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(model_config=tiny_config(), batch=8, lr=1e-3, seed=1, device="cpu", threads=1,
                                   save_every=2)
    base.update(kw)
    return TrainConfig(faceset_a=faceset_presenter(64), faceset_b=faceset_astronaut(64), out=out, rights=RIGHTS,
                       iterations=iterations, **base)  # type: ignore[arg-type]


def _start(tmp: Path, out: Path, iterations: int, threads: str = "1", env: dict[str, str] | None = None,
           progress: Path | None = None) -> subprocess.Popen[bytes]:
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)
    args = [sys.executable, str(driver), str(out), str(iterations), threads] + ([str(progress)] if progress else [])
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stderr=subprocess.PIPE)


def _stopped(proc: subprocess.Popen[bytes], point: str) -> bool:
    """True once the process has stopped itself at the pause point (state T in /proc)."""
    if proc.poll() is not None:
        raise AssertionError(f"training ended (rc {proc.returncode}) before reaching {point}: "
                             f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    try:
        return Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except FileNotFoundError:
        return False


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(model_files(a) / WEIGHTS_NAME)), load_file(str(model_files(b) / WEIGHTS_NAME))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 iterations without interruption (checkpoints at 2, 4, 6): what every resumed run must equal."""
    out = tmp_path_factory.mktemp("straight") / "m"
    train(_cfg(out, 6), progress=False)
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One training run per pause point, all started at once (the startup dominates), each stopped in the
    middle of its second save and then killed with a real SIGKILL."""
    tmp = tmp_path_factory.mktemp("killed")
    pending = list(enumerate(POINTS))
    running: dict[str, tuple[Path, subprocess.Popen[bytes]]] = {}
    codes: dict[str, int] = {}
    end = time.monotonic() + 900
    try:
        while pending or running:  # four at a time: each holds a torch process's memory until killed
            while pending and len(running) < 4:
                i, point = pending.pop(0)
                running[point] = (tmp / f"m{i}", _start(tmp, tmp / f"m{i}", 6, env={PAUSE_ENV: point}))
            for point, (_, proc) in list(running.items()):
                if _stopped(proc, point):
                    proc.send_signal(signal.SIGKILL)  # kill -9: no handler, no cleanup, no finally
                    codes[point] = proc.wait()
                    del running[point]
            assert time.monotonic() < end, f"never reached: {list(running)}"
            time.sleep(0.05)
    finally:
        for _, proc in running.values():
            proc.kill()
            proc.wait()
    assert codes == {point: -signal.SIGKILL for point in POINTS}
    return {point: tmp / f"m{i}" for i, point in enumerate(POINTS)}


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_any_point_of_a_save_leaves_the_last_checkpoint_and_resume_is_exact(
        point: str, killed: dict[str, Path], straight: Path) -> None:
    out = killed[point]
    switched = point.endswith((":links", ":prune"))  # the pointer had moved: the new checkpoint is complete
    model, card = load_model(out, device="cpu")  # what swap loads
    assert card.iterations == (4 if switched else 2)
    assert load_model_card(out).weights_sha256 == card.weights_sha256
    assert check_model(out, "test").weights_sha256 == card.weights_sha256  # what render checks
    state = json.loads((model_files(out) / STATE_NAME).read_text())
    assert state["iteration"] == card.iterations
    if not switched:
        assert len(list((out / GENERATIONS).iterdir())) == 2  # the half-written generation is still there ...
    result = train(_cfg(out, 6, resume=True, model_config=None, batch=None, lr=None, threads=None), progress=False)
    assert result.iterations == 6 and result.iterations_this_run == 6 - card.iterations
    assert _same_weights(out, straight)  # bit-identical to the run nobody killed
    assert torch.equal(load_file(str(out / OPTIMIZER_NAME))["loss.history"],
                       load_file(str(straight / OPTIMIZER_NAME))["loss.history"])
    assert [p.name for p in (out / GENERATIONS).iterdir()] == [model_files(out).name]  # ... and is gone now
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary link or file left


def test_the_layout_one_pointer_and_links_to_the_current_files(straight: Path) -> None:
    pointer = straight / CURRENT
    assert pointer.is_symlink() and os.readlink(pointer).startswith(f"{GENERATIONS}/00000006-")
    for name in FILES:  # MODEL_DIR/model.yaml and the rest still open as before, through the pointer
        assert os.readlink(straight / name) == f"{CURRENT}/{name}"
        assert (straight / name).read_bytes() == (model_files(straight) / name).read_bytes()


def test_flat_model_folders_load_and_resume_into_generations(straight: Path, tmp_path: Path) -> None:
    demo = ROOT / "models" / "demo"
    if (demo / WEIGHTS_NAME).is_file():  # the shipped flat model
        assert model_files(demo) == demo and load_model(demo, device="cpu")[1].iterations > 0
    # a model of the old flat layout: the files of iteration 4 at the top level, no pointer
    flat = tmp_path / "flat"
    train(_cfg(tmp_path / "four", 4), progress=False)
    shutil.copytree(model_files(tmp_path / "four"), flat)
    assert model_files(flat) == flat and load_model(flat, device="cpu")[1].iterations == 4
    # a copy made with links followed (shutil.copytree, zip): `current/` is a real folder, read flat
    copied = tmp_path / "copied"
    shutil.copytree(tmp_path / "four", copied)
    assert not (copied / CURRENT).is_symlink() and load_model(copied, device="cpu")[1].iterations == 4
    for folder in (flat, copied):
        train(_cfg(folder, 6, resume=True, model_config=None), progress=False)
        assert (folder / CURRENT).is_symlink() and all((folder / n).is_symlink() for n in FILES)
        assert _same_weights(folder, straight)


def test_a_broken_pointer_is_named(straight: Path, tmp_path: Path) -> None:
    from renderer.errors import ModelError

    half = tmp_path / "half"
    half.mkdir()
    (half / CURRENT).symlink_to(f"{GENERATIONS}/00000006-abcdef")  # copied without its checkpoints/ folder
    with pytest.raises(ModelError, match=r"current points to checkpoints/00000006-abcdef, which is missing"):
        load_model(half, device="cpu")


# ---------------------------------------------------------------- resume after Ctrl-C is bit-identical

@pytest.mark.parametrize("threads, sig", [("1", signal.SIGINT), ("default", signal.SIGINT), ("1", signal.SIGTERM)])
def test_resume_after_a_real_sigint_equals_an_uninterrupted_run(threads: str, sig: int, tmp_path: Path) -> None:
    """SIGINT lands in the middle of an iteration; the run finishes that iteration, checkpoints it, exits 130.
    Before, the RNG had already been advanced for the cut-off iteration and the resumed run differed.
    SIGTERM (a farm's cancel) does the same, then ends as SIGTERM would (143 under the CLI).
    The resumed run is given no --threads: it keeps the model's own (the thread count changes the rounding)."""
    out, progress = tmp_path / "split", tmp_path / "progress"
    proc = _start(tmp_path, out, 1000, threads=threads, progress=progress)
    end = time.monotonic() + 300
    while not (progress.is_file() and int(progress.read_text() or 0) >= 3):
        assert proc.poll() is None and time.monotonic() < end, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        time.sleep(0.02)
    proc.send_signal(sig)
    assert proc.wait(timeout=300) in ((130,) if sig == signal.SIGINT else (-signal.SIGTERM, 143))
    stopped = load_model_card(out).iterations
    assert 3 <= stopped < 1000 and json.loads((out / STATE_NAME).read_text())["iteration"] == stopped
    target = stopped + 3
    train(_cfg(out, target, resume=True, model_config=None, threads=None), progress=False)
    whole = tmp_path / "straight"
    train(_cfg(whole, target, threads=None if threads == "default" else 1), progress=False)
    assert _same_weights(out, whole)
    assert torch.equal(load_file(str(out / OPTIMIZER_NAME))["loss.history"],
                       load_file(str(whole / OPTIMIZER_NAME))["loss.history"])


def test_safetensors_bytes_are_the_same_in_every_process(tmp_path: Path) -> None:
    """The library writes its metadata map in hash order, different per process; the card's weights
    SHA-256 must not depend on it. Four interpreters save the same tensors with two metadata keys."""
    code = ("import hashlib, torch; from renderer.checkpoint import safetensors_bytes; "
            "b = safetensors_bytes({'w': torch.arange(6.0).reshape(2, 3), 'b': torch.zeros(3)}, "
            "{'format': 'doppel-test', 'arch': 'lite', 'scale': '2'}); print(hashlib.sha256(b).hexdigest())")
    shas = {subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
            for _ in range(4)}
    assert len(shas) == 1, f"the same tensors saved as {len(shas)} different byte strings"
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes({"w": torch.arange(6.0).reshape(2, 3)}, {"format": "doppel-test", "arch": "lite"}))
    with safe_open(str(path), "pt") as st:  # the library reads it back: metadata and tensor as saved
        assert st.metadata() == {"format": "doppel-test", "arch": "lite"}
        assert torch.equal(st.get_tensor("w"), torch.arange(6.0).reshape(2, 3))
