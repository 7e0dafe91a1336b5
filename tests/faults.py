"""Real faults for the fault tests: read-only and tiny file systems, bad signing identities.

Mounts are real kernel mounts (tmpfs, remounted read-only or sized small), because the tests
run as root here and root writes through `chmod 0555`. Where mounting is not allowed (no
CAP_SYS_ADMIN), the fixtures skip with that reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "4m", read_only: bool = False, fill: dict[str, bytes] | None = None
          ) -> Iterator[Path]:
    """A fresh tmpfs of `size` at `folder`, holding `fill` (name -> bytes), then remounted
    read-only if asked; unmounted afterwards. Skips the test when mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", f"doppel-test-{uuid.uuid4().hex[:6]}", str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needed to make a real read-only or full disk): {done.stderr.strip()}")
    try:
        for name, data in (fill or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        if read_only:
            ro = _mount("-o", "remount,ro", str(folder))
            if ro.returncode != 0:
                pytest.skip(f"cannot remount the tmpfs read-only: {ro.stderr.strip()}")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill_disk(folder: Path, leave: int = 0) -> Path:
    """Write a ballast file until the file system under `folder` has at most `leave` bytes free."""
    ballast = folder / "ballast.bin"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(ballast, "wb") as fh:
        with contextlib.suppress(OSError):
            fh.write(b"\0" * max(0, free - leave))
    return ballast


def make_chain(folder: Path, *, not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
               leaf_is_ca: bool = False, common_name: str = "Fault Test Signer") -> tuple[Path, Path, Path]:
    """(chain.pem, key.pem, ca.pem): an ES256 CA and signing certificate made with `cryptography`,
    shaped like `doppel keys init`'s, with the signing certificate's validity as given.
    `leaf_is_ca`: the chain is just the self-signed CA, used as the signer (C2PA refuses it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    not_before = not_before or now - dt.timedelta(days=1)
    not_after = not_after or now + dt.timedelta(days=30)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name(f"{common_name} CA")).issuer_name(name(f"{common_name} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=400)).not_valid_after(now + dt.timedelta(days=400))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    folder.mkdir(parents=True, exist_ok=True)
    chain, key_path, ca_path = folder / "chain.pem", folder / "key.pem", folder / "ca.pem"
    chain.write_bytes(ca.public_bytes(pem) if leaf_is_ca else leaf.public_bytes(pem) + ca.public_bytes(pem))
    signing_key = ca_key if leaf_is_ca else key
    key_path.write_bytes(signing_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    ca_path.write_bytes(ca.public_bytes(pem))
    return chain, key_path, ca_path
