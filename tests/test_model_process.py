"""renderer.model_process: the swap network in a child process gives the in-process outputs,
bit for bit, and its faults (bad weights, a cut message, a parent that dies) end cleanly."""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from renderer.checkpoint import model_files
from renderer.errors import ModelError
from renderer.model import WEIGHTS_NAME
from renderer.model_process import native_bf16, read_message, write_message
from renderer.swap import SwapModel
from tests.model_fixtures import trained_model

ROOT = Path(__file__).resolve().parents[1]


def _crops(n: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_child_outputs_equal_in_process_outputs(direction: str) -> None:
    here = SwapModel(trained_model(), direction, "cpu").with_threads(1)
    child = SwapModel(trained_model(), direction, "cpu", process=True).with_threads(1)
    try:
        crops = _crops(11)  # a full batch of 8 and a padded one of 3
        for mine, theirs in zip(here.swap_and_rebuild(crops), child.swap_and_rebuild(crops)):
            assert (mine is None) == (theirs is None)
            if mine is not None:
                assert mine.dtype == theirs.dtype == np.float32 and mine.shape == theirs.shape
                assert np.array_equal(mine, theirs)
        assert np.array_equal(here(crops[:3])[0], child(crops[:3])[0])
        assert not child.in_process and child.device == "cpu"
        from renderer.pipeline import since_process_start

        now = since_process_start()  # seconds since this (pytest's) process started, however long it has run
        assert child.loaded_at is not None and now is not None and 0 < child.loaded_at <= now
    finally:
        here.restore_threads()
        child.close()


def test_batches_in_flight_answer_in_any_order() -> None:
    """Requests go out at once and answers are read in order, kept until asked for: the big
    crops and answers never leave both sides writing (no deadlock), whatever the order of use."""
    here = SwapModel(trained_model(), "a2b", "cpu").with_threads(1)
    child = SwapModel(trained_model(), "a2b", "cpu", process=True).with_threads(1)
    try:
        first, second = _crops(16), _crops(40)[24:]
        take_first = child.submit(first, rebuild=True)
        take_second = child.submit(second, rebuild=False)  # sent while the first is still in the child
        got_second, got_first = take_second(), take_first()
        assert len(got_first) == 2 and len(got_second) == 1
        assert np.array_equal(got_second[0][0], here(second)[0])
        assert np.array_equal(got_first[1][0], here.swap_and_rebuild(first)[2])
    finally:
        here.restore_threads()
        child.close()


def _real_crops(n: int) -> np.ndarray:
    """(n, 64, 64, 3) uint8 aligned crops of person A (the presenter's faceset), as a swap cuts them."""
    import cv2

    from tests.model_fixtures import facesets

    files = sorted(facesets()[0].rglob("*.png"))[:n]
    return np.stack([cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (64, 64),
                                interpolation=cv2.INTER_AREA) for f in files])


@pytest.mark.parametrize("runtime", ["torch", pytest.param("openvino", marks=pytest.mark.skipif(
    not native_bf16("cpu"), reason="OpenVINO runs bf16 only where the CPU computes it (AVX512-BF16, AMX)"))])
def test_bf16_is_deterministic_and_within_a_few_code_values_of_fp32(runtime: str) -> None:
    """precision bf16 (torch: bfloat16 channels-last weights; OpenVINO: its bf16 inference
    precision): the same in the child as in-process, bit for bit, and on real crops of person A
    within 5 code values of torch's fp32 everywhere (3.5 measured), under 0.5 on average (0.3)."""
    fp32 = SwapModel(trained_model(), "a2b", "cpu", runtime="torch").with_threads(1)
    bf16 = SwapModel(trained_model(), "a2b", "cpu", precision="bf16", runtime=runtime).with_threads(1)
    child = SwapModel(trained_model(), "a2b", "cpu", process=True, precision="bf16", runtime=runtime).with_threads(1)
    try:
        crops = _real_crops(12)
        exact, fast, there = fp32.swap_and_rebuild(crops), bf16.swap_and_rebuild(crops), child.swap_and_rebuild(crops)
        assert fp32.precision == "fp32" and bf16.precision == "bf16" and child.precision == "bf16"
        assert bf16.runtime == child.runtime == runtime
        for k in (0, 2):  # swapped (decoder B), rebuilt (decoder A)
            assert np.array_equal(fast[k], there[k])
            diff = np.abs(fast[k] - exact[k]) * 255
            assert fast[k].dtype == np.float32 and 0 < diff.mean() < 0.5 and diff.max() < 5, (k, diff.mean(), diff.max())
    finally:
        fp32.restore_threads()
        child.close()


