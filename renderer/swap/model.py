"""The model side of a swap: a model's card at once, its network loaded in the background."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import Future
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from renderer.errors import ModelError
from renderer.model_process import ModelProcess, decode_batches, load_network, runtime_of, set_threads
from renderer.modelcard import ModelCard, load_model_card
from renderer.pipeline import _process_origin, since_process_start
from renderer.swap.settings import MODEL_BATCH, SwapSettings


def _loading(model_dir: Path, device: str | None, card: ModelCard, upscaler: bool,
             precision: str, runtime: str) -> Future[tuple[Any, Any, Any, str, float | None]]:
    """A future of (`load_network`'s four, seconds since process start when it was loaded), run
    on a thread started here; its error (ModelError, InputError for an unavailable device)
    is the future's exception."""
    future: Future[tuple[Any, Any, Any, str, float | None]] = Future()
    future.set_running_or_notify_cancel()

    def work() -> None:
        try:
            future.set_result((*load_network(model_dir, device, card, upscaler, precision, runtime),
                               since_process_start()))
        except BaseException as err:  # handed to whoever waits (`SwapModel.network`)
            future.set_exception(err)

    # Not a daemon: a process that exits early (a bad argument found meanwhile) waits for the load
    # to finish instead of tearing torch down in the middle of its import.
    threading.Thread(target=work, name="doppel-model-load").start()
    return future


class SwapModel:
    """A swap model: its card, and the network it renders through.

    The card is read here (a missing model, a card without rights: ModelError at once). The
    network (torch, the weights) loads in the background, so that a command's probing and
    checks, and a render's decode, go on while it loads: on a thread started here, or, with
    `process=True` (or a `ModelProcess.spawn()`ed earlier), in a child process of its own
    (`renderer.model_process`: torch's import and the batches then run beside the render's Python
    threads instead of sharing the GIL with them; the commands use it). `network()` / `ready()` wait for it and raise what loading raised
    (ModelError for missing or corrupt weights, InputError for an unavailable `device`), so a
    broken model still fails the render with its own one-line error. `background=False` loads it
    here instead (in-process). `close()` ends the child process (a no-op in-process).

    `__call__` takes (N, S, S, 3) uint8 aligned crops and returns ((N, S, S, 3) float32
    RGB in [0, 1], (N, S, S) float32 learned masks or None). Batches are always run at
    `MODEL_BATCH` rows (zero-padded), so a face's output never depends on how many other
    faces shared its batch. `threads`: torch's thread count while a batch runs (None: torch's
    own), see `with_threads`. Both ways give bit-identical outputs (tests/test_model_process.py).
    `precision`: "fp32" (the library's default: exact), "bf16" or "auto" (bf16 where the device
    computes it natively, `model_process.resolve_precision`); `.precision` says which it runs at.
    `runtime`: "auto" (OpenVINO, else ONNX Runtime, where they fit, `model_process.resolve_runtime`),
    "torch", "openvino" or "onnxruntime"; `.runtime` says which runs it.
    """

    def __init__(self, model_dir: Path, direction: str, device: str | None = None, *,
                 background: bool = True, process: bool | ModelProcess = False, precision: str = "fp32",
                 runtime: str = "auto", upscale: str = "auto") -> None:
        self.card = load_model_card(model_dir)
        self.config = self.card.config
        self.size = int(self.config.input_size)
        self.decoder = "b" if direction == "a2b" else "a"
        self.source_decoder = "a" if self.decoder == "b" else "b"  # the person in the frame, rebuilt
        self.learns_mask = bool(self.config.learn_mask)
        self.threads: int | None = None
        self._threads_before: int | None = None  # the calling thread's torch threads before the first batch
        # B's face upscaler (`renderer.upscale`), when the card has one and the swap decodes to B:
        # it learned B's detail, so a b2a swap has none. Loaded with the network unless `upscale` is
        # "off", so that such a swap runs where a model without one would (`resolve_runtime`).
        self.has_upscaler = self.card.upscaler is not None and self.decoder == "b"
        self.loads_upscaler = self.has_upscaler and upscale != "off"
        self.upscale_factor = self.card.upscaler.config.scale if self.has_upscaler else 1  # type: ignore[union-attr]
        self._process: ModelProcess | None = None
        self._network: Future[tuple[Any, Any, Any, str, float | None]] | None = None
        if isinstance(process, ModelProcess) or (process and background):  # a child: new, or spawned earlier
            spawned = process if isinstance(process, ModelProcess) else ModelProcess.spawn()
            self._process = spawned.load(Path(model_dir), device, self.card, self.loads_upscaler, MODEL_BATCH,
                                         precision, runtime)
        else:
            self._network = _loading(Path(model_dir), device, self.card, self.loads_upscaler, precision, runtime)
            if not background:
                self.network()
        # The occluder segmenter of `occlusion: learned` (`renderer.segmenter`), when the card has one:
        # ONNX Runtime in this process, loaded on first use (copies from `with_threads` share it).
        self.has_segmenter = self.card.segmenter is not None
        self._model_dir = Path(model_dir)
        self._lazy: dict[str, Any] = {}
        # The expected-error prior of the source decoder (`renderer.error_prior`), when the card has one
        # for it: `occlusion: reconstruction` divides the rebuild error by it. A 16 KB file, no torch.
        self.error_prior: np.ndarray | None = None
        ep = self.card.error_prior
        if ep is not None and ep.decoder == self.source_decoder:
            from renderer.checkpoint import model_files
            from renderer.error_prior import load_error_prior

            self.error_prior = load_error_prior(model_files(model_dir), ep, self.card.weights_sha256)

    @property
    def in_process(self) -> bool:
        """Whether the network runs in this process (False: in `renderer.model_process`'s child)."""
        return self._process is None

    def settle(self) -> None:
        """Wait until an in-process load has finished, succeeded or not, without raising its error."""
        if self._network is not None:
            self._network.exception()

    def close(self) -> None:
        """The end of this model's use: settle an in-process load, end a child process."""
        self.settle()
        if self._process is not None:
            self._process.close()

    def ready(self) -> None:
        """Wait for the load, wherever it runs; raise its error."""
        if self._process is not None:
            self._process.ready()
        else:
            self.network()

    def network(self) -> tuple[Any, Any]:
        """(SwapAutoencoder, torch.device) once loaded in-process; waits for the load and raises its error."""
        if self._network is None:
            raise ModelError("this SwapModel runs its network in a child process (process=True); it has no "
                             "network here")
        network, device, *_ = self._network.result()
        return network, device

    @property
    def loaded_at(self) -> float | None:
        """Seconds since process start when the network had loaded (None: not yet, or unknown)."""
        if self._process is not None:
            origin, ready = _process_origin(), self._process.ready() if self._process.answered else None
            return None if origin is None or ready is None else ready["loaded_at"] - origin
        assert self._network is not None
        return self._network.result()[4] if self._network.done() and not self._network.exception() else None

    @property
    def precision(self) -> str:
        """"fp32" or "bf16": the arithmetic the network runs at (`precision` resolved; waits for the load)."""
        if self._process is not None:
            return str(self._process.ready().get("precision", "fp32"))
        assert self._network is not None
        return self._network.result()[3]

    @property
    def runtime(self) -> str:
        """"torch", "openvino" or "onnxruntime": what runs the network (waits for the load)."""
        if self._process is not None:
            return str(self._process.ready().get("runtime", "torch"))
        return runtime_of(self.network()[0])

    @property
    def device(self) -> Any:
        """Where the network runs (waits for the load): a torch.device, or its name from a child process."""
        if self._process is not None:
            return self._process.ready()["device"]
        return self.network()[1]

    @property
    def process_busy_seconds(self) -> float | None:
        """Seconds the model process has spent computing the answers read so far; None in-process."""
        return self._process.busy_seconds if self._process is not None else None

    def peak_rss_mib(self) -> float | None:
        """Peak resident memory (MiB) of the model's own process so far; None in-process (it is this one's)."""
        return self._process.peak_rss_mib() if self._process is not None else None

    def with_threads(self, threads: int | None) -> SwapModel:
        """The same loaded (or loading) model, for one render: its batches run with `threads` torch
        threads (on the calling thread in-process), until `restore_threads`."""
        view = copy.copy(self)
        view.threads, view._threads_before = threads, None
        return view

    def restore_threads(self) -> None:
        """Give the calling thread back the torch thread count it had before this view's first
        batch changed it (the end of a render; call it on the thread that ran the batches)."""
        if self._threads_before is not None:
            set_threads(self._threads_before)
            self._threads_before = None

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, S, S, 3) uint8 crops -> the swap, (N, S, S, 3) float32 in [0, 1], and the learned
        mask (N, S, S) float32, or None when the model learns none."""
        return self.submit(crops, rebuild=False)()[0]

    def swap_and_rebuild(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """(swapped, learned mask, rebuilt, rebuilt's learned mask): the swap as `__call__`, plus
        the same crops through the source person's own decoder (A->A for a2b), for finding
        occluders (`renderer.composite.occlusion`). One encoder pass feeds both decoders:
        the cost over `__call__` is one decoder pass. Shapes as for `__call__`."""
        (swapped, learned), (rebuilt, rebuilt_mask) = self.submit(crops, rebuild=True)()
        return swapped, learned, rebuilt, rebuilt_mask

    def submit(self, crops: np.ndarray, rebuild: bool) -> Callable[[], list[tuple[np.ndarray, np.ndarray | None]]]:
        """Start the swap of `crops` (and, with `rebuild`, their rebuild through the source
        person's decoder); the returned function gives [(swapped, learned mask)] or [(swapped,
        learned), (rebuilt, rebuilt's learned mask)] as `__call__` / `swap_and_rebuild` do. With a
        model process the batch runs there meanwhile (the caller tracks and composites other
        frames); in-process it has run by the time this returns."""
        decoders = self.decoder + (self.source_decoder if rebuild else "")
        if self._process is not None:
            process, ticket = self._process, self._process.decode(crops, decoders, self.threads)
            return lambda: self._pairs(process.result(ticket), len(decoders))
        network, device = self.network()
        if runtime_of(network) == "torch":  # torch's threads are the calling thread's
            self._set_threads()
        done = self._pairs(decode_batches(network, device, crops, decoders, MODEL_BATCH, self.learns_mask,
                                          self.threads), len(decoders))
        return lambda: done

    def segment(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 crops -> (N, S, S) float32 occluder probability, by the model's occluder
        segmenter (`has_segmenter`; loaded on the first call). ModelError without one."""
        if self.card.segmenter is None:
            raise ModelError("this model has no occluder segmenter (train one with `doppel train-segmenter MODEL_DIR`)")
        if "segmenter" not in self._lazy:
            from renderer.checkpoint import model_files
            from renderer.segmenter import load_segmenter

            self._lazy["segmenter"] = load_segmenter(model_files(self._model_dir), self.card.segmenter)
        return self._lazy["segmenter"](crops)

    def upscale(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) float32 [0, 1] swapped crops through B's face upscaler (`has_upscaler`):
        (N, S * upscale_factor, S * upscale_factor, 3) float32 [0, 1], in MODEL_BATCH batches."""
        if not self.loads_upscaler:
            raise ModelError("this model has no face upscaler for the swap's target person, or was loaded with "
                             "upscale off")
        if self._process is not None:
            return self._process.upscale(crops, self.threads)
        from renderer.upscale import upscale_crops  # torch: imported where an upscaler runs

        assert self._network is not None
        self._set_threads()
        return upscale_crops(self._network.result()[2], crops, MODEL_BATCH)

    def _set_threads(self) -> None:
        # torch's thread count is per calling thread once it has run anything: set it here, on the
        # thread that runs the batches, once (setting it rebuilds thread pools), until restore_threads.
        before = set_threads(self.threads)
        if before is not None and self._threads_before is None:
            self._threads_before = before

    def _pairs(self, flat: list[np.ndarray], decoders: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """`decode_batches`' flat list as (RGB, learned mask or None) per decoder."""
        step = 2 if self.learns_mask else 1
        return [(flat[k * step], flat[k * step + 1] if self.learns_mask else None) for k in range(decoders)]


class SwapModels:
    """The swap models of one render, each in a process of its own (`SwapModel(process=True)`),
    started once per (model folder, direction, device, precision, runtime): the clips of an edit that share a model
    share its process, and torch is imported once, beside the first clip's hashing and probing.
    `close()` (or the end of a `with` block) ends them all."""

    def __init__(self) -> None:
        self._models: dict[tuple[Path, str, str | None, str, str, str], SwapModel] = {}

    def get(self, model_dir: Path, settings: SwapSettings) -> SwapModel:
        key = (Path(model_dir).resolve(), settings.direction, settings.device, settings.precision, settings.runtime,
               "off" if settings.upscale == "off" else "auto")
        if key not in self._models:
            self._models[key] = SwapModel(Path(model_dir), settings.direction, settings.device, process=True,
                                          precision=settings.precision, runtime=settings.runtime,
                                          upscale=settings.upscale)
        return self._models[key]

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()

    def __enter__(self) -> SwapModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
