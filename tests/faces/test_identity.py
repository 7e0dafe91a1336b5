"""Identity embeddings separate two real people."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from renderer.errors import InputError
from renderer.faces.identity import DEFAULT_THRESHOLD, embed, identity_distance
from renderer.faces.track import find_faces
from tests import face_data as F


def _faces(points: int) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (person, embedding) for the real photos."""
    out = {}
    for name, person in [("jesper.jpg", "jesper"), ("jesper_2.jpg", "jesper"), ("anne_helene.jpg", "anne")]:
        (f,) = find_faces(F.read_rgb(F.kphotoalbum_file(name)), points=points, embed=True, min_size=60)
        out[name] = (person, f.embedding)
    left, right = sorted(find_faces(F.read_rgb(F.kphotoalbum_file(F.COUPLE)), points=points, embed=True, min_size=60),
                         key=lambda f: f.box[0])
    out["bar55_2 left"] = ("anne", left.embedding)
    out["bar55_2 right"] = ("jesper", right.embedding)
    fr = F.face_recognition_images()
    for name, person in [("obama.jpg", "obama"), ("obama2.jpg", "obama"), ("biden.jpg", "biden")]:
        (f,) = find_faces(F.read_rgb(fr / name), points=points, embed=True, min_size=60)
        out[name] = (person, f.embedding)
    return out


@pytest.mark.parametrize("points", [68, 5])
def test_same_person_closer_than_different_person_on_every_pair(points: int) -> None:
    faces = _faces(points)
    same, diff = [], []
    for (na, (pa, ea)), (nb, (pb, eb)) in itertools.combinations(faces.items(), 2):
        assert ea.shape == (128,) and ea.dtype == np.float32
        (same if pa == pb else diff).append((identity_distance(ea, eb), na, nb))
    assert len(same) == 5 and len(diff) == 23
    assert max(same)[0] < min(diff)[0], (max(same), min(diff))
    assert max(same)[0] < DEFAULT_THRESHOLD < min(diff)[0]


def test_embedding_is_deterministic_and_needs_landmarks() -> None:
    rgb = F.read_rgb(F.kphotoalbum_file("jesper_2.jpg"))
    (f,) = find_faces(rgb, min_size=60)
    a, b = embed(rgb, f), embed(rgb, f.landmarks)
    assert np.array_equal(a, b)
    with pytest.raises(InputError, match=r"\(68, 2\) or \(5, 2\) landmarks; got shape \(3, 2\)"):
        embed(rgb, np.zeros((3, 2)))
    with pytest.raises(InputError, match="without one"):
        identity_distance(f, a)
