"""Run a job bundle on this machine through the real OpenJD runtime (`openjd.sessions`), N workers at once."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from renderer.errors import InputError, RenderError
from renderer.farm.job import EXTENSIONS, PARAMETER_VALUES, TEMPLATE


# --------------------------------------------------------------------------- local runner (openjd.sessions)


@dataclass(frozen=True)
class TaskOutcome:
    """One task run by `run_bundle`: its step, parameters, end state and log file."""

    step: str
    frames: str | None
    state: str  # SUCCESS | FAILED | CANCELED | TIMEOUT
    exit_code: int | None
    seconds: float
    log: Path


@dataclass(frozen=True)
class RunResult:
    """What `run_bundle` did."""

    out_dir: Path
    tasks: tuple[TaskOutcome, ...]
    seconds: float
    workers: int

    @property
    def failed(self) -> list[TaskOutcome]:
        return [t for t in self.tasks if t.state != "SUCCESS"]

    def to_json(self) -> dict[str, Any]:
        render_json = self.out_dir / "render.json"
        record = json.loads(render_json.read_text("utf-8")) if render_json.is_file() else {}
        return {"status": "failed" if self.failed else record.get("status", "ok"), "out": str(self.out_dir),
                "workers": self.workers, "tasks": len(self.tasks), "failed_tasks": len(self.failed),
                "render_json": str(render_json), "return_edits": record.get("return_edits", []),
                "outputs": [c["output"]["path"] for c in record.get("clips", []) if c["output"].get("path")],
                "seconds": round(self.seconds, 3),
                "task_seconds": [{"step": t.step, "frames": t.frames, "seconds": round(t.seconds, 3)}
                                 for t in self.tasks]}


class _SessionLog(logging.Handler):
    """Sends the openjd.sessions log lines of one session to its own file."""

    def __init__(self, session_id: str, path: Path) -> None:
        super().__init__()
        self.session_id = session_id
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "session_id", None) == self.session_id:
            self.fh.write(record.getMessage() + "\n")
            self.fh.flush()

    def close(self) -> None:
        self.fh.close()
        super().close()


def load_parameter_values(bundle: Path) -> dict[str, Any]:
    path = bundle / PARAMETER_VALUES
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    values = data.get("parameterValues", []) if isinstance(data, dict) else []
    if not isinstance(values, list) or not all(isinstance(v, dict) and "name" in v for v in values):
        raise InputError(f"{path}: expected 'parameterValues: [{{name: ..., value: ...}}, ...]'")
    return {v["name"]: v.get("value") for v in values}


def _worker_doppel() -> str:
    """The doppel beside this interpreter (a venv's bin/), else `doppel` from PATH."""
    here = Path(sys.executable).parent / ("doppel.exe" if os.name == "nt" else "doppel")
    return str(here) if here.is_file() else "doppel"


def run_bundle(bundle_dir: str | Path, *, workers: int = 1, out_dir: str | Path | None = None,
               env: Mapping[str, str] | None = None, on_task: Callable[[TaskOutcome], None] | None = None,
               on_message: Callable[[str, str], None] | None = None) -> RunResult:
    """Run a bundle's job here: the Render tasks in `workers` openjd Sessions at once (each a
    thread running its tasks one after another, as a farm worker would), then Publish.

    out_dir overrides OutputDir (default BUNDLE_DIR/output); task logs go to OUT/logs/.
    RenderError when a task fails (its log's last lines in the message); Publish does not run then.
    """
    from openjd.model import (
        DecodeValidationError, RevisionExtensions, SpecificationRevision, StepParameterSpaceIterator,
        create_job_with_symbol_tables, decode_job_template, preprocess_job_parameters,
    )
    from openjd.sessions import ActionState, Session

    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers {workers!r} is not allowed (allowed: an integer >= 1)")
    bundle = Path(bundle_dir)
    template_path = bundle / TEMPLATE
    if not template_path.is_file():
        raise InputError(f"{bundle} is not a job bundle: {TEMPLATE} is missing (make one with `doppel farm export`)")
    try:
        doc = yaml.safe_load(template_path.read_text("utf-8"))
        template = decode_job_template(template=doc, supported_extensions=EXTENSIONS)
    except (yaml.YAMLError, DecodeValidationError) as err:
        raise InputError(f"{template_path} is not a valid job template: {err}") from err
    out = Path(out_dir) if out_dir is not None else bundle / "output"
    out = out.resolve()
    values = load_parameter_values(bundle)
    values["OutputDir"] = str(out)
    declared = {p.name for p in template.parameterDefinitions or []}
    if "DoppelCommand" in declared:
        values["DoppelCommand"] = _worker_doppel()
    try:
        params = preprocess_job_parameters(job_template=template, job_parameter_values={
            k: str(v) for k, v in values.items() if k in declared}, job_template_dir=bundle.resolve(),
            current_working_dir=Path.cwd(), environment_templates=[])
        created = create_job_with_symbol_tables(job_template=template, job_parameter_values=params,
                                                environment_templates=[])
    except (ValueError, DecodeValidationError) as err:
        raise InputError(f"{bundle}: the job cannot be made from its parameters: {err}") from err
    job = created.job
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    revision = RevisionExtensions(spec_rev=SpecificationRevision.v2023_09, supported_extensions=EXTENSIONS)
    os_env = dict(env) if env is not None else None
    session_logger = logging.getLogger("openjd.sessions")
    session_logger.setLevel(logging.INFO)
    started = time.monotonic()
    outcomes: list[TaskOutcome] = []
    lock = threading.Lock()

    def run_tasks(step: Any, tasks: list[Any], worker: int, stop: threading.Event) -> None:
        session_id = f"doppel-{step.name.lower()}-{worker}-{uuid.uuid4().hex[:6]}"
        done = threading.Event()
        status: dict[str, Any] = {}

        def callback(_sid: str, st: Any) -> None:
            if st.status_message and on_message is not None:
                on_message(session_id, st.status_message)
            if st.state in (ActionState.SUCCESS, ActionState.FAILED, ActionState.CANCELED, ActionState.TIMEOUT):
                status["state"], status["exit_code"] = st.state.name, st.exit_code
                done.set()

        for params_set in tasks:
            if stop.is_set():
                return
            frames = params_set.get("Frames")
            label = f"{step.name}-{frames.value if frames else 'all'}"
            log_path = logs / f"{label}.log"
            handler = _SessionLog(session_id, log_path)
            session_logger.addHandler(handler)
            t0 = time.monotonic()
            try:
                with Session(session_id=session_id, job_parameter_values=params, job_name=str(job.name),
                             callback=callback, os_env_vars=os_env, revision_extensions=revision) as session:
                    done.clear()
                    status.clear()
                    session.run_task(step_script=step.script, task_parameter_values=params_set,
                                     step_name=step.name, resolved_symtab=created.step_symbol_tables.get(step.name))
                    done.wait()
            finally:
                session_logger.removeHandler(handler)
                handler.close()
            outcome = TaskOutcome(step.name, frames.value if frames else None, status.get("state", "FAILED"),
                                  status.get("exit_code"), time.monotonic() - t0, log_path)
            with lock:
                outcomes.append(outcome)
            if on_task is not None:
                on_task(outcome)
            if outcome.state != "SUCCESS":
                stop.set()
                return

    for step in job.steps:
        tasks = list(StepParameterSpaceIterator(space=step.parameterSpace))
        n = min(workers, len(tasks)) or 1
        shares = [tasks[k::n] for k in range(n)]  # task k goes to worker k mod n
        stop = threading.Event()
        threads = [threading.Thread(target=run_tasks, args=(step, share, k, stop), name=f"doppel-farm-{k}")
                   for k, share in enumerate(shares)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        failed = [o for o in outcomes if o.state != "SUCCESS"]
        if failed:
            first = failed[0]
            tail = first.log.read_text("utf-8", errors="replace").splitlines()[-12:] if first.log.is_file() else []
            raise RenderError(f"step {first.step} task {first.frames or ''} ended {first.state} "
                              f"(exit {first.exit_code}); log {first.log}:\n    " + "\n    ".join(tail))
    return RunResult(out, tuple(outcomes), time.monotonic() - started, workers)
