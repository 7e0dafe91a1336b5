"""Provenance of every output: a synthetic-media label, a signed C2PA manifest, a local signing chain.

The render and swap jobs call this module once per output:

    identity = resolve_signing_identity(preset.signing, os.environ, base_dir=preset_dir)  # checked: exit 2
    claim = claim_for_model(source, model_dir, swapped_ranges=[(0, 48)], preset_sha256=...)
    with signed_output(final, claim, identity, source=source) as target:
        writer = VideoWriter(target.tmp, ..., metadata=label_metadata(claim, signed=identity is not None))
        ...                                 # encode, close
    if target.result.warning: print(target.result.warning, file=sys.stderr)

The identity is proven (key matches certificate, in date, a trial signature) when it is
resolved, before any frame is decoded; the output is signed under its temporary name and
renamed only once signed, so a final-named file is always signed when a key is configured.

MP4/MOV/M4V/AVI get the manifest embedded (signed into a temporary sibling, renamed over the
file). Containers C2PA cannot embed into (MXF among them) get a sidecar `<stem>.c2pa` beside
them, bound to the media bytes by a `c2pa.hash.data` hash over the whole file.
`verify_media` reads either form back.

Frame ranges are half-open `(start, end)` output frame indices: `(0, 48)` is frames 0..47.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from renderer import __version__
from renderer.atomic import sha256_file, temp_path_for, write_bytes_atomic
from renderer.errors import InputError, ProvenanceError
# The signing identity lives in renderer.signing; its public names are part of this module's API.
from renderer.signing import (  # noqa: F401
    CA_CERT_NAME, CHAIN_NAME, ENV_CERT, ENV_KEY, ENV_KEYS_DIR, KEY_NAME, PRESET_SIGNING_KEYS, LocalKeys,
    SigningIdentity, check_signing_identity, default_keys_dir, identity_fingerprint, init_keys,
    load_signer_material, one_line, resolve_signing_identity,
)

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
ASSERTION_LABEL = "com.doppel.faceswap"
SIDECAR_SUFFIX = ".c2pa"
# Containers the C2PA SDK embeds a manifest into; everything else gets a sidecar.
EMBEDDED_FORMATS: dict[str, str] = {
    ".mp4": "video/mp4",
    ".m4v": "video/x-m4v",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
}
# A validation failure that says only "we do not know this signer": not tampering.
_UNTRUSTED_CODES = frozenset({"signingCredential.untrusted"})
# A signature made with a certificate that is now out of date: nothing was changed.
_EXPIRED_CODES = frozenset({"signingCredential.expired"})


# --------------------------------------------------------------------------- the claim and the label


@dataclass(frozen=True)
class SwapClaim:
    """What Doppel states about one output file. Build it with `make_claim`."""

    source_name: str
    source_sha256: str
    model_name: str
    identities: tuple[str, ...]
    model_card_sha256: str
    rights: str
    swapped_ranges: tuple[tuple[int, int], ...]  # half-open output frame index ranges
    preset_sha256: str | None = None
    software: str = f"doppel {__version__}"

    def assertion(self, signed_at: str) -> dict[str, Any]:
        """The `com.doppel.faceswap` assertion body (JSON-able)."""
        return {
            "software": self.software,
            "synthetic": True,
            "technique": "face replacement by a shared-encoder / two-decoder autoencoder (deepfake)",
            "source": {"name": self.source_name, "sha256": self.source_sha256},
            "model": {"name": self.model_name, "identities": list(self.identities),
                      "card_sha256": self.model_card_sha256, "rights": self.rights},
            "preset_sha256": self.preset_sha256,
            "swapped_ranges": [list(r) for r in self.swapped_ranges],
            "signed_at_claimed": signed_at,
        }


def make_claim(source: Path, *, model_name: str, identities: Sequence[str], model_card_sha256: str,
               rights: str | Mapping[str, Any], swapped_ranges: Iterable[tuple[int, int]],
               preset_sha256: str | None = None, source_sha256: str | None = None) -> SwapClaim:
    """Validate and freeze a claim; hashes `source` unless its `source_sha256` is given."""
    source = Path(source)
    if source_sha256 is None and _is_sequence(source):
        from renderer.media.sequence import parse_sequence, sequence_sha256

        source_sha256 = sequence_sha256(parse_sequence(source))  # one hash over every frame, in order
    if source_sha256 is None:
        if not source.is_file():
            raise InputError(f"provenance: source media {str(source)!r} does not exist")
        source_sha256 = sha256_file(source)
    for label, digest in (("source sha256", source_sha256), ("model card sha256", model_card_sha256),
                          ("preset sha256", preset_sha256)):
        if digest is not None and (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)):
            raise InputError(f"provenance: {label} must be 64 lowercase hex digits, got {digest!r}")
    if not rights:
        raise InputError("provenance: the model card states no rights; a model without a rights "
                         "statement may not be used to render")
    rights_text = rights if isinstance(rights, str) else json.dumps(dict(rights), sort_keys=True)
    ranges = []
    for item in swapped_ranges:
        start, end = (int(v) for v in item)
        if not 0 <= start < end:
            raise InputError(f"provenance: swapped range {tuple(item)!r} is not a half-open frame range "
                             f"(start, end) with 0 <= start < end")
        ranges.append((start, end))
    return SwapClaim(source.name, source_sha256, str(model_name), tuple(str(i) for i in identities),
                     model_card_sha256, rights_text, tuple(sorted(ranges)), preset_sha256)


def claim_for_model(source: Path, model_dir: Path, swapped_ranges: Iterable[tuple[int, int]],
                    preset_sha256: str | None = None, source_sha256: str | None = None) -> SwapClaim:
    """`make_claim` from a model directory: its card's identities and rights, the card's SHA-256.

    The card is loaded with `renderer.modelcard.load_model_card`, which raises ModelError (exit 2)
    for a card without a rights statement: no claim, so no render, for such a model.
    """
    from renderer.modelcard import card_sha256, load_model_card

    card = load_model_card(model_dir)
    return make_claim(source, model_name=Path(model_dir).name, identities=card.identities,
                      model_card_sha256=card_sha256(model_dir), rights=card.rights,
                      swapped_ranges=swapped_ranges, preset_sha256=preset_sha256, source_sha256=source_sha256)


def label_metadata(claim: SwapClaim, *, signed: bool) -> dict[str, str]:
    """Container metadata for the encoder (`comment`, `description`): a plain-text synthetic label."""
    who = ", ".join(claim.identities) or "unnamed identities"
    frames = sum(end - start for start, end in claim.swapped_ranges)
    credential = ("Content Credentials (C2PA) signed by the render node" if signed
                  else "UNSIGNED: no signing key was configured, no C2PA signature")
    comment = (f"SYNTHETIC MEDIA: faces replaced by {claim.software} (deepfake face swap). "
               f"Model '{claim.model_name}' of {who}; model card sha256 {claim.model_card_sha256}. {credential}.")
    description = (f"Synthetic face replacement by {claim.software} in {frames} frame(s), ranges "
                   f"{', '.join(f'{s}-{e - 1}' for s, e in claim.swapped_ranges) or 'none'}, "
                   f"of source {claim.source_name} (sha256 {claim.source_sha256}). Identities: {who}. "
                   f"Rights: {claim.rights}. Verify with: doppel verify FILE")
    return {"comment": comment, "description": description}


def matte_label(claim: SwapClaim, *, signed: bool, kind: str, output_name: str) -> dict[str, str]:
    """Container metadata for a matte pass clip (`kind`: "matte" or "plate") of the output
    `output_name`: derived from synthetic media, so labelled as such, with the output's label after it."""
    label = label_metadata(claim, signed=signed)
    what = ("the blend mask (alpha) used" if kind == "matte" else "the unblended swapped-face plate (mask in alpha)")
    return {"comment": f"SYNTHETIC MEDIA {kind.upper()}: {what} to replace faces in {output_name}. " + label["comment"],
            "description": label["description"]}


