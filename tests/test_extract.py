"""`doppel extract` on real photos and the real video: faceset contents, idempotence, resume, rejects, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from renderer.atomic import sha256_file
from renderer.cli import main
from renderer.faceset import load_faceset
from tests import face_data as F


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("extract_in")
    photos = root / "photos"
    photos.mkdir()
    for name in ("jesper.jpg", F.COUPLE, "snow.jpg"):
        shutil.copy(F.kphotoalbum_file(name), photos / name)
    F.corrupt_copy(F.kphotoalbum_file("jesper_2.jpg"), photos / "broken.jpg")
    (photos / "notes.txt").write_text("not media\n")
    movie = root / "movie.avi"
    shutil.copy(F.kphotoalbum_file(F.MOVIE), movie)
    return {"photos": photos, "movie": movie, "root": root}


LAST_ERR: list[str] = []


def _extract(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    rc = main(["extract", *args, "--size", "64", "--json", "--no-progress"])
    cap = capsys.readouterr()
    LAST_ERR[:] = [cap.err]
    return rc, (json.loads(cap.out) if cap.out.strip() else {})


@pytest.fixture(scope="module")
def first_run(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("extract_out") / "fs"
    before = {p: sha256_file(p) for p in [*inputs["photos"].iterdir(), inputs["movie"]]}
    from renderer.extract import extract

    summary = extract([inputs["photos"], inputs["movie"]], out, size=64, progress=False)
    return {"out": out, "summary": summary.to_json(), "before": before}


def test_faceset_holds_aligned_crops_with_full_records(first_run: dict, inputs: dict[str, Path]) -> None:
    s, out = first_run["summary"], first_run["out"]
    fs = load_faceset(out)
    assert (fs.crop_size, fs.coverage, fs.landmark_points) == (64, 0.375, 68)
    by_source = {}
    for r in fs.records:
        by_source.setdefault(Path(r.source).name, []).append(r)
        img = cv2.imread(str(out / r.file), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64, 3)
        assert r.source_sha256 == sha256_file(Path(r.source))
        assert r.landmarks.shape == (68, 2) and r.crop_from_frame.shape == (2, 3)
        assert r.embedding is not None and r.embedding.shape == (128,)
        assert r.blur > 20
    assert len(by_source["jesper.jpg"]) == 1 and len(by_source[F.COUPLE]) == 2
    video = by_source["movie.avi"]
    assert 3 <= len(video) < 68  # near-duplicate frames of the talking head dropped
    assert s["rejected"]["near-duplicate"] == 68 - len(video)
    assert len(fs.load_images()) == len(fs) == s["faces_total"]
    # source media untouched
    assert all(sha256_file(p) == h for p, h in first_run["before"].items())


def test_bad_files_reported_per_file_and_run_goes_on(first_run: dict) -> None:
    fs = load_faceset(first_run["out"])
    reasons = {Path(r["source"]).name: r["reason"] for r in fs.rejects if r["frame"] is None}
    assert reasons["broken.jpg"].startswith("unreadable image")
    assert reasons["snow.jpg"] == "no faces found in 1 frame"
    assert reasons["notes.txt"] == "not an image or video (.txt)"
    bad = {Path(b["source"]).name for b in first_run["summary"]["bad_sources"]}
    assert bad == {"broken.jpg", "snow.jpg", "notes.txt"}


def test_rerun_is_idempotent(first_run: dict, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = first_run["out"]
    index_before = (out / "faceset.json").read_bytes()
    crops_before = sorted(p.name for p in (out / "faces").iterdir())
    rc, s = _extract(capsys, str(inputs["photos"]), str(inputs["movie"]), "--out", str(out))
    assert rc == 0
    assert s["faces_kept"] == 0 and s["faces_found"] == 0 and s["skipped_done"] == 5
    assert (out / "faceset.json").read_bytes() == index_before
    assert sorted(p.name for p in (out / "faces").iterdir()) == crops_before


def test_interrupted_run_resumes(first_run: dict, inputs: dict[str, Path], tmp_path: Path) -> None:
    from renderer.extract import extract

    out = tmp_path / "fs"
    shutil.copytree(first_run["out"], out)
    index = json.loads((out / "faceset.json").read_text())
    # as if killed while reading the video: its crops may be on disk, the index never got them
    video_sha = sha256_file(inputs["movie"])
    index["sources"] = [d for d in index["sources"] if d["sha256"] != video_sha]
    index["faces"] = [f for f in index["faces"] if f["source_sha256"] != video_sha]
    index["rejects"] = [r for r in index["rejects"] if Path(r["source"]).name != "movie.avi"]
    (out / "faceset.json").write_text(json.dumps(index))
    s = extract([inputs["photos"], inputs["movie"]], out, size=64, progress=False)
    assert s.skipped_done == 4 and s.faces_found == 68
    resumed = json.loads((out / "faceset.json").read_text())
    full = json.loads((first_run["out"] / "faceset.json").read_text())
    assert resumed["faces"] == full["faces"]
    assert sorted(p.name for p in (out / "faces").iterdir()) == sorted(p.name for p in (first_run["out"] / "faces").iterdir())


def test_identity_keeps_only_the_reference_person(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("jesper_2.jpg", "anne_helene.jpg", F.COUPLE):
        shutil.copy(F.kphotoalbum_file(name), src / name)
    rc, s = _extract(capsys, str(src), "--out", str(tmp_path / "fs"), "--identity", str(F.kphotoalbum_file("jesper.jpg")),
                     "--landmarks", "5")
    assert rc == 0
    fs = load_faceset(tmp_path / "fs")
    assert fs.landmark_points == 5
    kept = sorted((Path(r.source).name, round(r.box[0])) for r in fs.records)
    assert [k[0] for k in kept] == [F.COUPLE, "jesper_2.jpg"]
    assert kept[0][1] > 300  # the right-hand face of the couple is Jesper
    assert s["rejected"] == {"not the --identity person": 2}


def test_bad_input_exit_codes(tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str], first_run: dict) -> None:
    rc, _ = _extract(capsys, str(tmp_path / "nope.mov"), "--out", str(tmp_path / "a"))
    err = LAST_ERR[0]
    assert rc == 2 and "source not found" in err and "nope.mov" in err
    assert not (tmp_path / "a").exists()
    rc, _ = _extract(capsys, str(inputs["photos"] / "snow.jpg"), "--out", str(tmp_path / "b"))
    assert rc == 1  # nothing usable; the reject is on record
    assert "no faces found" in json.loads((tmp_path / "b" / "faceset.json").read_text())["rejects"][0]["reason"]
    rc, _ = _extract(capsys, str(inputs["photos"]), "--out", str(first_run["out"]), "--every", "3")
    assert rc == 2 and "other settings (every: 1 there, 3 now)" in LAST_ERR[0]
    rc, _ = _extract(capsys, str(inputs["photos"]), "--out", str(tmp_path / "c"), "--every", "0")
    assert rc == 2 and "--every must be >= 1; got 0" in LAST_ERR[0]


def test_small_face_720p_video_every_10_keeps_a_face_from_every_sampled_frame(tmp_path: Path) -> None:
    """Default --min-face (40 px) reaches the ~55 px face of a 720p clip (ffmpeg CLI, real footage)."""
    src = F.small_face_clip(F.CACHE / "small_face_720p.mp4", 40)
    assert main(["extract", str(src), "--out", str(tmp_path / "fs"), "--every", "10", "--dedupe-bits", "-1",
                 "--no-progress"]) == 0  # keep near-duplicates: the ping-pong clip repeats poses
    fs = load_faceset(tmp_path / "fs")
    assert sorted({r.frame for r in fs.records}) == [0, 10, 20, 30], [(r["frame"], r["reason"]) for r in fs.rejects]
    assert all(45 <= r.box[2] - r.box[0] <= 70 for r in fs.records)
