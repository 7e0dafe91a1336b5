"""The `doppel` command: the only place that sees argv.

Each subcommand lives in `renderer/commands/<name>.py` and exposes
`add_arguments(parser)` and `run(args) -> int`. The registry below is explicit:
a command exists because it is listed here, never because a file was found.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from renderer import __version__
from renderer.errors import DoppelError

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "probe": ("renderer.commands.probe", "print what a media file holds (frames, rate, timecode, colour, audio)"),
    "trim": ("renderer.commands.trim", "frame-accurate re-encode of a frame range, with audio and timecode"),
    "extract": ("renderer.commands.extract", "find, align and save faces from images and videos into a faceset"),
    "train": ("renderer.commands.train", "train the shared-encoder / two-decoder swap model on two facesets"),
    "train-upscaler": ("renderer.commands.train_upscaler",
                       "train a face upscaler for a model's person B on B's own faceset (sharper swapped faces)"),
    "error-prior": ("renderer.commands.error_prior",
                    "measure where a model's decoder A misses on A's own faces (occlusion mask prior)"),
    "train-segmenter": ("renderer.commands.train_segmenter",
                        "train a model's occluder segmenter (occlusion: learned keeps hands and microphones in front)"),
    "swap": ("renderer.commands.swap", "swap faces in one video (whole or a frame range)"),
    "render": ("renderer.commands.render", "render the FACESWAP-marked clips of an edit and write a return edit"),
    "presets": ("renderer.commands.presets", "list, show and validate YAML presets"),
    "farm": ("renderer.commands.farm", "export and run Open Job Description bundles for render farms"),
    "keys": ("renderer.commands.keys", "make a local C2PA signing certificate chain"),
    "verify": ("renderer.commands.verify", "check the C2PA manifest of a rendered file"),
    "demo": ("renderer.commands.demo", "run the whole pipeline on the built-in sample"),
}


WARM_MODEL_PROCESS = {"swap"}  # commands whose model process the CLI spawns before it imports them
# Long-running commands: run as a program, they put themselves under SCHED_BATCH (pipeline.batch_scheduling).
BATCH_COMMANDS = {"trim", "extract", "train", "train-upscaler", "error-prior", "train-segmenter", "swap", "render",
                  "farm", "demo"}


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value `argv` gives option `name` (`--name V` or `--name=V`; the last one wins), or None."""
    value = None
    for k, arg in enumerate(argv):
        if arg == name and k + 1 < len(argv):
            value = argv[k + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _model_settings(argv: Sequence[str]) -> dict[str, str | None]:
    """What the command line says of the network's runtime, precision and device, read before the
    parser exists, so the model process imports the runtime they pick while the command starts. A
    preset's values are not known yet (they are auto here); the load imports what they need."""
    return {"runtime": _option(argv, "--runtime") or "auto", "precision": _option(argv, "--precision") or "auto",
            "device": _option(argv, "--device")}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the module of the command named in `argv` is imported.

    A command's module pulls in what it needs (torch, dlib, OpenCV); importing all of them
    would cost every `doppel probe` seconds of start-up.
    """
    parser = argparse.ArgumentParser(
        prog="doppel",
        description="Doppel: headless face-swap render node. Every output is labelled synthetic media.",
        epilog="environment: DOPPEL_CACHE (model and sample cache folder), DOPPEL_SIGN_CERT + DOPPEL_SIGN_KEY "
               "(C2PA signing identity), DOPPEL_KEYS_DIR (where `doppel keys init` writes), DOPPEL_SCHED=normal "
               "(long-running commands keep the default scheduling policy instead of Linux's SCHED_BATCH)",
    )
    parser.add_argument("--version", action="version", version=f"doppel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == chosen:
            module = importlib.import_module(module_name)
            command.description = (module.__doc__ or help_text).strip()
            module.add_arguments(command)
            command.set_defaults(_run=module.run)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a farm's or the Blender add-on's Cancel): unwound exactly like Ctrl-C, so every
    writer deletes its temporary file on the way out."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """The `doppel` program. argv None: the process's own arguments, and a long-running command
    then runs its threads and child processes under SCHED_BATCH (`pipeline.batch_scheduling`); a
    caller passing argv (a host running the CLI in its own process) keeps its scheduling."""
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if program and _chosen(argv) in BATCH_COMMANDS:
        from renderer.pipeline import batch_scheduling

        batch_scheduling()  # before the model process and any thread start: they inherit it
    # `doppel swap` spawns its model process first (`renderer.model_process`): torch's ~2 s import
    # runs there beside this process's own imports and the command's checks. Ended below, also
    # when the arguments are refused; the command loads its model in it (`SwapModel(process=...)`).
    warm = None
    if _chosen(argv) in WARM_MODEL_PROCESS and not {"-h", "--help"} & set(argv):
        from renderer.model_process import ModelProcess

        warm = ModelProcess.spawn(**_model_settings(argv))
    try:
        return _run(argv, warm)
    finally:
        if warm is not None:
            warm.close()


def _run(argv: list[str], warm: object) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.model_process = warm
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return int(args._run(args))
    except DoppelError as err:
        print(f"doppel {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # the disk filled, a folder went read-only mid-run: one line, not a traceback
        from renderer.atomic import final_path_of

        where = f" {final_path_of(Path(err.filename))}" if isinstance(err.filename, str) else ""
        print(f"doppel {args.command}: error: cannot write or read{where}: {err.strerror or err}; "
              f"nothing partial kept under a final name", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"doppel {args.command}: {what}; no partial file kept under a final name", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(err, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
