"""Check the C2PA manifest of a rendered file and say what it claims.

Prints who signed, when, the source media, the model (identities, card hash, rights) and the
swapped frame ranges. MP4/MOV carry the manifest inside; MXF carries it in a sidecar
`<stem>.c2pa` beside the file (or name one with --manifest). An image sequence (its folder, or a
pattern such as shot.%04d.exr) carries one sidecar `<prefix>.c2pa` in its folder over all its
frames in order: a changed, missing or extra frame makes it INVALID, and the frames are named.

Exit status: 0 valid (and, with --trust, signed under that CA); 1 invalid, tampered or
unreadable, signed with a certificate that has since expired, or --trust given and the signer
is not under it; 2 no manifest (an empty file has none) or bad arguments (a folder, a missing file). Without
--trust a valid signature from an unknown signer exits 0 with a "not checked" note.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from renderer import provenance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("media", type=Path, metavar="MEDIA",
                        help="the rendered file, or image sequence (its folder or shot.%%04d.exr; read only)")
    parser.add_argument("--trust", type=Path, metavar="CA.pem",
                        help="PEM certificate(s) to trust, e.g. the ca.pem from 'doppel keys init'")
    parser.add_argument("--manifest", type=Path, metavar="SIDECAR.c2pa",
                        help="a sidecar manifest to check MEDIA against (default: <stem>.c2pa beside MEDIA)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    result = provenance.verify_media(args.media, trust_pem=args.trust, manifest_path=args.manifest)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return result.exit_code
    headline = {"valid": "VALID", "invalid": "INVALID", "expired": "EXPIRED SIGNER",
                "no_manifest": "NO MANIFEST"}[result.status]
    if result.status == "valid":
        headline += {True: ", signer trusted", False: ", signer NOT trusted", None: ", signer not checked"}[
            result.trusted]
    print(f"{result.path}: {headline} ({result.manifest} manifest)")
    if result.status != "no_manifest":
        when = result.signed_at or "unknown"
        if result.signed_at and not result.timestamp_trusted:
            when += " (claimed by the signer; no timestamp authority)"
        print(f"  signed by: {result.signer or 'unknown'} (issuer {result.issuer or 'unknown'})")
        print(f"  signed at: {when}")
        print(f"  software:  {result.software or 'unknown'}")
        print(f"  type:      {result.digital_source_type or 'not stated'}")
        if result.source:
            print(f"  source:    {result.source.get('name')} sha256 {result.source.get('sha256', 'not stated')}")
        if result.model:
            model = result.model
            print(f"  model:     {model.get('name')} identities {', '.join(model.get('identities', []))}")
            print(f"             card sha256 {model.get('card_sha256')}; rights: {model.get('rights')}")
        if result.swapped_ranges:
            ranges = ", ".join(f"{s}-{e - 1}" for s, e in result.swapped_ranges)
            print(f"  swapped:   frames {ranges} ({sum(e - s for s, e in result.swapped_ranges)} frames)")
    for failure in result.failures:
        print(f"  failure:   {failure}")
    for message in result.messages:
        print(f"  note:      {message}")
    return result.exit_code