# --------------------------------------------------------------------------- signing


@dataclass(frozen=True)
class SignResult:
    """Outcome of `sign_media`. `warning` is set when the file went out unsigned; print it."""

    path: Path
    signed: bool
    manifest: str  # "embedded", "sidecar" or "none"
    sidecar: Path | None = None
    signer: str | None = None
    warning: str | None = None


def sidecar_path(media: Path) -> Path:
    """`shot.mxf` -> `shot.c2pa` (the C2PA sidecar convention: same stem, `.c2pa`)."""
    return Path(media).with_suffix(SIDECAR_SUFFIX)


def _manifest_definition(claim: SwapClaim, title: str) -> dict[str, Any]:
    signed_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return {
        "claim_generator_info": [{"name": "doppel", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [{
                "action": "c2pa.edited",
                "digitalSourceType": DIGITAL_SOURCE_TYPE,
                "softwareAgent": {"name": "doppel", "version": __version__},
                "description": "faces replaced with a trained face-swap model",
            }]}},
            {"label": ASSERTION_LABEL, "data": claim.assertion(signed_at)},
        ],
    }


def sign_media(path: Path, claim: SwapClaim, identity: SigningIdentity | None,
               source: Path | None = None, final: Path | None = None) -> SignResult:
    """Sign the finished file at `path` once, atomically; `final` is the name it will be published
    under (default `path`: sign in place). Callers that write new outputs use `signed_output`,
    which signs the temporary file and renames only the signed result.

    MP4/MOV/M4V/AVI: the manifest is embedded by signing into a temporary sibling that is renamed
    over `path`. Other containers (MXF): a sidecar `<final stem>.c2pa` is written beside `final`.
    `source` (the original media, read only) becomes the `parentOf` ingredient; without it the
    ingredient is described by name only. `identity` None: nothing is signed and the result
    carries the warning the caller must print. ProvenanceError (exit 1) when signing fails
    (the SDK refuses, or the disk is full); `path` is then as it was and no temp file is left.
    """
    path = Path(path)
    final = Path(final) if final is not None else path
    if _is_sequence(path):  # an image sequence: one sidecar over all its frames
        from renderer.sequence_provenance import sign_sequence

        return sign_sequence(path, claim, identity, final=final)
    if not path.is_file():
        raise InputError(f"sign: media {str(path)!r} does not exist")
    if identity is None:
        return SignResult(final, False, "none", warning=(
            f"warning: {final.name} is NOT signed: no signing key configured (preset 'signing', "
            f"{ENV_CERT}/{ENV_KEY}, or run 'doppel keys init'); it carries only the metadata label"))
    import c2pa

    chain, key, alg = load_signer_material(identity)
    definition = _manifest_definition(claim, final.name)
    step = "build the manifest"
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain.encode("ascii"), key.encode("ascii"), None))
        ingredient = {"title": claim.source_name, "relationship": "parentOf"}
        source_mime = EMBEDDED_FORMATS.get(Path(source).suffix.lower()) if source is not None else None
        if source_mime is None:
            # A source the SDK cannot read (MXF, or not given) is described, not parsed; its
            # sha256 is in the com.doppel.faceswap assertion either way.
            definition["ingredients"] = [{**ingredient, "format": _mime_guess(claim.source_name)}]
        builder = c2pa.Builder(definition)
        if source_mime is not None:
            step = f"read the source {source} as the parent ingredient ({source_mime})"
            with open(source, "rb") as fh:  # type: ignore[arg-type]
                builder.add_ingredient(ingredient, source_mime, fh)
        # EDIT intent makes the SDK add the c2pa.opened action pointing at the parent ingredient.
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
        mime = EMBEDDED_FORMATS.get(path.suffix.lower())
        step = f"write the signed {final.name}"
        if mime is not None:
            tmp = temp_path_for(path)
            try:
                with open(path, "rb") as src, open(tmp, "wb") as dst:
                    builder.sign(signer, mime, src, dst)
                    dst.flush()
                    os.fsync(dst.fileno())  # a full disk shows here, not after the rename
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            return SignResult(final, True, "embedded", signer=_leaf_name(chain))
        manifest = _sign_sidecar(builder, signer, path)
        write_bytes_atomic(sidecar_path(final), manifest)
        return SignResult(final, True, "sidecar", sidecar=sidecar_path(final), signer=_leaf_name(chain))
    except c2pa.C2paError as err:
        raise ProvenanceError(f"sign {final}: the C2PA SDK could not {step}: {one_line(err)}") from err
    except OSError as err:
        raise ProvenanceError(f"sign {final}: could not {step}: {err.strerror or err} "
                              f"({err.filename or path.parent})") from err


