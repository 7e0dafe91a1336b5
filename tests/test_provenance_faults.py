"""Provenance under faults: bad signing identities, failed signing, corrupt manifests.

Every fault is real: key pairs and expired certificates made with `cryptography`, a full
tmpfs while signing, a source that is an MPEG-TS stream named `.mp4`, single flipped bytes
of a signed MP4 (every byte of its manifest box, a sample of the rest) and of an MXF's
sidecar manifest, checked by the C2PA SDK itself.
"""

from __future__ import annotations

import datetime as dt
import random
import struct
import subprocess
import time
from pathlib import Path

import pytest

from renderer import provenance as prov
from renderer.cli import main as cli_main
from renderer.errors import InputError, ProvenanceError
from tests.faults import fill_disk, make_chain, tmpfs
# The signing fixtures (a local chain, a source clip, a claim) are test_provenance's own.
from tests.test_provenance import claim, encode, identity, keys, source  # noqa: F401

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")  # the C2PA manifest box of ISO BMFF


def _preset(chain: Path, key: Path) -> dict[str, str]:
    return {"cert": str(chain), "key": str(key)}


# ------------------------------------------------------------------ identity checked up front


def test_mismatched_key_pair_is_refused_when_resolved(tmp_path: Path, keys: prov.LocalKeys) -> None:
    other = prov.init_keys(tmp_path / "other")
    with pytest.raises(InputError, match="does not belong to the first certificate"):
        prov.resolve_signing_identity(_preset(keys.cert_chain, other.key), {})
    with pytest.raises(InputError, match="does not belong"):  # the env and the keys folder are checked too
        prov.resolve_signing_identity(None, {prov.ENV_CERT: str(keys.cert_chain), prov.ENV_KEY: str(other.key)})
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / prov.CHAIN_NAME).write_bytes(keys.cert_chain.read_bytes())
    (tmp_path / "mixed" / prov.KEY_NAME).write_bytes(other.key.read_bytes())
    with pytest.raises(InputError, match="does not belong"):
        prov.resolve_signing_identity(None, {prov.ENV_KEYS_DIR: str(tmp_path / "mixed")})


