"""The CLI under real faults: one line and an exit status, never a traceback, nothing partial left.

Read-only folders are real read-only tmpfs mounts (the tests run as root, which writes through
chmod); a disk that fills while signing is a real per-file size limit (RLIMIT_FSIZE, with
SIGXFSZ ignored so the write fails with EFBIG); kills are real SIGKILL/SIGTERM sent to a real
`doppel swap` process, one of them at a chosen point (the instant after the encode, before signing).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from renderer.atomic import sha256_file
from renderer.cli import main
from renderer.provenance import init_keys, verify_media
from tests.faults import tmpfs
from tests.media_factory import cached_clip
from tests.model_fixtures import trained_model

ROOT = Path(__file__).resolve().parents[2]
# Kills itself with SIGKILL at the chosen point: the encode has finished, signing has not begun.
KILL_BEFORE_SIGNING = """
import os, signal, sys
import renderer.provenance as provenance
provenance.sign_media = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from renderer.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return trained_model()


@pytest.fixture(scope="module")
def clip() -> Path:
    """A short numbered clip with no face: swap passes every frame through (fast), still encoding them all."""
    return cached_clip("faults-cli", frames=12, width=64, height=48, fps=Fraction(25), codec="h264")


@pytest.fixture(scope="module")
def long_clip() -> Path:
    return cached_clip("faults-cli-long", frames=400, width=320, height=240, fps=Fraction(25), codec="h264")


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    """A signing key in a keys folder of this test only."""
    init_keys(tmp_path / "keys")
    env = {k: v for k, v in os.environ.items() if k not in ("DOPPEL_SIGN_CERT", "DOPPEL_SIGN_KEY")}
    return {**env, "DOPPEL_KEYS_DIR": str(tmp_path / "keys")}