class SignedOutput:
    """The temporary file an output is written to (`tmp`), and after the `with` block the signed
    result (`result`). See `signed_output`.

    For an image sequence (`final` a pattern such as out/shot/shot.%04d.exr) `tmp` is the same
    pattern in a hidden folder beside the final one; the frames and their sidecar are published
    together by renaming that folder."""

    def __init__(self, final: Path) -> None:
        self.final = Path(final)
        self.folder: Path | None = None  # the temporary folder of a sequence
        if _is_sequence(self.final):
            self.folder = temp_path_for(self.final.parent)
            self.tmp = self.folder / self.final.name
        else:
            self.tmp = temp_path_for(self.final)
        self.result: SignResult | None = None

    def publish(self) -> None:
        if self.folder is None:
            os.replace(self.tmp, self.final)
            return
        final_folder = self.final.parent
        if final_folder.is_dir() and not any(final_folder.iterdir()):
            final_folder.rmdir()
        os.replace(self.folder, final_folder)  # fails (nothing lost) when a non-empty folder is there

    def discard(self) -> None:
        if self.folder is not None:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)


def _is_sequence(path: Path) -> bool:
    from renderer.media.sequence import is_sequence_path

    return is_sequence_path(path)


@contextlib.contextmanager
def signed_output(final: Path, claim: SwapClaim, identity: SigningIdentity | None,
                  source: Path | None = None) -> Any:
    """Write an output under a temporary name, sign it there, and only then rename it to `final`.

        with signed_output(out, claim, identity, source=src) as target:
            encode(..., target.tmp)          # the writer may itself write atomically to target.tmp
        print(target.result.warning or "signed")

    A failure while encoding or signing (or an interrupt) deletes the temporary file: no
    unsigned file ever has the final name when an identity is configured, and a kill at any
    point leaves at most a `.partial-` file that `atomic.remove_stale_partials` clears.
    """
    target = SignedOutput(final)
    target.final.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield target
        written = (target.folder is not None and target.folder.is_dir()) or target.tmp.is_file()
        if not written:
            raise ProvenanceError(f"sign {target.final}: nothing was written to {target.tmp.name}")
        target.result = sign_media(target.tmp, claim, identity, source=source, final=target.final)
        target.publish()
    finally:
        target.discard()


