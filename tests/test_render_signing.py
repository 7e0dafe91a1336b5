"""The render node's provenance: a signed render carries a valid C2PA manifest, a render after
`doppel keys init` signs what went out unsigned, and a broken signing identity or a signing failure
fails before any frame / keeps no unsigned file, over the same real edits as tests/test_render.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from renderer.render import RENDER_JSON
from tests.timeline_factory import write_avid_edl
from tests import test_render as render_tests
from tests.test_render import NTSC, cli, edit_file

# The render tests' module fixtures, shared: pytest finds them by name in this module.
work, model, preset, media, env = (render_tests.work, render_tests.model, render_tests.preset, render_tests.media,
                                   render_tests.env)


def test_signed_render_carries_a_valid_manifest(work, media, model, preset, tmp_path, monkeypatch, capsys):
    from renderer.provenance import init_keys, verify_media

    keys = init_keys(tmp_path / "keys")
    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "keys"))
    edit = edit_file(work, media, ".edl")
    out = tmp_path / "out"
    code, stdout, err = cli([edit, "--edl-rate", "24000/1001", "--preset", preset, "--out", out, "--model", model,
                             "--json"], capsys)
    assert code == 0 and "NOT signed" not in err
    entry = json.loads((out / RENDER_JSON).read_text())["clips"][0]
    assert entry["output"]["signed"] is True and entry["output"]["manifest"] == "embedded"
    result = verify_media(Path(entry["output"]["path"]), trust_pem=keys.ca_cert)
    assert result.status == "valid" and result.trusted is True
    assert result.model["card_sha256"] == entry["model"]["card_sha256"]
    assert result.preset_sha256 == entry["preset_sha256"]
    assert [list(r) for r in result.swapped_ranges] == [[0, entry["render_range"]["frames"]]]


def test_render_after_keys_init_signs_what_went_out_unsigned(work, media, model, preset, env, tmp_path, capsys):
    """The inputs hash records signed-or-not and the certificate: `doppel keys init` (as the README
    advises after an unsigned render) makes the re-run render and sign, not say "up to date"."""
    from renderer.cli import main
    from renderer.provenance import verify_media

    edit = edit_file(work, media, ".edl")
    out = tmp_path / "out"
    args = [edit, "--edl-rate", "24000/1001", "--preset", preset, "--out", out, "--model", model, "--json"]
    code, stdout, err = cli(args, capsys)
    assert code == 0 and "NOT signed" in err
    assert main(["keys", "init", "--out", str(tmp_path / "no-keys")]) == 0  # the env's DOPPEL_KEYS_DIR
    capsys.readouterr()
    code, stdout, err = cli(args, capsys)
    summary = json.loads(stdout)
    assert code == 0 and summary["rendered"] == 1 and summary["skipped"] == 0 and "NOT signed" not in err
    assert verify_media(Path(summary["outputs"][0]), trust_pem=tmp_path / "no-keys" / "ca.pem").exit_code == 0
    code, stdout, _ = cli(args, capsys)
    assert code == 0 and json.loads(stdout)["skipped"] == 1  # signed now: up to date
    assert main(["keys", "init", "--force", "--out", str(tmp_path / "no-keys")]) == 0  # a new certificate
    capsys.readouterr()
    code, stdout, _ = cli(args, capsys)
    assert code == 0 and json.loads(stdout)["rendered"] == 1


def test_a_broken_signing_identity_fails_before_any_frame(work, media, model, preset, env, tmp_path, monkeypatch,
                                                          capsys):
    """A key that is not the certificate's, configured by the environment: exit 2, nothing written."""
    from renderer.provenance import init_keys

    one, two = init_keys(tmp_path / "one"), init_keys(tmp_path / "two")
    monkeypatch.setenv("DOPPEL_SIGN_CERT", str(one.cert_chain))
    monkeypatch.setenv("DOPPEL_SIGN_KEY", str(two.key))
    out = tmp_path / "out"
    code, _, err = cli([edit_file(work, media, ".edl"), "--edl-rate", "24000/1001", "--preset", preset, "--out", out,
                        "--model", model], capsys)
    assert code == 2 and "does not belong to the first certificate" in err and "Traceback" not in err
    assert not out.exists()


def test_a_signing_failure_fails_the_clip_and_keeps_no_unsigned_file(work, model, preset, env, tmp_path,
                                                                      monkeypatch, capsys):
    """The source is an MPEG-TS stream named .mp4 (FFmpeg decodes it, the C2PA SDK cannot read it as
    the parent ingredient): the clip fails, and no unsigned file has its final name."""
    from renderer.provenance import init_keys

    init_keys(tmp_path / "keys")
    monkeypatch.setenv("DOPPEL_KEYS_DIR", str(tmp_path / "keys"))
    ts = tmp_path / "camera.mp4"
    done = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=24000/1001",
                           "-frames:v", "30", "-c:v", "libx264", "-f", "mpegts", str(ts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    edit = write_avid_edl(tmp_path / "ts.edl", [("TS", "00:00:00:02", "00:00:00:20", "01:00:00:00", "01:00:00:18",
                                                 str(ts), ["01:00:00:03 GREEN FACESWAP"])], NTSC)
    out = tmp_path / "out"
    code, stdout, err = cli([edit, "--edl-rate", "24000/1001", "--preset", preset, "--out", out, "--model", model,
                             "--json"], capsys)
    summary = json.loads(stdout)
    assert code == 1 and summary["failed"] == 1, err
    assert "could not read the source" in next(iter(summary["errors"].values()))
    assert [p.name for p in (out / "media").iterdir()] == []  # neither the unsigned file nor a temp file
