"""What a `doppel` process imports: the commands that need no model never import torch
(over a second of start-up), and `doppel swap` never imports it at all: its network runs in a
model process of its own (renderer.model_process), which a refused command does not leave behind."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from tests.media_factory import cached_clip

# Runs argv through the CLI in a fresh interpreter, then prints the torch modules it imported.
_CHILD = """
import json, sys
from renderer.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def child(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def clip() -> Path:
    return cached_clip("startup-h264", frames=24, width=160, height=96, fps=Fraction(24), codec="h264",
                       audio=True, suffix=".mp4")


def test_help_probe_trim_verify_never_import_torch(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "first.mp4"
    runs = {
        "--help": child(["--help"]),
        "swap --help": child(["swap", "--help"]),
        "probe": child(["probe", str(clip), "--json"]),
        "trim": child(["trim", str(clip), "--frames", "0-11", "--out", str(out)]),
        "verify": child(["verify", str(out)]),
        "presets list": child(["presets", "list"]),
    }
    assert out.is_file()
    assert runs["probe"]["code"] == 0 and runs["trim"]["code"] == 0
    assert runs["verify"]["code"] == 2  # trim output carries no manifest: a clear verdict, not a crash
    assert {name: r["torch"] for name, r in runs.items()} == {name: [] for name in runs}


def test_swap_model_card_is_read_without_torch() -> None:
    """Reading and checking a model card (what `swap` does before any frame) needs no torch:
    ModelConfig lives outside renderer.model."""
    code = ("import sys; from renderer.modelcard import load_model_card; from tests.model_fixtures import "
            "trained_model; card = load_model_card(trained_model()); "
            "print(card.config.input_size, any(m.split('.')[0] == 'torch' for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    size, torch_imported = proc.stdout.split()
    assert int(size) >= 16 and torch_imported == "False"


def _model_processes() -> set[int]:
    """Pids of the running `renderer.model_process` children (zombies, already exited, excluded)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if b"renderer.model_process" in (proc / "cmdline").read_bytes() and \
                    (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.add(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def test_swap_runs_its_network_in_a_model_process_and_ends_it(clip: Path, tmp_path: Path) -> None:
    from tests.model_fixtures import trained_model

    before = _model_processes()
    out = tmp_path / "out.mp4"
    done = child(["swap", str(clip), "--model", str(trained_model()), "--out", str(out), "--no-progress"])
    assert done["code"] == 0 and out.is_file()
    assert done["torch"] == []  # in this process: none (the model process imported it)
    refused = child(["swap", str(clip), "--model", str(trained_model()), "--out", str(out), "--no-progress"])
    assert refused["code"] == 2  # OUT exists: refused after the model process was spawned ...
    bad_option = child(["swap", str(clip), "--no-such-option"])
    assert bad_option["code"] == 2  # ... and by argparse, before any command code ran
    assert _model_processes() - before == set()  # ... none of the three left one running


def _maps_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads a process's mapped libraries from /proc")
def test_the_model_process_imports_the_runtime_the_command_line_asks_for() -> None:
    """`--runtime openvino` or `onnxruntime` (or auto on the CPU) spares the model process torch's
    import (~1.5 CPU s); torch, asked for, is there; values the command will refuse count as auto."""
    from renderer.cli import _model_settings
    from renderer.model_process import ModelProcess
    from renderer.modelcard import load_model_card
    from tests.model_fixtures import trained_model

    asked = _model_settings(["swap", "c.mp4", "--runtime", "torch", "--precision=fp32", "--runtime=onnxruntime"])
    assert asked == {"runtime": "onnxruntime", "precision": "fp32", "device": None}
    assert _model_settings(["swap", "c.mp4"]) == {"runtime": "auto", "precision": "auto", "device": None}
    card = load_model_card(trained_model())
    cases = [  # what the command line gave, the runtime the load then asks for, libtorch mapped (None: either)
        ({"runtime": "onnxruntime", "precision": "fp32", "device": "cpu"}, "onnxruntime", False),
        ({"runtime": "openvino", "precision": "fp32", "device": "cpu"}, "openvino", False),
        ({"runtime": "auto", "precision": "auto", "device": None}, "auto", False),  # auto on this CPU: OpenVINO
        ({"runtime": "torch", "precision": "fp32", "device": "cpu"}, "torch", True),
        ({"runtime": "nonsense", "precision": "fp32", "device": None}, "auto", None),  # the child still loads
    ]
    for settings, load_runtime, torch_loaded in cases:
        proc = ModelProcess.spawn(**settings)  # type: ignore[arg-type]
        try:
            ready = proc.load(trained_model(), "cpu", card, False, 8, "fp32", load_runtime).ready()
            if torch_loaded is not None:
                want = "openvino" if load_runtime == "auto" else load_runtime
                assert ready["runtime"] == want and _maps_torch(proc._proc.pid) is torch_loaded, settings
        finally:
            proc.close()


# Runs the CLI as the `doppel` program does (main() reading sys.argv), then prints the scheduling
# policy the process's main thread ended up under.
_PROGRAM = """
import json, os, sys
from renderer.cli import main
sys.argv = ["doppel", *sys.argv[1:]]
try:
    code = main() if os.environ.get("AS_LIBRARY") != "1" else main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "batch": os.sched_getscheduler(0) == os.SCHED_BATCH}))
"""


def policy(argv: list[str], **env: str) -> dict:
    import os

    proc = subprocess.run([sys.executable, "-c", _PROGRAM, *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")
def test_long_running_commands_run_under_sched_batch_and_others_keep_the_default(clip: Path, tmp_path: Path) -> None:
    def trim(name: str) -> list[str]:
        return ["trim", str(clip), "--frames", "0-5", "--out", str(tmp_path / name)]

    assert policy(trim("a.mp4")) == {"code": 0, "batch": True}
    assert policy(trim("b.mp4"), DOPPEL_SCHED="normal") == {"code": 0, "batch": False}  # the documented opt-out
    assert policy(trim("c.mp4"), AS_LIBRARY="1") == {"code": 0, "batch": False}  # a host calling main(argv) keeps its own
    assert policy(["probe", str(clip)]) == {"code": 0, "batch": False}  # quick commands: nothing to gain