def _mime_guess(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return EMBEDDED_FORMATS.get(suffix) or {".mxf": "application/mxf"}.get(suffix, "application/octet-stream")


def _sign_sidecar(builder: Any, signer: Any, media: Path, stream: Any = None) -> bytes:
    """Raw manifest store bound to `media` by a `c2pa.hash.data` over all its bytes (or over the
    bytes of `stream`, a binary file object standing for it: a sequence's frame list).

    c2pa-python 0.38 wraps no data-hashed signing call, so this uses the SDK's own C entry
    points (`c2pa_builder_data_hashed_placeholder`, `c2pa_builder_sign_data_hashed_embeddable`)
    through the library handle the package loaded.
    """
    from c2pa import c2pa as native

    lib = native._lib
    try:
        placeholder, sign = lib.c2pa_builder_data_hashed_placeholder, lib.c2pa_builder_sign_data_hashed_embeddable
    except AttributeError as err:
        raise ProvenanceError(f"sidecar signing for {media.suffix} needs the C2PA data-hash API, "
                              f"absent from this c2pa-python build: {err}") from err
    for fn in (placeholder, sign):
        fn.restype = ctypes.c_int64
    out = ctypes.POINTER(ctypes.c_ubyte)()
    # The placeholder step puts the (empty) data-hash assertion into the claim.
    if placeholder(builder._handle, ctypes.c_size_t(signer.reserve_size()), b"application/c2pa",
                   ctypes.byref(out)) < 0:
        raise ProvenanceError(f"sidecar placeholder for {media}: {native._read_native_error()}")
    lib.c2pa_free(out)
    out = ctypes.POINTER(ctypes.c_ubyte)()
    data_hash = json.dumps({"exclusions": [], "name": "jumbf manifest", "alg": "sha256", "hash": [], "pad": []})
    with (contextlib.nullcontext(stream) if stream is not None else open(media, "rb")) as fh:
        wrapped = native.Stream(fh)
        try:
            size = sign(builder._handle, signer._handle, data_hash.encode(), b"application/c2pa",
                        wrapped._stream, ctypes.byref(out))
        finally:
            wrapped.close()
    if size < 0 or not out:
        raise ProvenanceError(f"sidecar signing for {media}: {native._read_native_error()}")
    try:
        return ctypes.string_at(out, size)
    finally:
        lib.c2pa_free(out)


def _leaf_name(chain_pem: str) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    subject = x509.load_pem_x509_certificates(chain_pem.encode())[0].subject
    names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return str(names[0]) if names else subject.rfc4514_string()


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class VerifyResult:
    """What `verify_media` found. `status`: "valid", "invalid", "expired" (intact, but the
    signing certificate is out of date and no timestamp authority vouched for the time) or
    "no_manifest".

    `trusted` is None when no trust list was given, else whether the signer chains to it.
    """

    path: Path
    status: str
    manifest: str  # "embedded", "sidecar" or "none"
    trusted: bool | None = None
    signer: str | None = None
    issuer: str | None = None
    signed_at: str | None = None
    timestamp_trusted: bool = False
    software: str | None = None
    digital_source_type: str | None = None
    source: Mapping[str, Any] | None = None
    model: Mapping[str, Any] | None = None
    preset_sha256: str | None = None
    swapped_ranges: tuple[tuple[int, int], ...] = ()
    failures: tuple[str, ...] = ()
    messages: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """0 valid (and trusted, when a trust list was given), 1 invalid, expired or untrusted, 2 no manifest."""
        if self.status == "no_manifest":
            return 2
        if self.status != "valid" or self.trusted is False:
            return 1
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "status": self.status, "manifest": self.manifest, "trusted": self.trusted,
            "signer": self.signer, "issuer": self.issuer, "signed_at": self.signed_at,
            "timestamp_trusted": self.timestamp_trusted, "software": self.software,
            "digital_source_type": self.digital_source_type, "source": self.source, "model": self.model,
            "preset_sha256": self.preset_sha256, "swapped_ranges": [list(r) for r in self.swapped_ranges],
            "failures": list(self.failures), "messages": list(self.messages), "exit_code": self.exit_code,
        }


