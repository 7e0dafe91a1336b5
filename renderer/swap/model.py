"""The model side of a swap: a model's card at once, its network loaded in the background."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from renderer.errors import ModelError
from renderer.modelcard import ModelCard, load_model_card
from renderer.pipeline import since_process_start
from renderer.swap.settings import MODEL_BATCH


def _load_network(model_dir: Path, device: str | None, card: ModelCard, upscaler: bool) -> tuple[Any, Any, Any]:
    """(the eval-mode SwapAutoencoder, its torch.device, B's upscaler or None): imports torch, reads
    the weights. ModelError when the folder now holds another save than the one `card` was read from."""
    from renderer.checkpoint import model_files
    from renderer.model import load_model, pick_device

    dev = pick_device(device)
    network, loaded = load_model(model_dir, dev)
    if (loaded.weights_sha256, loaded.config) != (card.weights_sha256, card.config):
        raise ModelError(f"model {model_dir} was replaced while it loaded (a new save?); run again")
    up = None
    if upscaler:
        from renderer.upscale import load_upscaler

        assert card.upscaler is not None
        up = load_upscaler(model_files(model_dir), card.upscaler, card.weights_sha256, dev)
    return network, dev, up


def _loading(model_dir: Path, device: str | None, card: ModelCard,
             upscaler: bool) -> Future[tuple[Any, Any, Any, float | None]]:
    """A future of (`_load_network`'s triple, seconds since process start when it was loaded), run
    on a thread started here; its error (ModelError, InputError for an unavailable device)
    is the future's exception."""
    future: Future[tuple[Any, Any, Any, float | None]] = Future()
    future.set_running_or_notify_cancel()

    def work() -> None:
        try:
            future.set_result((*_load_network(model_dir, device, card, upscaler), since_process_start()))
        except BaseException as err:  # handed to whoever waits (`SwapModel.network`)
            future.set_exception(err)

    # Not a daemon: a process that exits early (a bad argument found meanwhile) waits for the load
    # to finish instead of tearing torch down in the middle of its import.
    threading.Thread(target=work, name="doppel-model-load").start()
    return future


class SwapModel:
    """A swap model: its card, and the network it renders through.

    The card is read here (a missing model, a card without rights: ModelError at once). The
    network (torch, the weights) loads on a background thread started here, so that a command's
    probing and checks, and a render's decode, go on while it loads; `network()` waits for it and raises what
    loading raised (ModelError for missing or corrupt weights, InputError for an unavailable
    `device`), so a broken model still fails the render with its own one-line error.
    `background=False` loads it here instead.

    `__call__` takes (N, S, S, 3) uint8 aligned crops and returns ((N, S, S, 3) float32
    RGB in [0, 1], (N, S, S) float32 learned masks or None). Batches are always run at
    `MODEL_BATCH` rows (zero-padded), so a face's output never depends on how many other
    faces shared its batch. `threads`: torch's thread count on the calling thread while a
    batch runs (None: torch's own), see `with_threads`.
    """

    def __init__(self, model_dir: Path, direction: str, device: str | None = None, *,
                 background: bool = True) -> None:
        self.card = load_model_card(model_dir)
        self.config = self.card.config
        self.size = int(self.config.input_size)
        self.decoder = "b" if direction == "a2b" else "a"
        self.source_decoder = "a" if self.decoder == "b" else "b"  # the person in the frame, rebuilt
        self.learns_mask = bool(self.config.learn_mask)
        self.threads: int | None = None
        self._threads_before: int | None = None  # the calling thread's torch threads before the first batch
        # B's face upscaler (`renderer.upscale`), when the card has one and the swap decodes to B:
        # it learned B's detail, so a b2a swap has none. Loaded with the network.
        self._wants_upscaler = self.card.upscaler is not None and self.decoder == "b"
        self._network = _loading(Path(model_dir), device, self.card, self._wants_upscaler)
        if not background:
            self.network()
        # The expected-error prior of the source decoder (`renderer.error_prior`), when the card has one
        # for it: `occlusion: reconstruction` divides the rebuild error by it. A 16 KB file, no torch.
        self.error_prior: np.ndarray | None = None
        ep = self.card.error_prior
        if ep is not None and ep.decoder == self.source_decoder:
            from renderer.checkpoint import model_files
            from renderer.error_prior import load_error_prior

            self.error_prior = load_error_prior(model_files(model_dir), ep, self.card.weights_sha256)

    def settle(self) -> None:
        """Wait until the load has finished, succeeded or not, without raising its error."""
        self._network.exception()

    def network(self) -> tuple[Any, Any]:
        """(SwapAutoencoder, torch.device) once loaded; waits for the load and raises its error."""
        network, device, _, _ = self._network.result()
        return network, device

    @property
    def upscaler(self) -> Any:
        """B's loaded face upscaler, or None (no wait when the card has none for this direction)."""
        return self._network.result()[2] if self._wants_upscaler else None

    @property
    def loaded_at(self) -> float | None:
        """Seconds since process start when the network had loaded (None: not yet, or unknown)."""
        return self._network.result()[3] if self._network.done() and not self._network.exception() else None

    @property
    def device(self) -> Any:
        """The torch.device the network runs on (waits for the load)."""
        return self.network()[1]

    def with_threads(self, threads: int | None) -> SwapModel:
        """The same loaded (or loading) model, for one render: its batches run with `threads` torch
        threads on the calling thread, until `restore_threads`."""
        view = copy.copy(self)
        view.threads, view._threads_before = threads, None
        return view

    def restore_threads(self) -> None:
        """Give the calling thread back the torch thread count it had before this view's first
        batch changed it (the end of a render; call it on the thread that ran the batches)."""
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, S, S, 3) uint8 crops -> the swap, (N, S, S, 3) float32 in [0, 1], and the learned
        mask (N, S, S) float32, or None when the model learns none."""
        return self._decode(crops, (self.decoder,))[0]

    def swap_and_rebuild(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """(swapped, learned mask, rebuilt, rebuilt's learned mask): the swap as `__call__`, plus
        the same crops through the source person's own decoder (A->A for a2b), for finding
        occluders (`renderer.composite.occlusion`). One encoder pass feeds both decoders:
        the cost over `__call__` is one decoder pass. Shapes as for `__call__`."""
        (swapped, learned), (rebuilt, rebuilt_mask) = self._decode(crops, (self.decoder, self.source_decoder))
        return swapped, learned, rebuilt, rebuilt_mask

    def _decode(self, crops: np.ndarray, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The crops through the encoder once and through each named decoder, in fixed-shape batches
        of MODEL_BATCH (zero-padded), so a face's output does not depend on the faces beside it."""
        import torch

        model, device = self.network()
        n = len(crops)
        outs = [(np.empty((n, self.size, self.size, 3), np.float32),
                 np.empty((n, self.size, self.size), np.float32) if self.learns_mask else None) for _ in names]
        decoders = {"a": model.decoder_a, "b": model.decoder_b}
        # torch's thread count is per calling thread once it has run anything: set it here, on the
        # thread that runs the batches, once (setting it rebuilds thread pools), until restore_threads.
        if self.threads is not None and torch.get_num_threads() != self.threads:
            if self._threads_before is None:
                self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            for lo in range(0, n, MODEL_BATCH):
                part = crops[lo:lo + MODEL_BATCH]
                batch = np.zeros((MODEL_BATCH, self.size, self.size, 3), np.uint8)
                batch[: len(part)] = part
                x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S)
                z = model.encoder(x)  # (B, C, 8, 8)
                for (rgb, mask), name in zip(outs, names):
                    y = decoders[name](z).float().cpu()  # (B, 3|4, S, S) in [0, 1]
                    rgb[lo:lo + len(part)] = y[: len(part), :3].permute(0, 2, 3, 1).numpy()
                    if mask is not None:
                        mask[lo:lo + len(part)] = y[: len(part), 3].numpy()
        return outs
