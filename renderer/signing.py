"""The signing identity of a render node: where it comes from, proof that it signs, local keys.

    identity = resolve_signing_identity(preset_signing, os.environ, base_dir=preset_dir)

returns the identity to sign with (preset `signing: {cert, key}` > DOPPEL_SIGN_CERT/DOPPEL_SIGN_KEY >
the keys folder `doppel keys init` writes > None) after proving it: PEM that parses, a key that
belongs to the first certificate, a certificate in date, a trial signature the C2PA SDK accepts.
A configured identity that fails any of these is an InputError (exit 2) before any frame is
decoded. `renderer.provenance` signs with it and re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renderer import __version__
from renderer.atomic import atomic_output, write_bytes_atomic
from renderer.errors import InputError, closest

# Files `doppel keys init` writes and the default keys folder is searched for.
CA_CERT_NAME = "ca.pem"
CHAIN_NAME = "signer-chain.pem"
KEY_NAME = "signer.key"
ENV_CERT = "DOPPEL_SIGN_CERT"
ENV_KEY = "DOPPEL_SIGN_KEY"
ENV_KEYS_DIR = "DOPPEL_KEYS_DIR"
PRESET_SIGNING_KEYS = ("cert", "key")
# The trial signature's one action (C2PA wants the first to be "created" or "opened").
_TRIAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"


# --------------------------------------------------------------------------- signing identity


@dataclass(frozen=True)
class SigningIdentity:
    """A PEM certificate chain (leaf first, then intermediates/CA) and the leaf's PEM private key."""

    cert_chain_pem: Path
    key_pem: Path
    origin: str  # where it came from: "preset", "environment" or "keys folder <dir>"


def default_keys_dir(env: Mapping[str, str]) -> Path:
    """`$DOPPEL_KEYS_DIR`, else `$XDG_CONFIG_HOME/doppel/keys`, else `~/.config/doppel/keys`."""
    if env.get(ENV_KEYS_DIR):
        return Path(env[ENV_KEYS_DIR]).expanduser()
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "doppel" / "keys"


def resolve_signing_identity(
    preset_signing: Mapping[str, Any] | None,
    env: Mapping[str, str],
    base_dir: Path | None = None,
) -> SigningIdentity | None:
    """The identity to sign with: preset `signing: {cert, key}` > env > default keys folder > None.

    Relative preset paths are resolved against `base_dir` (the preset's folder). A source that is
    configured but broken (one of the pair missing, a file that does not exist) is an InputError,
    never a silent fall-through to an unsigned render.
    """
    if preset_signing is not None:
        if not isinstance(preset_signing, Mapping):
            raise InputError(f"preset key 'signing': expected a mapping {{cert: PATH, key: PATH}}, "
                             f"got {type(preset_signing).__name__} {preset_signing!r}")
        for key in preset_signing:
            if key not in PRESET_SIGNING_KEYS:
                raise InputError(f"preset key 'signing.{key}' is not allowed; allowed: "
                                 f"{', '.join(PRESET_SIGNING_KEYS)}{closest(str(key), PRESET_SIGNING_KEYS)}")
        missing = [k for k in PRESET_SIGNING_KEYS if not preset_signing.get(k)]
        if missing:
            raise InputError(f"preset key 'signing' needs both cert and key; missing: {', '.join(missing)}")
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        cert, key = (base / Path(str(preset_signing[k])).expanduser() for k in PRESET_SIGNING_KEYS)
        return _checked_identity(cert, key, "preset", "preset key 'signing'")
    cert_env, key_env = env.get(ENV_CERT), env.get(ENV_KEY)
    if cert_env or key_env:
        if not (cert_env and key_env):
            have, lack = (ENV_CERT, ENV_KEY) if cert_env else (ENV_KEY, ENV_CERT)
            raise InputError(f"environment sets {have} but not {lack}; set both or neither")
        return _checked_identity(Path(cert_env).expanduser(), Path(key_env).expanduser(),
                                 "environment", f"environment {ENV_CERT}/{ENV_KEY}")
    keys_dir = default_keys_dir(env)
    if (keys_dir / CHAIN_NAME).is_file() and (keys_dir / KEY_NAME).is_file():
        return check_signing_identity(SigningIdentity(keys_dir / CHAIN_NAME, keys_dir / KEY_NAME,
                                                      f"keys folder {keys_dir}"))
    return None


def _checked_identity(cert: Path, key: Path, origin: str, where: str) -> SigningIdentity:
    for label, path in (("cert", cert), ("key", key)):
        if not path.is_file():
            raise InputError(f"{where}: {label} file {str(path)!r} does not exist")
    return check_signing_identity(SigningIdentity(cert, key, origin))


def check_signing_identity(identity: SigningIdentity) -> SigningIdentity:
    """`identity`, once it has been shown to sign: PEM that parses, a key that belongs to the
    first certificate, a certificate in date, and a trial signature the C2PA SDK accepts (it
    refuses e.g. a self-signed or CA certificate as the signer). InputError (exit 2) otherwise.

    Run before any frame is decoded, so a broken identity costs nothing and writes nothing,
    instead of surfacing after the encode.
    """
    chain, key, alg = load_signer_material(identity)
    try:
        _trial_sign(chain, key, alg)
    except Exception as err:  # c2pa.C2paError and its typed children
        raise InputError(f"signing identity from {identity.origin} ({identity.cert_chain_pem}): the C2PA SDK "
                         f"will not sign with it: {one_line(err)}") from err
    return identity