def _reader_context(trust_pem: Path | None) -> Any:
    import c2pa

    if trust_pem is None:
        return None
    from cryptography import x509

    try:
        text = Path(trust_pem).read_bytes()
        x509.load_pem_x509_certificates(text)
    except (OSError, ValueError) as err:
        raise InputError(f"verify --trust {str(trust_pem)!r}: not a readable PEM certificate file: {err}") from err
    return c2pa.Context.from_dict({"trust": {"user_anchors": text.decode("ascii")},
                                   "verify": {"verify_trust": True}})


def verify_media(path: Path, trust_pem: Path | None = None, manifest_path: Path | None = None) -> VerifyResult:
    """Validate the C2PA manifest of `path` (embedded, or the sidecar `manifest_path` / `<stem>.c2pa`).

    Never modifies `path`. Hash mismatches, a broken signature or an unreadable manifest give
    status "invalid"; an unknown signer alone does not (see `trusted`).
    """
    import c2pa

    path = Path(path)
    if _is_sequence(path):  # a sequence pattern, or a folder holding one
        from renderer.sequence_provenance import verify_sequence

        return verify_sequence(path, trust_pem, manifest_path)
    if path.is_dir():
        raise InputError(f"verify: {str(path)!r} is a folder with no image sequence in it; give a media file or "
                         f"a sequence (its folder, or a pattern such as shot.%04d.exr)")
    if not path.is_file():
        raise InputError(f"verify: media {str(path)!r} does not exist")
    if manifest_path is not None and not Path(manifest_path).is_file():
        raise InputError(f"verify --manifest {str(manifest_path)!r} does not exist or is not a file")
    context = _reader_context(trust_pem)
    mime = EMBEDDED_FORMATS.get(path.suffix.lower())
    sidecar = Path(manifest_path) if manifest_path is not None else sidecar_path(path)
    use_sidecar = manifest_path is not None or (mime is None and sidecar.is_file())
    kind = "sidecar" if use_sidecar else "embedded"
    if not use_sidecar and mime is None:
        return VerifyResult(path, "no_manifest", "none", messages=(
            f"{path.suffix or 'this file type'} cannot hold an embedded C2PA manifest and no sidecar "
            f"{sidecar.name} is beside it",))
    if not use_sidecar and path.stat().st_size == 0:
        return VerifyResult(path, "no_manifest", "none", messages=("the file is empty (0 bytes): no C2PA manifest",))
    try:
        with open(path, "rb") as fh:
            data = sidecar.read_bytes() if use_sidecar else None
            if data is not None and not data:
                return VerifyResult(path, "invalid", kind, messages=(f"the sidecar {sidecar} is empty (0 bytes)",))
            fmt = mime or "application/octet-stream"
            args = (fmt, fh, data) + ((context,) if context is not None else ())
            reader = c2pa.Reader.try_create(*args)
            if reader is None:
                return VerifyResult(path, "no_manifest", "none", messages=("no C2PA manifest found",))
            with reader:
                store = json.loads(reader.json())
                state = reader.get_validation_state()
                active = reader.get_active_manifest() or {}
        return _summarise(path, kind, store, state, active, trust_pem is not None)
    except Exception as err:  # noqa: BLE001 - a corrupt manifest breaks the SDK (and its wrapper) in many ways
        # c2pa.C2paError for most, but also KeyError (no active manifest in the store), ValueError
        # (JSON), TypeError/AttributeError (a store of an unexpected shape): each is a manifest
        # that cannot be trusted, reported in one line, never a traceback.
        what = "C2PA SDK" if isinstance(err, c2pa.C2paError) else type(err).__name__
        reason = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        return VerifyResult(path, "invalid", kind, messages=(
            f"the C2PA manifest is corrupt or unreadable ({what}: {one_line(reason)})",))
    finally:
        if context is not None:
            context.close()


