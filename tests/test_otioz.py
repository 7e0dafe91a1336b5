"""`.otioz` bundles: a private, fresh folder per read, removed afterwards; size-capped; no escapes.

Bundles are written by OpenTimelineIO's own otioz adapter (the round trip `read_edit` must
accept); the hostile ones (a zip bomb, a member naming `../`) are built with `zipfile`.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from renderer import otioz
from renderer.errors import InputError
from renderer.timeline import find_marked_clips, read_edit
from tests.timeline_factory import make_media, standard_edit, write_formats

ROOT = Path(__file__).resolve().parents[1]
READ_AND_WAIT = """
import sys, time
from renderer.timeline import find_marked_clips, read_edit
clips = find_marked_clips(read_edit(sys.argv[1]), sys.argv[1])
print(clips[0].media_path.parent.parent, flush=True)
if len(sys.argv) > 2:
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("otioz")
    tl, _ = standard_edit(make_media(base / "media", Fraction(25)), Fraction(25))
    return write_formats(tl, base / "edits", "cut", (".otioz",))[".otioz"]


def _ours() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(".doppel-otioz.partial-*"))


def test_each_read_unpacks_into_a_new_private_folder(bundle: Path) -> None:
    first, second = otioz.unpack(bundle), otioz.unpack(bundle)
    assert first != second
    for folder in (first, second):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert (folder / "content.otio").is_file()



def test_a_planted_edit_in_the_old_shared_folder_is_not_read(bundle: Path) -> None:
    """Doppel used to trust /tmp/doppel-otioz-<hash of the bundle> if it existed."""
    import hashlib
    import shutil

    planted = Path(tempfile.gettempdir()) / f"doppel-otioz-{hashlib.sha256(bundle.read_bytes()).hexdigest()[:16]}"
    planted.mkdir(exist_ok=True)
    try:
        otio.adapters.write_to_file(otio.schema.Timeline(name="planted"), str(planted / "content.otio"))
        timeline = read_edit(bundle)
        assert timeline.name != "planted"
        clips = find_marked_clips(timeline, bundle)
        assert clips and all(c.media_path.is_file() and c.media_path.parent.parent in _ours() for c in clips)
    finally:
        shutil.rmtree(planted)


def test_the_folder_is_removed_when_the_process_ends(bundle: Path) -> None:
    done = subprocess.run([sys.executable, "-c", READ_AND_WAIT, str(bundle)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder.name.startswith(".doppel-otioz.partial-") and not folder.exists()


def test_a_killed_readers_folder_is_removed_by_the_next_read(bundle: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", READ_AND_WAIT, str(bundle), "wait"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    folder = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert folder.is_dir()  # SIGKILL runs no clean-up
    otioz.unpack(bundle)
    assert not folder.exists()


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.otioz"
    timeline = otio.schema.Timeline(name="bomb")
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("version.txt", "1.0.0")
        zf.writestr("content.otio", otio.adapters.write_to_string(timeline, "otio_json"))
        with zf.open("media/huge.mov", "w") as fh:
            block = bytes(1 << 20)
            for _ in range(100):  # 100 MiB of zeros, about 100 KB packed
                fh.write(block)
    assert bomb.stat().st_size < 1_000_000
    before = _ours()
    with pytest.raises(InputError, match=r"would unpack to 104\.9 MB .* the limit is \d+\.\d MB "
                                         r"\(64 MiB \+ 20x the bundle size\)"):
        read_edit(bomb)
    assert _ours() == before


def test_a_member_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.otioz"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("content.otio", otio.adapters.write_to_string(otio.schema.Timeline(), "otio_json"))
        zf.writestr("../../escaped.txt", "x")
    with pytest.raises(InputError, match="points outside the bundle"):
        read_edit(evil)
    not_zip = tmp_path / "junk.otioz"
    not_zip.write_bytes(b"PK\x03\x04 but not really")
    with pytest.raises(InputError, match="cannot read edit"):
        read_edit(not_zip)


def test_farm_export_of_a_bundle_lists_no_temporary_copies(bundle: Path, tmp_path: Path) -> None:
    """Workers unpack the bundle themselves: its unpacked media are not inputs of the job (they are
    removed when the export ends), and every input the job lists exists afterwards."""
    import yaml

    from renderer import farm
    from tests.test_render import PRESET, make_model

    preset = tmp_path / "small.yaml"
    preset.write_text(PRESET)
    model = make_model(tmp_path / "model")
    out = tmp_path / "job"
    done = subprocess.run([sys.executable, "-m", "renderer.cli", "farm", "export", str(bundle), "--preset",
                           str(preset), "--model", str(model), "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assets = yaml.safe_load((out / farm.ASSET_REFERENCES).read_text())["assetReferences"]["inputs"]
    assert str(bundle.resolve()) in assets["filenames"]
    assert all(Path(p).exists() for p in assets["filenames"] + assets["directories"]), assets
    values = yaml.safe_load((out / farm.PARAMETER_VALUES).read_text())["parameterValues"]
    assert not any(".doppel-otioz." in str(v["value"]) for v in values), values
