"""C2PA provenance for image sequences: one sidecar manifest per sequence, over all its frames in order.

A sequence has no container to embed a manifest into, and signing every frame would make a
thousand manifests that say nothing about the order or completeness of the shot. So a sequence
gets one sidecar, `<prefix>.c2pa` inside its folder (`shot.c2pa` beside `shot.1001.exr` ...),
published with the frames in the same folder rename. It is bound by a `c2pa.hash.data` hash to
the sequence's frame list (`media.sequence.frame_list`: `<number> <file name> <sha256>` per
frame, in number order): a changed frame changes its line, a missing or extra frame removes or
adds one, and the C2PA SDK then reports the hash mismatch. The manifest also carries the list
itself (assertion `com.doppel.sequence`), so `verify` names which frames changed, went missing
or appeared.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from renderer.errors import InputError, ProvenanceError

SEQUENCE_ASSERTION = "com.doppel.sequence"


def frames_assertion(pattern: Any, listing: bytes) -> dict[str, Any]:
    """The `com.doppel.sequence` assertion: the pattern, frame numbers and each frame's sha256."""
    rows = [line.split(" ") for line in listing.decode("utf-8").splitlines()]
    numbers = [int(r[0]) for r in rows]
    return {"pattern": pattern.hashes, "kind": pattern.kind, "padding": pattern.padding,
            "start_frame": numbers[0] if numbers else None, "end_frame": numbers[-1] if numbers else None,
            "frames": len(rows), "frames_sha256": {r[0]: r[2] for r in rows}}


def sign_sequence(path: Path, claim: Any, identity: Any, final: Path | None = None) -> Any:
    """Sign the finished sequence `path` (a pattern): write its sidecar into its folder; returns a
    `provenance.SignResult` naming the final pattern `final`. Unsigned (with the warning) when
    `identity` is None; ProvenanceError when the SDK refuses."""
    import c2pa

    from renderer import provenance as P
    from renderer.media.sequence import frame_list, parse_sequence

    pattern = parse_sequence(path)
    final = Path(final) if final is not None else pattern.printf
    final_pattern = parse_sequence(final) if final != pattern.printf else pattern
    if not pattern.scan():
        raise InputError(f"sign: the sequence {pattern.printf} has no frames")
    if identity is None:
        return P.SignResult(final, False, "none", warning=(
            f"warning: {final_pattern.hashes} is NOT signed: no signing key configured (preset 'signing', "
            f"{P.ENV_CERT}/{P.ENV_KEY}, or run 'doppel keys init'); "
            + ("its EXR frames carry only the label in their headers" if final_pattern.kind == "exr" else
               f"{final_pattern.kind.upper()} frames carry no label: deliver it only signed")))
    chain, key, alg = P.load_signer_material(identity)
    listing = frame_list(pattern)
    definition = P._manifest_definition(claim, final_pattern.hashes)
    definition["assertions"].append({"label": SEQUENCE_ASSERTION, "data": frames_assertion(pattern, listing)})
    # The source is described, not parsed (a sequence or a movie: its sha256 is in the claim).
    definition["ingredients"] = [{"title": claim.source_name, "relationship": "parentOf",
                                  "format": "application/octet-stream"}]
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain.encode("ascii"), key.encode("ascii"), None))
        builder = c2pa.Builder(definition)
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
        manifest = P._sign_sidecar(builder, signer, pattern.printf, stream=io.BytesIO(listing))
    except c2pa.C2paError as err:
        raise ProvenanceError(f"sign {final}: the C2PA SDK could not sign the sequence: {P.one_line(err)}") from err
    pattern.sidecar.write_bytes(manifest)
    return P.SignResult(final, True, "sidecar", sidecar=final_pattern.sidecar, signer=P._leaf_name(chain))


def verify_sequence(path: Path, trust_pem: Path | None = None, manifest_path: Path | None = None) -> Any:
    """Validate a sequence (pattern or folder) against its sidecar (`manifest_path`, default
    `<prefix>.c2pa` in its folder). A `provenance.VerifyResult`: "invalid" when any frame changed,
    is missing or is extra (each named in `messages`), "no_manifest" without a sidecar."""
    import json

    import c2pa

    from renderer import provenance as P
    from renderer.media.sequence import frame_list, parse_sequence

    pattern = parse_sequence(path)
    where = pattern.printf
    sidecar = Path(manifest_path) if manifest_path is not None else pattern.sidecar
    if manifest_path is not None and not sidecar.is_file():
        raise InputError(f"verify --manifest {str(manifest_path)!r} does not exist or is not a file")
    if not sidecar.is_file():
        return P.VerifyResult(where, "no_manifest", "none", messages=(
            f"no sidecar {sidecar.name} in {pattern.folder}: an image sequence carries its C2PA manifest there",))
    data = sidecar.read_bytes()
    if not data:
        return P.VerifyResult(where, "invalid", "sidecar", messages=(f"the sidecar {sidecar} is empty (0 bytes)",))
    listing = frame_list(pattern)
    context = P._reader_context(trust_pem)
    try:
        args = ("application/octet-stream", io.BytesIO(listing), data) + ((context,) if context is not None else ())
        reader = c2pa.Reader.try_create(*args)
        if reader is None:
            return P.VerifyResult(where, "no_manifest", "none", messages=("no C2PA manifest found",))
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
            active = reader.get_active_manifest() or {}
    except Exception as err:  # noqa: BLE001 - as in verify_media: a corrupt manifest is reported, not raised
        what = "C2PA SDK" if isinstance(err, c2pa.C2paError) else type(err).__name__
        return P.VerifyResult(where, "invalid", "sidecar", messages=(
            f"the C2PA manifest is corrupt or unreadable ({what}: {P.one_line(str(err))})",))
    finally:
        if context is not None:
            context.close()
    result = P._summarise(where, "sidecar", store, state, active, trust_pem is not None)
    recorded = next((a.get("data") for a in active.get("assertions", []) if a.get("label") == SEQUENCE_ASSERTION),
                    None)
    notes = _frame_differences(recorded, listing) if recorded else []
    if notes and result.status == "valid":  # cannot happen while the hash binds the list; never trust it then
        result = _replace(result, status="invalid")
    if notes:
        result = _replace(result, messages=tuple(notes) + tuple(result.messages))
    return result


def _replace(result: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _frame_differences(recorded: dict[str, Any], listing: bytes) -> list[str]:
    """One line each for the frames that changed, went missing or are extra since signing."""
    signed = {int(k): v for k, v in (recorded.get("frames_sha256") or {}).items()}
    now = {int(r.split(" ")[0]): r.split(" ")[2] for r in listing.decode("utf-8").splitlines()}
    changed = sorted(n for n in signed.keys() & now.keys() if signed[n] != now[n])
    missing = sorted(signed.keys() - now.keys())
    extra = sorted(now.keys() - signed.keys())
    out = []
    for what, numbers in (("changed", changed), ("missing", missing), ("extra (not signed)", extra)):
        if numbers:
            shown = ", ".join(str(n) for n in numbers[:10]) + (" ..." if len(numbers) > 10 else "")
            out.append(f"{len(numbers)} frame(s) {what} since signing: {shown}")
    return out