def test_expired_and_not_yet_valid_certificates_are_refused(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    chain, key, _ = make_chain(tmp_path / "old", not_before=now - dt.timedelta(days=30),
                               not_after=now - dt.timedelta(days=1))
    with pytest.raises(InputError, match=r"expired on .* UTC \(valid .*\); make a new one"):
        prov.resolve_signing_identity(_preset(chain, key), {})
    chain, key, _ = make_chain(tmp_path / "future", not_before=now + dt.timedelta(days=1))
    with pytest.raises(InputError, match="is not valid before"):
        prov.resolve_signing_identity(_preset(chain, key), {})


def test_malformed_cert_in_a_preset_is_one_line(tmp_path: Path, keys: prov.LocalKeys) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(InputError) as err:
        prov.resolve_signing_identity(_preset(bad, keys.key), {})
    assert "is not a PEM certificate chain" in str(err.value) and "\n" not in str(err.value)


def test_a_certificate_the_c2pa_sdk_will_not_sign_with_is_refused_before_work(tmp_path: Path) -> None:
    chain, key, _ = make_chain(tmp_path / "ca-as-signer", leaf_is_ca=True)
    with pytest.raises(InputError, match="the C2PA SDK will not sign with it: .*self-signed"):
        prov.resolve_signing_identity(_preset(chain, key), {})


# ------------------------------------------------------------------ signing the temp file, renaming the signed one


def _encode_into(target: prov.SignedOutput, frames: int = 6) -> None:
    encode(target.tmp, "h264", frames=frames)


def test_signed_output_renames_only_the_signed_file(tmp_path: Path, claim, identity, keys, source) -> None:
    out = tmp_path / "o.mp4"
    with prov.signed_output(out, claim, identity, source=source) as target:
        _encode_into(target)
        assert not out.exists()  # encoded, not yet signed: nothing under the final name
    assert target.result is not None and target.result.signed and target.result.path == out
    assert prov.verify_media(out, trust_pem=keys.ca_cert).exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"]


def test_signed_output_of_an_mxf_writes_the_sidecar_for_the_final_name(tmp_path: Path, claim, identity, keys) -> None:
    out = tmp_path / "shot.mxf"
    with prov.signed_output(out, claim, identity) as target:
        encode(target.tmp, "dnxhr_hq", frames=2, size=(256, 144))
    assert target.result is not None and target.result.sidecar == tmp_path / "shot.c2pa"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.c2pa", "shot.mxf"]
    assert prov.verify_media(out, trust_pem=keys.ca_cert).exit_code == 0


def test_disk_full_while_signing_leaves_nothing(tmp_path: Path, claim, identity) -> None:
    with tmpfs(tmp_path / "small", size="2m") as small:
        out = small / "o.mp4"
        with pytest.raises(ProvenanceError, match=r"sign .*o\.mp4: could not write the signed o\.mp4: "
                                                  r"No space left on device"):
            with prov.signed_output(out, claim, identity) as target:
                _encode_into(target)
                fill_disk(small, leave=1024)  # the encode fitted; the signed copy does not
        assert sorted(p.name for p in small.iterdir()) == ["ballast.bin"]


def test_a_source_the_sdk_cannot_parse_fails_signing_and_leaves_nothing(tmp_path: Path, claim, identity) -> None:
    ts = tmp_path / "camera.mp4"  # an MPEG-TS stream under an .mp4 name, as some cameras and scripts write
    done = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=0.2",
                           "-c:v", "libx264", "-f", "mpegts", str(ts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "o.mp4"
    with pytest.raises(ProvenanceError, match=r"could not read the source .*camera\.mp4 as the parent"):
        with prov.signed_output(out, claim, identity, source=ts) as target:
            _encode_into(target)
    assert list(out.parent.iterdir()) == []


def test_an_error_while_encoding_leaves_nothing(tmp_path: Path, claim, identity) -> None:
    out = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError), prov.signed_output(out, claim, identity) as target:
        _encode_into(target)
        raise RuntimeError("encoder died")
    assert list(tmp_path.iterdir()) == []


def test_inputs_fingerprint_tells_signed_from_unsigned_and_one_key_from_another(tmp_path, identity) -> None:
    other = prov.init_keys(tmp_path / "other")
    unsigned = prov.identity_fingerprint(None)
    mine = prov.identity_fingerprint(identity)
    theirs = prov.identity_fingerprint(prov.SigningIdentity(other.cert_chain, other.key, "x"))
    assert unsigned == {"signed": False, "cert_sha256": None}
    assert mine["signed"] and len(mine["cert_sha256"]) == 64 and mine != theirs


# ------------------------------------------------------------------ verify: corrupt manifests, odd inputs


def _boxes(data: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(offset, size, type, first 16 payload bytes) of each top-level ISO BMFF box."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size < 8:
            break
        out.append((pos, size, kind, data[pos + 8:pos + 24]))
        pos += size
    return out


def _report(result: prov.VerifyResult) -> dict:
    return {k: v for k, v in result.to_json().items() if k != "path"}


def _flip_each(media: Path, data: bytes, offsets, write_to: Path) -> list[tuple[int, prov.VerifyResult]]:
    results = []
    for off in offsets:
        flipped = bytearray(data)
        flipped[off] ^= 0xFF
        write_to.write_bytes(bytes(flipped))
        results.append((off, prov.verify_media(media)))  # must never raise
    write_to.write_bytes(data)
    return results


def _check_one_line(results, clean: dict) -> None:
    for off, r in results:
        if r.status == "valid":  # a byte that carries nothing (padding): the report must be the same
            assert _report(r) == clean, off
        else:
            assert r.exit_code in (1, 2) and r.messages and all("\n" not in m for m in r.messages), (off, r)


def test_every_byte_of_an_mp4_manifest_flipped_gives_a_verdict_never_a_crash(tmp_path, claim, identity) -> None:
    media = encode(tmp_path / "o.mp4", "h264", frames=4)
    prov.sign_media(media, claim, identity)
    data = media.read_bytes()
    clean = _report(prov.verify_media(media))
    (start, size, _, _), = [b for b in _boxes(data) if b[2] == b"uuid" and b[3] == C2PA_UUID]
    results = _flip_each(media, data, range(start, start + size), media)
    _check_one_line(results, clean)
    header = range(start + 4, start + 24)  # the box type and UUID: no longer a C2PA box, so no manifest
    assert all(r.exit_code == 2 for off, r in results if off in header)
    assert all(r.exit_code in (0, 1) for off, r in results if off not in header)
    corrupt = [r for _, r in results if r.exit_code == 1]
    assert len(corrupt) > size // 2  # most of the box is signed content
    assert any("corrupt or unreadable" in r.messages[0] for r in corrupt)  # the SDK's KeyError path, caught
    rest = [o for o in range(len(data)) if not start <= o < start + size]
    sample = random.Random(16).sample(rest, 150)
    _check_one_line(_flip_each(media, data, sample, media), clean)


def test_every_byte_of_an_mxf_sidecar_flipped_and_a_sample_of_the_media(tmp_path, claim, identity) -> None:
    media = encode(tmp_path / "shot.mxf", "dnxhr_hq", frames=2, size=(256, 144))
    sidecar = prov.sign_media(media, claim, identity).sidecar
    assert sidecar is not None
    clean = _report(prov.verify_media(media))
    manifest = sidecar.read_bytes()
    results = _flip_each(media, manifest, range(len(manifest)), sidecar)
    _check_one_line(results, clean)
    assert all(r.exit_code != 2 for _, r in results)  # a sidecar that is there is never "no manifest"
    data = media.read_bytes()
    flipped = _flip_each(media, data, random.Random(6).sample(range(len(data)), 60), media)
    assert all(r.status == "invalid" for _, r in flipped)  # the data hash covers every media byte


def test_verify_odd_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert cli_main(["verify", str(empty)]) == 2
    assert "empty (0 bytes)" in capsys.readouterr().out
    assert cli_main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    (tmp_path / "shot.mxf").write_bytes(b"mxf")
    (tmp_path / "shot.c2pa").write_bytes(b"")
    assert cli_main(["verify", str(tmp_path / "shot.mxf")]) == 1


def test_an_expired_signer_is_reported_as_expired(tmp_path: Path, claim, capsys) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    chain, key, ca = make_chain(tmp_path / "short", not_after=now + dt.timedelta(seconds=3))
    identity = prov.resolve_signing_identity(_preset(chain, key), {})
    media = encode(tmp_path / "o.mp4", "h264", frames=3)
    prov.sign_media(media, claim, identity)
    time.sleep(max(0.0, (now + dt.timedelta(seconds=5.5) - dt.datetime.now(dt.timezone.utc)).total_seconds()))
    result = prov.verify_media(media, trust_pem=ca)
    assert result.status == "expired" and result.exit_code == 1
    assert any("expired" in m for m in result.messages)
    assert not any("changed after signing" in m for m in result.messages)
    assert cli_main(["verify", str(media)]) == 1
    out = capsys.readouterr().out
    assert "EXPIRED SIGNER" in out and "changed after signing" not in out
