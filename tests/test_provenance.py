"""Provenance: local keys, synthetic label, C2PA signing (embedded and MXF sidecar) and verification.

Media are real encodes made here with `renderer.media.VideoWriter` (H.264 MP4, ProRes MOV,
DNxHR MXF), small and short. Nothing is mocked: the C2PA SDK signs and validates for real.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from renderer import provenance as prov
from renderer.atomic import sha256_file
from renderer.cli import main as cli_main
from renderer.errors import InputError, ProvenanceError
from renderer.media import VideoWriter

CARD = "c" * 64
PRESET = "d" * 64


def encode(path: Path, codec: str, frames: int = 6, metadata: dict[str, str] | None = None,
           size: tuple[int, int] = (64, 48)) -> Path:
    """A short clip whose frame i is a flat grey of 20*i (so every frame differs)."""
    width, height = size
    with VideoWriter(path, width=width, height=height, fps=Fraction(25), codec=codec, metadata=metadata) as out:
        for i in range(frames):
            out.write(np.full((height, width, 3), 20 * i + 10, np.uint8))
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def mdat_payload(path: Path) -> tuple[int, int]:
    """(offset, size) of the first top-level `mdat` box's payload in an MP4/MOV."""
    data = path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = len(data) - pos
        if kind == b"mdat":
            return pos + header, size - header
        pos += size
    raise AssertionError(f"no mdat box in {path}")


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> prov.LocalKeys:
    return prov.init_keys(tmp_path_factory.mktemp("keys"), common_name="Test Studio Node")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> prov.LocalKeys:
    return prov.init_keys(tmp_path_factory.mktemp("other"), common_name="Someone Else")


@pytest.fixture(scope="module")
def identity(keys: prov.LocalKeys) -> prov.SigningIdentity:
    return prov.SigningIdentity(keys.cert_chain, keys.key, "test")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode(tmp_path_factory.mktemp("src") / "plate.mp4", "h264", frames=8)


@pytest.fixture()
def claim(source: Path) -> prov.SwapClaim:
    return prov.make_claim(source, model_name="alice-to-bob", identities=["Alice Example", "Bob Example"],
                           model_card_sha256=CARD, rights="written consent of both, 2026-10-01, ref C-17",
                           swapped_ranges=[(4, 6), (0, 2)], preset_sha256=PRESET)


# ------------------------------------------------------------------ keys


def test_init_keys_makes_a_c2pa_shaped_chain(keys: prov.LocalKeys) -> None:
    assert stat.S_IMODE(keys.key.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(keys.cert_chain.read_bytes())
    ca = x509.load_pem_x509_certificate(keys.ca_cert.read_bytes())
    assert len(chain) == 2 and chain[1] == ca  # leaf first, then the CA
    leaf = chain[0]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.issuer == ca.subject
    assert not list(keys.key.parent.glob(".*partial*"))


def test_init_keys_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    first = prov.init_keys(tmp_path)
    before = first.key.read_bytes()
    with pytest.raises(InputError, match="already exist.*--force"):
        prov.init_keys(tmp_path)
    assert first.key.read_bytes() == before
    second = prov.init_keys(tmp_path, overwrite=True)
    assert second.key.read_bytes() != before
    assert stat.S_IMODE(second.key.stat().st_mode) == 0o600


def test_resolve_identity_precedence(tmp_path: Path, keys: prov.LocalKeys, other_keys: prov.LocalKeys) -> None:
    keys_dir_env = {"DOPPEL_KEYS_DIR": str(keys.key.parent)}
    found = prov.resolve_signing_identity(None, keys_dir_env)
    assert found is not None and found.key_pem == keys.key and "keys folder" in found.origin
    env = {**keys_dir_env, "DOPPEL_SIGN_CERT": str(other_keys.cert_chain), "DOPPEL_SIGN_KEY": str(other_keys.key)}
    found = prov.resolve_signing_identity(None, env)
    assert found is not None and found.key_pem == other_keys.key and found.origin == "environment"
    preset = {"cert": other_keys.cert_chain.name, "key": other_keys.key.name}
    found = prov.resolve_signing_identity(preset, env, base_dir=other_keys.key.parent)
    assert found is not None and found.origin == "preset" and found.cert_chain_pem == other_keys.cert_chain
    assert prov.resolve_signing_identity(None, {"DOPPEL_KEYS_DIR": str(tmp_path)}) is None


@pytest.mark.parametrize(("preset", "env", "message"), [
    ({"cert": "a.pem", "kye": "b.key"}, {}, "signing.kye.*did you mean 'key'"),
    ({"cert": "a.pem"}, {}, "missing: key"),
    ({"cert": "nope.pem", "key": "nope.key"}, {}, "cert file .*nope.pem.* does not exist"),
    (None, {"DOPPEL_SIGN_CERT": "x.pem"}, "DOPPEL_SIGN_CERT but not DOPPEL_SIGN_KEY"),
])
def test_resolve_identity_rejects_broken_config(tmp_path: Path, preset, env, message) -> None:
    with pytest.raises(InputError, match=message):
        prov.resolve_signing_identity(preset, {"DOPPEL_KEYS_DIR": str(tmp_path), **env}, base_dir=tmp_path)


def test_key_that_does_not_match_the_chain_is_refused(tmp_path: Path, claim, keys, other_keys) -> None:
    media = encode(tmp_path / "out.mp4", "h264")
    before = sha256_file(media)
    mixed = prov.SigningIdentity(keys.cert_chain, other_keys.key, "test")
    with pytest.raises(InputError, match="does not belong to the first certificate"):
        prov.sign_media(media, claim, mixed)
    assert sha256_file(media) == before


# ------------------------------------------------------------------ claim and label


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"swapped_ranges": [(5, 5)]}, "half-open"),
    ({"swapped_ranges": [(-1, 3)]}, "half-open"),
    ({"model_card_sha256": "xyz"}, "model card sha256 must be 64"),
    ({"rights": ""}, "states no rights"),
])
def test_make_claim_rejects_bad_input(source: Path, kwargs, message) -> None:
    args = {"model_name": "m", "identities": ["A"], "model_card_sha256": CARD, "rights": "ok",
            "swapped_ranges": [(0, 1)], **kwargs}
    with pytest.raises(InputError, match=message):
        prov.make_claim(source, **args)