def _summarise(path: Path, kind: str, store: Mapping[str, Any], state: str | None,
               active: Mapping[str, Any], trust_given: bool) -> VerifyResult:
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failure_entries = list(results.get("failure") or [])
    if not results:  # older result shape: a flat validation_status list
        failure_entries = list(store.get("validation_status") or [])
    tamper = [f for f in failure_entries if f.get("code") not in _UNTRUSTED_CODES | _EXPIRED_CODES]
    untrusted = any(f.get("code") in _UNTRUSTED_CODES for f in failure_entries)
    expired = any(f.get("code") in _EXPIRED_CODES for f in failure_entries)
    # Without a trust list "untrusted" only means "not checked": a note, not a failure.
    shown = failure_entries if trust_given else [f for f in failure_entries if f.get("code") not in _UNTRUSTED_CODES]
    failures = tuple(f"{f.get('code')}: {f.get('explanation', '')}" for f in shown)
    status = "invalid" if tamper else "expired" if expired else "valid" if state in ("Valid", "Trusted") else "invalid"
    trusted = (state == "Trusted" and not untrusted) if trust_given else None
    assertions = {a.get("label"): a.get("data") for a in active.get("assertions", [])}
    doppel = assertions.get(ASSERTION_LABEL) or {}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get("actions", [])
    source_type = next((a.get("digitalSourceType") for a in actions if a.get("digitalSourceType")), None)
    sig = active.get("signature_info") or {}
    parent = next((i for i in active.get("ingredients", []) if i.get("relationship") == "parentOf"), None)
    source = dict(doppel.get("source") or {})
    if parent is not None:
        source.setdefault("name", parent.get("title"))
        source["ingredient"] = parent.get("title")
    messages = []
    if status == "invalid":
        messages.append("the file or its manifest changed after signing, or the signature is broken")
    elif status == "expired":
        messages.append("the signing certificate has expired (no timestamp authority vouched for the signing "
                        "time); the file and its manifest are unchanged")
    if trusted is False:
        messages.append("signer not in the given trust list")
    elif trusted is None and status == "valid":
        messages.append("signer not checked against a trust list (pass --trust CA.pem)")
    if not doppel:
        messages.append(f"no {ASSERTION_LABEL} assertion: this manifest was not written by Doppel")
    return VerifyResult(
        path=path, status=status, manifest=kind, trusted=trusted,
        signer=sig.get("common_name"), issuer=sig.get("issuer"),
        signed_at=sig.get("time") or doppel.get("signed_at_claimed"),
        timestamp_trusted=bool(sig.get("time")), software=doppel.get("software"),
        digital_source_type=source_type, source=source or None, model=doppel.get("model"),
        preset_sha256=doppel.get("preset_sha256"),
        swapped_ranges=tuple((int(s), int(e)) for s, e in doppel.get("swapped_ranges", [])),
        failures=failures, messages=tuple(messages),
    )