@functools.lru_cache(maxsize=8)
def _trial_sign(chain: str, key: str, alg: str) -> None:
    """Sign a tiny in-memory PNG (keyed by the PEM text itself, so a changed file is tried again)."""
    import io

    import c2pa
    import cv2
    import numpy as np

    png = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))[1].tobytes()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain.encode("ascii"), key.encode("ascii"), None))
    builder = c2pa.Builder({"claim_generator_info": [{"name": "doppel", "version": __version__}],
                            "title": "doppel signing check", "assertions": [{"label": "c2pa.actions.v2", "data": {
                                "actions": [{"action": "c2pa.created", "digitalSourceType": _TRIAL_SOURCE_TYPE}]}}]})
    builder.sign(signer, "image/png", io.BytesIO(png), io.BytesIO())


def identity_fingerprint(identity: SigningIdentity | None) -> dict[str, Any]:
    """What a render's inputs hash records of its signing: signed or not, and the SHA-256 of the
    signing certificate (DER), so a new or first key makes a re-run sign again."""
    if identity is None:
        return {"signed": False, "cert_sha256": None}
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    leaf = x509.load_pem_x509_certificates(identity.cert_chain_pem.read_bytes())[0]
    return {"signed": True, "cert_sha256": hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()}


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def load_signer_material(identity: SigningIdentity) -> tuple[str, str, str]:
    """(chain PEM, key PEM, c2pa alg name), after checking the key matches the leaf and is in date."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        chain_bytes = identity.cert_chain_pem.read_bytes()
        key_bytes = identity.key_pem.read_bytes()
        certs = x509.load_pem_x509_certificates(chain_bytes)
        key = serialization.load_pem_private_key(key_bytes, password=None)
        chain_bytes.decode("ascii"), key_bytes.decode("ascii")
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"signing identity from {identity.origin} ({identity.cert_chain_pem}, "
                         f"{identity.key_pem}) is not a PEM certificate chain and unencrypted PEM key: "
                         f"{one_line(err)}") from err
    leaf = certs[0]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.DER, pub) != key.public_key().public_bytes(
            serialization.Encoding.DER, pub):
        raise InputError(f"signing key {identity.key_pem} does not belong to the first certificate in "
                         f"{identity.cert_chain_pem} (the chain must list the signing certificate first)")
    now = dt.datetime.now(dt.timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        state = "expired on" if now > leaf.not_valid_after_utc else "is not valid before"
        when = leaf.not_valid_after_utc if now > leaf.not_valid_after_utc else leaf.not_valid_before_utc
        raise InputError(f"signing certificate {identity.cert_chain_pem} (from {identity.origin}) {state} "
                         f"{when:%Y-%m-%d %H:%M} UTC (valid {leaf.not_valid_before_utc:%Y-%m-%d} to "
                         f"{leaf.not_valid_after_utc:%Y-%m-%d}); make a new one (doppel keys init --force) "
                         f"or configure another")
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in ("secp256r1", "secp384r1", "secp521r1"):
        alg = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}[key.curve.name]
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "ed25519"
    elif isinstance(key, rsa.RSAPrivateKey):
        alg = "ps256"
    else:
        raise InputError(f"signing key {identity.key_pem}: {type(key).__name__} is not supported; "
                         f"allowed: EC P-256/P-384/P-521, Ed25519, RSA (PSS)")
    return chain_bytes.decode("ascii"), key_bytes.decode("ascii"), alg


# --------------------------------------------------------------------------- local keys


@dataclass(frozen=True)
class LocalKeys:
    """What `init_keys` wrote: the CA certificate (the trust anchor to hand to verifiers),
    the signing chain (leaf then CA) and the leaf's private key (mode 0600)."""

    ca_cert: Path
    cert_chain: Path
    key: Path
    common_name: str
    not_after: str  # ISO date the signing certificate expires


def init_keys(out_dir: Path, common_name: str = "Doppel local signer", organization: str = "Doppel local",
              overwrite: bool = False, valid_days: int = 5 * 365) -> LocalKeys:
    """Make a local ES256 chain: a self-signed CA and a signing certificate it issued.

    The CA's private key is not kept: nothing can be issued under this CA again, so leaking the
    folder leaks only the one signing key. `valid_days` bounds the signing certificate; without a
    timestamp authority a signature verifies only while its certificate is in date.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not common_name.strip():
        raise InputError("keys init: common name is empty; give the studio or machine name")
    if valid_days < 1:
        raise InputError(f"keys init: valid days must be at least 1, got {valid_days}")
    out_dir = Path(out_dir).expanduser()
    targets = [out_dir / CA_CERT_NAME, out_dir / CHAIN_NAME, out_dir / KEY_NAME]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise InputError(f"keys init: {', '.join(existing)} already exist; pass --force to replace them "
                         f"(files signed with the old key then verify only against the old {CA_CERT_NAME})")
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(minutes=5)  # tolerate small clock skew between machines
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name(f"{common_name} CA")).issuer_name(name(f"{common_name} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(now + dt.timedelta(days=valid_days + 365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(sign=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    # The C2PA profile wants an end-entity cert: not a CA, digitalSignature, an allowed EKU.
    leaf = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_bytes = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with atomic_output(out_dir / KEY_NAME) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_bytes)
    write_bytes_atomic(out_dir / CHAIN_NAME, leaf.public_bytes(pem) + ca.public_bytes(pem))
    write_bytes_atomic(out_dir / CA_CERT_NAME, ca.public_bytes(pem))
    return LocalKeys(out_dir / CA_CERT_NAME, out_dir / CHAIN_NAME, out_dir / KEY_NAME, common_name,
                     leaf.not_valid_after_utc.date().isoformat())
