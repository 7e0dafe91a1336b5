"""List, show and validate render presets.

  doppel presets list               the shipped presets (name, output, description)
  doppel presets show NAME|FILE     every resolved key of a preset, as YAML (or --json)
  doppel presets validate FILE...   check preset files; errors name file, line, key and what is allowed
  doppel presets keys [--config C]  every key, and the colour spaces of an OpenColorIO config

A preset is referenced by the name of a shipped file (presets/<name>.yaml) or by a path.
"""

from __future__ import annotations

import argparse
import json

from renderer.presets import FIELDS, load_preset, preset_sha256, preset_to_yaml, shipped_presets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_list = sub.add_parser("list", help="list the shipped presets")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_show = sub.add_parser("show", help="print every resolved key of a preset")
    p_show.add_argument("preset", metavar="NAME|FILE", help="shipped preset name or a YAML file")
    p_show.add_argument("--json", action="store_true", help="machine-readable output (flat dotted keys)")
    p_val = sub.add_parser("validate", help="check preset files (exit 2 on the first bad one)")
    p_val.add_argument("files", metavar="FILE", nargs="+", help="preset YAML files or shipped names")
    p_val.add_argument("--json", action="store_true", help="machine-readable output")
    p_keys = sub.add_parser("keys", help="every key a preset (or a FACESWAP marker) may set")
    p_keys.add_argument("--json", action="store_true", help="machine-readable output")
    p_keys.add_argument("--config", metavar="OCIO", default=None,
                        help="OpenColorIO config whose colour spaces to list for colour_management.*_space "
                             "(a config.ocio path or ocio:// built-in; default: %s)" % FIELDS["colour_management.config"].default)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = []
        for name in shipped_presets():
            p = load_preset(name)
            rows.append({"name": name, "codec": p.output.codec, "container": p.output.container,
                         "audio": p.output.audio, "handles": p.handles, "description": p.description,
                         "sha256": preset_sha256(p), "path": p.source})
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                print(f"{r['name']:<12} {r['codec']:<12} {r['container']:<4} {r['audio']:<5} "
                      f"handles {r['handles']:<3} {r['description']}")
        return 0
    if args.action == "show":
        p = load_preset(args.preset)
        if args.json:
            print(json.dumps({"name": p.name, "source": p.source, "sha256": preset_sha256(p),
                              "values": p.values() | {"output.pix_fmt": p.output.pix_fmt}}, indent=2))
        else:
            print(f"# preset {p.name} from {p.source}\n# sha256 {preset_sha256(p)}")
            print(preset_to_yaml(p), end="")
        return 0
    if args.action == "validate":
        results = []
        for f in args.files:
            p = load_preset(f)  # raises InputError (exit 2) naming file, line and key
            results.append({"file": f, "ok": True, "sha256": preset_sha256(p)})
            if not args.json:
                print(f"{f}: ok ({p.output.codec} in {p.output.container}, sha256 {preset_sha256(p)[:12]})")
        if args.json:
            print(json.dumps(results, indent=2))
        return 0
    from renderer.colour_management import colour_spaces, load_config

    config = args.config or FIELDS["colour_management.config"].default
    spaces = colour_spaces(load_config(config, "--config"))  # InputError (exit 2) on a bad config
    rows = [{"key": k, "allowed": f.describe(), "default": f.default, "help": f.help} for k, f in FIELDS.items()]
    for r in rows:
        if r["key"] in ("colour_management.source_space", "colour_management.working_space"):
            r["allowed"] = f"a colour space of the config (or an alias){' or null' if r['default'] is None else ''}"
            r["spaces"] = spaces
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['key']:<32} {r['allowed']:<60} default {r['default']!r}")
        print(f"\ncolour spaces of {config} ({len(spaces)}):")
        for name in spaces:
            print(f"  {name}")
    return 0
