"""Make and inspect the local C2PA signing identity.

  doppel keys init [--out DIR] [--force]   make a CA and an ES256 signing certificate
  doppel keys show                        say which identity a render would sign with

`keys init` writes ca.pem (give it to whoever verifies: `doppel verify --trust ca.pem`),
signer-chain.pem (signing certificate, then the CA) and signer.key (private, mode 0600) into
$DOPPEL_KEYS_DIR, else ~/.config/doppel/keys. The CA's own key is discarded. A studio with its
own certificate sets `signing: {cert: ..., key: ...}` in the preset, or DOPPEL_SIGN_CERT and
DOPPEL_SIGN_KEY, which take precedence over this folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from renderer import provenance
from renderer.atomic import check_writable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="make a local CA and ES256 signing certificate",
                          description="Make a local CA and an ES256 signing certificate for C2PA manifests.")
    init.add_argument("--out", type=Path, default=None,
                      help="folder to write into (default: $DOPPEL_KEYS_DIR or ~/.config/doppel/keys)")
    init.add_argument("--force", action="store_true", help="replace existing keys in that folder")
    init.add_argument("--common-name", default="Doppel local signer",
                      help="signer name shown by verifiers, e.g. the studio or render node (default: %(default)s)")
    init.add_argument("--organization", default="Doppel local", help="organisation name (default: %(default)s)")
    init.add_argument("--days", type=int, default=5 * 365,
                      help="signing certificate validity in days; offline signatures verify only while it is "
                           "in date (default: %(default)s)")
    init.add_argument("--json", action="store_true", help="print the written paths as JSON")
    show = sub.add_parser("show", help="print which signing identity renders would use",
                          description="Print the signing identity found in the environment or keys folder.")
    show.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    if args.keys_action == "init":
        out = args.out if args.out is not None else provenance.default_keys_dir(os.environ)
        check_writable(out, "keys init --out" if args.out is not None else "keys folder", is_dir=True)
        keys = provenance.init_keys(out, common_name=args.common_name, organization=args.organization,
                                    overwrite=args.force, valid_days=args.days)
        info = {"ca_cert": str(keys.ca_cert), "cert_chain": str(keys.cert_chain), "key": str(keys.key),
                "common_name": keys.common_name, "expires": keys.not_after}
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(f"signing certificate '{keys.common_name}' (ES256), valid until {keys.not_after}")
            print(f"  chain: {keys.cert_chain}\n  key:   {keys.key} (mode 0600)\n  CA:    {keys.ca_cert}")
            print(f"verifiers trust it with: doppel verify FILE --trust {keys.ca_cert}")
        return 0
    identity = provenance.resolve_signing_identity(None, os.environ)
    if args.json:
        print(json.dumps(None if identity is None else {
            "cert_chain": str(identity.cert_chain_pem), "key": str(identity.key_pem), "origin": identity.origin}))
    elif identity is None:
        print(f"no signing identity: renders will be UNSIGNED (run 'doppel keys init', set "
              f"{provenance.ENV_CERT}/{provenance.ENV_KEY}, or set 'signing' in the preset)", file=sys.stderr)
    else:
        print(f"signing with {identity.cert_chain_pem} and {identity.key_pem} (from {identity.origin})")
    return 0 if identity is not None else 1