def test_precision_auto_follows_the_processor_and_bad_values_are_refused() -> None:
    import torch

    from renderer.errors import InputError
    from renderer.model_process import native_bf16, resolve_precision

    cpu = torch.device("cpu")
    flags = Path("/proc/cpuinfo").read_text().split()
    assert native_bf16(cpu) == ("amx_bf16" in flags or "avx512_bf16" in flags)
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(InputError, match="allowed: auto, fp32, bf16"):
        resolve_precision("fp16", cpu)


def test_upscaler_runs_in_the_child_too(tmp_path: Path) -> None:
    from renderer.upscale import UpscaleTrainConfig, train_upscaler
    from tests.model_fixtures import facesets

    model = tmp_path / "model"
    shutil.copytree(trained_model(), model)
    train_upscaler(UpscaleTrainConfig(model_dir=model, faceset_b=facesets()[1], iterations=2, batch=2, lr=1e-3,
                                      channels=8, blocks=1, threads=1), progress=False)
    here, child = SwapModel(model, "a2b", "cpu"), SwapModel(model, "a2b", "cpu", process=True)
    try:
        assert here.has_upscaler and child.has_upscaler and child.upscale_factor == 2
        x = _crops(3).astype(np.float32) / 255
        big = child.upscale(x)
        assert big.shape == (3, 128, 128, 3) and np.array_equal(big, here.upscale(x))
    finally:
        child.close()
    b2a = SwapModel(model, "b2a", "cpu", process=True)  # B's upscaler does not upscale A
    with pytest.raises(ModelError, match="no face upscaler"):
        b2a.upscale(x)
    b2a.close()


def test_corrupt_weights_fail_the_first_use_and_the_child_ends(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(trained_model(), bad, symlinks=True)
    target = model_files(bad) / WEIGHTS_NAME
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.unlink()
    target.write_bytes(bytes(data))
    model = SwapModel(bad, "a2b", "cpu", process=True)  # the card is fine: no error yet
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        model(_crops(1))
    assert model._process is not None and model._process._proc.wait(30) == 1
    model.close()


def test_cut_messages_are_model_errors_and_end_of_input_is_none() -> None:
    buf = io.BytesIO()
    write_message(buf, {"op": "decode"}, (np.arange(12, dtype=np.float32).reshape(3, 4),))
    whole = buf.getvalue()
    header, (array,) = read_message(io.BytesIO(whole))
    assert header == {"op": "decode"} and np.array_equal(array, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert read_message(io.BytesIO(b"")) is None
    for cut in (2, 4 + 3, len(whole) - 1):  # inside the length, the header, the array
        with pytest.raises(ModelError, match="cut short"):
            read_message(io.BytesIO(whole[:cut]))
    assert struct.unpack("<I", whole[:4])[0] == len(whole) - 4 - 48


PARENT = """
import sys, time
from pathlib import Path
from renderer.swap import SwapModel
m = SwapModel(Path(sys.argv[1]), "a2b", "cpu", process=True)
m.ready()
print(m._process._proc.pid, flush=True)
time.sleep(600)
"""


def test_child_exits_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(trained_model())], stdout=subprocess.PIPE,
                              cwd=ROOT, text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        os.kill(parent.pid, signal.SIGKILL)  # a real kill: no cleanup code runs in the parent
        parent.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.1)
        assert not _alive(child), "the model process outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited and waiting for init to reap it, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_child_leaves_with_status_0_once_its_input_ends() -> None:
    """At the end of input the child leaves (os._exit, skipping the interpreter's teardown) with
    status 0, and the answer it owed had arrived whole before."""
    child = SwapModel(trained_model(), "a2b", "cpu", process=True).with_threads(1)
    crops = _crops(9)
    answer = child.submit(crops, rebuild=True)()
    assert len(answer) == 2 and answer[0][0].shape == (9, 64, 64, 3)
    proc = child._process._proc  # type: ignore[union-attr]
    child.close()
    assert proc.returncode == 0