def test_claim_hashes_source_and_sorts_ranges(claim: prov.SwapClaim, source: Path) -> None:
    assert claim.source_sha256 == sha256_file(source)
    assert claim.swapped_ranges == ((0, 2), (4, 6))


def test_label_metadata_is_written_into_the_container_and_survives_signing(tmp_path, claim, identity) -> None:
    label = prov.label_metadata(claim, signed=True)
    media = encode(tmp_path / "labelled.mp4", "h264", metadata=label)
    prov.sign_media(media, claim, identity)
    with av.open(str(media)) as container:
        comment = container.metadata.get("comment", "")
        description = container.metadata.get("description", "")
    assert "SYNTHETIC MEDIA" in comment and "Doppel".lower() in comment.lower()
    assert "Alice Example" in comment and "Bob Example" in comment and CARD in comment
    assert "0-1, 4-5" in description and claim.source_sha256 in description
    unsigned = prov.label_metadata(claim, signed=False)["comment"]
    assert "UNSIGNED" in unsigned


# ------------------------------------------------------------------ sign and verify


@pytest.mark.parametrize(("name", "codec"), [("out.mp4", "h264"), ("out.mov", "prores_hq")])
def test_sign_and_verify_embedded(tmp_path, name, codec, claim, identity, keys, other_keys, source) -> None:
    source_hash = sha256_file(source)
    media = encode(tmp_path / name, codec, metadata=prov.label_metadata(claim, signed=True))
    frames = count_frames(media)
    result = prov.sign_media(media, claim, identity, source=source)
    assert result.signed and result.manifest == "embedded" and result.warning is None
    assert result.signer == "Test Studio Node"
    assert sha256_file(source) == source_hash  # source media never modified
    assert count_frames(media) == frames  # still plays
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp left, no sidecar

    trusted = prov.verify_media(media, trust_pem=keys.ca_cert)
    assert (trusted.status, trusted.trusted, trusted.exit_code) == ("valid", True, 0)
    assert trusted.manifest == "embedded"
    assert trusted.signer == "Test Studio Node"
    assert trusted.digital_source_type == prov.DIGITAL_SOURCE_TYPE
    assert trusted.source["sha256"] == source_hash and trusted.source["ingredient"] == "plate.mp4"
    assert trusted.model["identities"] == ["Alice Example", "Bob Example"]
    assert trusted.model["card_sha256"] == CARD and "consent" in trusted.model["rights"]
    assert trusted.preset_sha256 == PRESET
    assert trusted.swapped_ranges == ((0, 2), (4, 6))
    assert trusted.signed_at and not trusted.timestamp_trusted

    unknown = prov.verify_media(media)
    assert (unknown.status, unknown.trusted, unknown.exit_code) == ("valid", None, 0)
    wrong_ca = prov.verify_media(media, trust_pem=other_keys.ca_cert)
    assert (wrong_ca.status, wrong_ca.trusted, wrong_ca.exit_code) == ("valid", False, 1)


