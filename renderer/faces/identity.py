"""Identity: a 128-d embedding per face (dlib's ResNet face recognition model).

Two faces of the same person are usually closer than 0.6 (Euclidean) in this
space; `DEFAULT_THRESHOLD` is that value. Embeddings let later stages pick
"the face that is person A" among several in a frame.

Convention: frame (H, W, 3) uint8 RGB; landmarks (68, 2) or (5, 2) float64
frame pixels; embedding (128,) float32.
"""

from __future__ import annotations

import numpy as np

from renderer.errors import InputError
from renderer.faces import Face
from renderer.faces import models
from renderer.faces.landmarks import to_dlib_shape

DEFAULT_THRESHOLD = 0.6


def embed(frame_rgb: np.ndarray, face_or_landmarks: Face | np.ndarray, jitter: int = 0) -> np.ndarray:
    """(128,) float32 identity vector of one face.

    The model aligns its own 150 px chip from the 5- or 68-point shape.
    jitter > 0 averages that many randomly jittered chips (slower, a bit steadier).
    """
    pts = face_or_landmarks.landmarks if isinstance(face_or_landmarks, Face) else face_or_landmarks
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) not in (68, 5):
        raise InputError(f"embed needs (68, 2) or (5, 2) landmarks; got shape {pts.shape}")
    shape = to_dlib_shape(pts)
    vec = models.recognition_model().compute_face_descriptor(np.ascontiguousarray(frame_rgb), shape, int(jitter))
    return np.asarray(vec, dtype=np.float32)


def identity_distance(a: np.ndarray | Face, b: np.ndarray | Face) -> float:
    """Euclidean distance between two embeddings (or two Faces that carry one); < 0.6: same person."""
    va = a.embedding if isinstance(a, Face) else a
    vb = b.embedding if isinstance(b, Face) else b
    if va is None or vb is None:
        raise InputError("identity_distance needs two embeddings; a Face without one was passed (use embed=True)")
    return float(np.linalg.norm(np.asarray(va, np.float64) - np.asarray(vb, np.float64)))


def reference_embedding(frame_rgb: np.ndarray, detector: str = "hog") -> np.ndarray | None:
    """(128,) embedding of the largest face in a reference picture; None when it shows no face."""
    from renderer.faces.track import find_faces  # track builds on this module

    faces = find_faces(frame_rgb, detector=detector, embed=True)  # largest first
    return faces[0].embedding if faces else None