def doppel(args: list[object], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "renderer.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


# ------------------------------------------------------------------ outputs that cannot be written


def test_read_only_out_is_one_line_exit_2_for_every_writing_command(tmp_path, clip, model_dir, env, capsys):
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        cases = {
            "trim": ["trim", clip, "--frames", "0-3", "--out", ro / "o.mp4"],
            "swap": ["swap", clip, "--model", model_dir, "--out", ro / "o.mp4"],
            "extract": ["extract", clip, "--out", ro / "faces"],
            "render": ["render", tmp_path / "any.otio", "--preset", "prores_hq", "--out", ro / "render"],
            "farm export": ["farm", "export", tmp_path / "any.otio", "--preset", "prores_hq", "--out", ro / "bundle"],
            "keys init": ["keys", "init", "--out", ro / "keys"],
        }
        for name, argv in cases.items():
            assert main([str(a) for a in argv]) == 2, name
            line = one_line(capsys.readouterr().err)
            assert f"doppel {name.split()[0]}: error:" in line and str(ro) in line, line
            assert "Read-only file system" in line, line
        assert list(ro.iterdir()) == []


def test_out_inside_a_file_is_one_line(tmp_path, clip, model_dir, capsys):
    (tmp_path / "media").mkdir()
    blocker = tmp_path / "media" / "x.mp4"
    blocker.write_bytes(b"a file, not a folder")
    for argv in (["trim", clip, "--frames", "0-3", "--out", blocker / "o.mp4"],
                 ["swap", clip, "--model", model_dir, "--out", blocker / "o.mp4"],
                 ["render", tmp_path / "any.otio", "--preset", "prores_hq", "--out", blocker / "r"],
                 ["keys", "init", "--out", blocker / "k"]):
        assert main([str(a) for a in argv]) == 2
        assert "x.mp4 is a file, not a folder" in one_line(capsys.readouterr().err)
    assert blocker.read_bytes() == b"a file, not a folder"


def test_existing_out_is_refused_without_force(tmp_path, clip, model_dir, env, monkeypatch, capsys):
    monkeypatch.setenv("DOPPEL_KEYS_DIR", env["DOPPEL_KEYS_DIR"])
    for command in (["trim", clip, "--frames", "0-3"], ["swap", clip, "--model", model_dir]):
        out = tmp_path / f"{command[0]}.mp4"
        out.write_bytes(b"last week's take")
        assert main([str(a) for a in [*command, "--out", out]]) == 2
        assert "already exists; pass --force" in one_line(capsys.readouterr().err)
        assert out.read_bytes() == b"last week's take"
        assert main([str(a) for a in [*command, "--out", out, "--force", "--json"]]) == 0
        capsys.readouterr()
        assert out.read_bytes() != b"last week's take"


def test_disk_full_while_signing_is_one_line_exit_1_and_leaves_nothing(tmp_path, clip, model_dir, env):
    """The per-file limit is set between the encoded file's size and the signed file's (the same
    encode, done first without a key, gives the size): the encode fits, the signed copy does not."""
    probe_env = {**env, "DOPPEL_KEYS_DIR": str(tmp_path / "no-keys")}
    sized = tmp_path / "sized" / "o.mp4"
    assert doppel(["swap", clip, "--model", model_dir, "--out", sized, "--no-progress"], probe_env).returncode == 0
    limit = sized.stat().st_size + 512  # the C2PA manifest adds ~4 KB

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out" / "o.mp4"
    done = doppel(["swap", clip, "--model", model_dir, "--out", out, "--no-progress"], env, preexec_fn=small_disk)
    assert done.returncode == 1, done.stderr
    line = one_line(done.stderr)
    assert "sign" in line and "o.mp4" in line and "File too large" in line, line
    assert list(out.parent.iterdir()) == []


def test_disk_full_while_encoding_is_one_line_exit_1_and_leaves_nothing(tmp_path, long_clip, env):
    with tmpfs(tmp_path / "small", size="256k") as small:
        for codec, name in (("h264", "o.mp4"), ("prores_hq", "o.mov")):
            done = doppel(["trim", long_clip, "--frames", "0-399", "--codec", codec, "--out", small / name,
                           "--quiet"], env)
            assert done.returncode == 1, done.stderr
            line = one_line(done.stderr)
            assert "No space left on device" in line and name in line, line
            assert list(small.iterdir()) == []


# ------------------------------------------------------------------ kills


def test_kill_between_encode_and_signing_leaves_no_final_named_file(tmp_path, clip, model_dir, env):
    out = tmp_path / "o.mp4"
    killed = subprocess.run([sys.executable, "-c", KILL_BEFORE_SIGNING, "swap", str(clip), "--model", str(model_dir),
                             "--out", str(out), "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()  # the encoded, unsigned file exists only under its temp name
    assert len(leftovers(tmp_path)) == 1
    done = doppel(["swap", clip, "--model", model_dir, "--out", out, "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    assert leftovers(tmp_path) == []  # the dead run's temp file was cleared by the next run of the same --out
    assert verify_media(out, trust_pem=tmp_path / "keys" / "ca.pem").exit_code == 0


def _start_swap(long_clip: Path, model_dir: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "renderer.cli", "swap", str(long_clip), "--model", str(model_dir),
                             "--out", str(out), "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not leftovers(out.parent):  # encoding has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


def test_sigterm_unwinds_like_ctrl_c(tmp_path, long_clip, model_dir, env):
    """The Blender add-on's Cancel sends SIGTERM: the temp file goes, exit 143, one line."""
    out = tmp_path / "o.mp4"
    proc = _start_swap(long_clip, model_dir, out, env)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM); no partial file kept" in err and "Traceback" not in err
    assert not out.exists() and leftovers(tmp_path) == []


def test_sigkill_leftovers_are_cleared_by_the_next_run(tmp_path, long_clip, clip, model_dir, env):
    out = tmp_path / "o.mp4"
    proc = _start_swap(long_clip, model_dir, out, env)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    left = leftovers(tmp_path)
    assert left and not out.exists()
    before = sha256_file(clip)
    done = doppel(["swap", clip, "--model", model_dir, "--out", out, "--json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signed"] is True
    assert leftovers(tmp_path) == [] and sha256_file(clip) == before