@pytest.mark.parametrize("name", ["tamper.mp4", "tamper.mov"])
def test_flipping_one_media_byte_fails_verification(tmp_path, name, claim, identity, keys) -> None:
    media = encode(tmp_path / name, "h264", frames=6)
    prov.sign_media(media, claim, identity)
    assert prov.verify_media(media, trust_pem=keys.ca_cert).exit_code == 0
    offset, size = mdat_payload(media)
    flip_byte(media, offset + size // 2)  # inside the coded pictures, not the manifest box
    result = prov.verify_media(media, trust_pem=keys.ca_cert)
    assert result.status == "invalid" and result.exit_code == 1
    assert any("mismatch" in f for f in result.failures), result.failures


def test_mxf_gets_a_sidecar_that_verify_reads(tmp_path, claim, identity, keys, source) -> None:
    media = encode(tmp_path / "shot.mxf", "dnxhr_hq", frames=3, size=(256, 144))
    before = sha256_file(media)
    result = prov.sign_media(media, claim, identity, source=source)
    assert result.signed and result.manifest == "sidecar" and result.sidecar == tmp_path / "shot.c2pa"
    assert sha256_file(media) == before  # MXF itself untouched
    good = prov.verify_media(media, trust_pem=keys.ca_cert)
    assert (good.status, good.manifest, good.trusted, good.exit_code) == ("valid", "sidecar", True, 0)
    assert good.swapped_ranges == ((0, 2), (4, 6)) and good.model["card_sha256"] == CARD
    # The sidecar named explicitly, from elsewhere, works too.
    moved = tmp_path / "elsewhere" / "manifest.c2pa"
    moved.parent.mkdir()
    os.replace(result.sidecar, moved)
    assert prov.verify_media(media).status == "no_manifest"
    assert prov.verify_media(media, manifest_path=moved).status == "valid"
    flip_byte(media, media.stat().st_size // 2)
    bad = prov.verify_media(media, manifest_path=moved)
    assert bad.status == "invalid" and bad.exit_code == 1
    assert any("dataHash.mismatch" in f for f in bad.failures), bad.failures


def test_without_a_key_the_file_goes_out_unsigned_with_a_warning(tmp_path, claim) -> None:
    env = {"DOPPEL_KEYS_DIR": str(tmp_path / "no-keys"), "HOME": str(tmp_path)}
    identity = prov.resolve_signing_identity(None, env)
    assert identity is None
    media = encode(tmp_path / "plain.mp4", "h264", metadata=prov.label_metadata(claim, signed=False))
    before = sha256_file(media)
    result = prov.sign_media(media, claim, identity)
    assert not result.signed and result.manifest == "none"
    assert "NOT signed" in result.warning and "doppel keys init" in result.warning
    assert sha256_file(media) == before
    verdict = prov.verify_media(media)
    assert verdict.status == "no_manifest" and verdict.exit_code == 2
    with av.open(str(media)) as container:
        assert "UNSIGNED" in container.metadata["comment"]


def test_signing_a_corrupt_file_fails_cleanly(tmp_path, claim, identity) -> None:
    media = tmp_path / "broken.mp4"
    media.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(200))
    before = sha256_file(media)
    with pytest.raises(ProvenanceError, match="broken.mp4"):
        prov.sign_media(media, claim, identity)
    assert sha256_file(media) == before
    assert [p.name for p in tmp_path.iterdir()] == ["broken.mp4"]


# ------------------------------------------------------------------ CLI


def test_cli_keys_and_verify(tmp_path, claim, capsys) -> None:
    out = tmp_path / "k"
    assert cli_main(["keys", "init", "--out", str(out), "--common-name", "CLI Node", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert Path(written["key"]).is_file() and written["common_name"] == "CLI Node"
    assert cli_main(["keys", "init", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err

    media = encode(tmp_path / "cli.mp4", "h264")
    assert cli_main(["verify", str(media)]) == 2
    assert "NO MANIFEST" in capsys.readouterr().out
    prov.sign_media(media, claim, prov.SigningIdentity(Path(written["cert_chain"]), Path(written["key"]), "cli"))
    assert cli_main(["verify", str(media), "--trust", written["ca_cert"], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "valid" and report["trusted"] is True and report["signer"] == "CLI Node"
    assert cli_main(["verify", str(media)]) == 0
    text = capsys.readouterr().out
    assert "VALID, signer not checked" in text and "frames 0-1, 4-5" in text and "Alice Example" in text
    offset, size = mdat_payload(media)
    flip_byte(media, offset + size // 2)
    assert cli_main(["verify", str(media), "--trust", written["ca_cert"]]) == 1
    assert "INVALID" in capsys.readouterr().out
    assert cli_main(["verify", str(tmp_path / "missing.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_claim_for_model_carries_the_card_and_refuses_a_card_without_rights(tmp_path, source) -> None:
    import yaml

    from renderer.errors import ModelError
    from renderer.model import ModelConfig
    from renderer.modelcard import CARD_NAME, ModelCard, card_sha256, save_model_card

    model_dir = tmp_path / "alice-bob"
    card = ModelCard(config=ModelConfig(), name_a="Alice Example", name_b="Bob Example",
                     rights="Both filmed with written consent for project X, 2026")
    save_model_card(model_dir, card)
    claim = prov.claim_for_model(source, model_dir, swapped_ranges=[(1, 3)])
    assert claim.identities == ("Alice Example", "Bob Example")
    assert claim.model_card_sha256 == card_sha256(model_dir) and claim.model_name == "alice-bob"
    assert "written consent" in claim.rights

    data = yaml.safe_load((model_dir / CARD_NAME).read_text())
    del data["rights"]
    (model_dir / CARD_NAME).write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match="rights"):
        prov.claim_for_model(source, model_dir, swapped_ranges=[(1, 3)])
