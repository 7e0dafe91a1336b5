"""The few named errors Doppel raises.

Every message says what was received, where, and what is allowed. The CLI maps
`InputError` to exit status 2 (bad input, nothing written) and every other
`DoppelError` to exit status 1 (the job started and failed).
"""

from __future__ import annotations


class DoppelError(Exception):
    """Base of every error Doppel raises on purpose."""

    exit_code = 1


class InputError(DoppelError, ValueError):
    """The user handed us something we cannot use: a path, a range, a preset key, a model."""

    exit_code = 2


class MediaError(DoppelError):
    """Decoding or encoding failed part-way (corrupt or truncated media, encoder refused)."""


class ModelError(DoppelError):
    """A model directory is missing, corrupt, of the wrong kind, or lacks its rights statement."""

    exit_code = 2


class TrainingError(DoppelError):
    """Training started and could not go on (the loss became NaN or infinite); the last checkpoint stays."""


class RenderError(DoppelError):
    """A render job (clip, chunk, publish) failed; other clips may still have succeeded."""


class ProvenanceError(DoppelError):
    """Signing or verifying a C2PA manifest failed."""


def closest(word: str, allowed: "list[str] | tuple[str, ...]") -> str:
    """' ; did you mean 'x'?' for the nearest allowed word, or '' when nothing is close."""
    import difflib

    match = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""
