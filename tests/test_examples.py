"""Every script in examples/ runs and does what its docstring says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from renderer import media
from tests.model_fixtures import ROOT, face_clip, trained_model


def test_swap_clip_example_writes_a_labelled_swapped_clip(tmp_path: Path) -> None:
    src = face_clip(tmp_path / "in.mp4", frames=12)
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "swap_clip.py"), str(src), str(trained_model()),
                           str(out)], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "12/12 frames swapped" in proc.stdout
    info = media.probe(out)
    assert info.frames == 12
    import av

    with av.open(str(out)) as c:
        assert "SYNTHETIC MEDIA" in c.metadata.get("comment", "")


def test_matte_pass_example_writes_the_matte_beside_the_output(tmp_path: Path) -> None:
    src = face_clip(tmp_path / "in.mp4", frames=6)
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "matte_pass.py"), str(src), str(trained_model()),
                           str(out)], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "6/6 frames swapped" in proc.stdout and "out.matte.mov: 6 frames" in proc.stdout
    alphas = media.decode_matte(tmp_path / "out.matte.mov")
    assert len(alphas) == media.probe(out).frames == 6 and all(a.max() == 1023 for a in alphas)


def test_cut_sequence_example_keeps_the_frame_numbers(tmp_path: Path) -> None:
    from tests.media.test_sequences import ffmpeg
    from tests.media_factory import make_numbered_clip

    clip = make_numbered_clip(tmp_path / "n.mkv", 6, 96, 64, codec="ffv1")
    (tmp_path / "plates").mkdir()
    ffmpeg("-i", str(clip), "-pix_fmt", "gbrpf32le", "-c:v", "exr", "-format", "half", "-start_number", "1001",
           str(tmp_path / "plates" / "shot.%04d.exr"))
    out = tmp_path / "cut" / "shot.%04d.exr"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "cut_sequence.py"),
                           str(tmp_path / "plates" / "shot.%04d.exr"), "1003", "1005", str(out)],
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{out}: frames 1003-1005 (3 files, exr half)"
    assert sorted(p.name for p in out.parent.iterdir()) == ["shot.1003.exr", "shot.1004.exr", "shot.1005.exr"]
