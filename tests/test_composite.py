"""Compositing on a real face: scikit-image's astronaut.png with dlib 68-point landmarks."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from renderer.colour import transfer_colour
from renderer.composite import (
    CompositeSettings,
    TemporalBlend,
    composite,
    composite_face,
    crop_of_frame,
    face_mask,
    landmark_mask,
    landmarks_to_crop,
    mask_flicker,
    resize_crop_transform,
    warp_mask_to_frame,
)
from renderer.errors import InputError
from renderer.faces.align import align_matrices
from tests import face_data

def _astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB (scikit-image's astronaut.png, cached by tests/face_data.py)."""
    return face_data.read_rgb(face_data.astronaut())


def _landmarks(img: np.ndarray, points: int) -> np.ndarray:
    import dlib

    models = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0] + "/models"
    rect = max(dlib.get_frontal_face_detector()(img, 1), key=lambda r: r.width())
    name = "shape_predictor_68_face_landmarks.dat" if points == 68 else "shape_predictor_5_face_landmarks.dat"
    shape = dlib.shape_predictor(f"{models}/{name}")(img, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def _crop_from_frame(pts68: np.ndarray, size: int) -> np.ndarray:
    """The project's own alignment (Umeyama to the mean face, deepfakes coverage)."""
    return align_matrices(pts68, size)[0]


@pytest.fixture(scope="module")
def face() -> dict:
    img = _astronaut()
    pts = _landmarks(img, 68)
    m = _crop_from_frame(pts, 256)
    return {"frame": img, "pts": pts, "crop_from_frame": m, "frame_from_crop": cv2.invertAffineTransform(m)}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _swap_inputs(face: dict, size: int, settings: CompositeSettings):
    crop_from_frame = resize_crop_transform(face["crop_from_frame"], 256, size)
    frame_from_crop = cv2.invertAffineTransform(crop_from_frame)
    mask = face_mask(landmarks_to_crop(face["pts"], crop_from_frame), size, settings)
    return crop_from_frame, frame_from_crop, mask


def test_transforms_invert_and_landmarks_land_in_crop(face):
    m, inv = face["crop_from_frame"], face["frame_from_crop"]
    composed = inv[:, :2] @ m[:, :2]
    assert np.allclose(composed, np.eye(2), atol=1e-9)
    assert np.allclose(inv[:, :2] @ m[:, 2] + inv[:, 2], 0, atol=1e-9)
    pts = landmarks_to_crop(face["pts"], m)
    assert pts.min() > 0 and pts.max() < 256
    # The same frame point lands at consistent places at S=256 and S=64.
    m64 = resize_crop_transform(m, 256, 64)
    assert np.allclose((pts + 0.5) * 0.25 - 0.5, landmarks_to_crop(face["pts"], m64))


def test_outside_mask_bit_identical_and_face_changed(face):
    settings = CompositeSettings(colour="none")
    frame = face["frame"]
    before = frame.copy()
    _, frame_from_crop, mask = _swap_inputs(face, 64, settings)
    swapped = np.ascontiguousarray(crop_of_frame(frame, frame_from_crop, 64)[:, ::-1])  # mirrored face
    swapped = np.clip(swapped * np.float32(0.6) + np.float32(0.3), 0, 1).astype(np.float32)
    out = composite(frame, swapped, frame_from_crop, mask, settings)
    assert np.array_equal(frame, before), "source frame was modified"
    alpha = warp_mask_to_frame(mask, frame_from_crop, frame.shape[:2])
    outside = alpha == 0
    assert outside.mean() > 0.9
    assert np.array_equal(out[outside], frame[outside])
    inside = alpha > 0.9
    assert inside.sum() > 2000
    assert np.abs(out[inside].astype(int) - frame[inside]).mean() > 10
    assert out.dtype == np.uint8 and out.shape == frame.shape


def test_paste_back_of_original_crop_round_trips(face):
    settings = CompositeSettings(colour="none")
    frame = face["frame"]
    _, frame_from_crop, mask = _swap_inputs(face, 256, settings)
    crop = crop_of_frame(frame, frame_from_crop, 256)
    out = composite(frame, crop, frame_from_crop, mask, settings)
    inside = warp_mask_to_frame(mask, frame_from_crop, frame.shape[:2]) > 0.99
    good = _psnr(out[inside], frame[inside])
    assert good > 33, good  # two bilinear resamplings
    # A 3-pixel misplacement must show up: the test can fail.
    shifted = frame_from_crop.copy()
    shifted[:, 2] += 3.0
    bad = _psnr(composite(frame, crop, shifted, mask, settings)[inside], frame[inside])
    assert bad < good - 10, (good, bad)


def test_colour_transfer_moves_statistics_to_target(face):
    settings = CompositeSettings()
    frame = face["frame"]
    _, frame_from_crop, mask = _swap_inputs(face, 128, settings)
    target = crop_of_frame(frame, frame_from_crop, 128)
    # A differently lit "swapped" face: mirrored, bluish, lower contrast.
    swapped = np.ascontiguousarray(target[:, ::-1]) * np.float32([0.7, 0.8, 1.0]) * np.float32(0.7) + np.float32(0.15)
    swapped = np.clip(swapped, 0, 1).astype(np.float32)
    w = mask.astype(np.float64)[..., None]

    def stats(img):
        mean = (img * w).sum((0, 1)) / w.sum()
        std = np.sqrt(((img - mean) ** 2 * w).sum((0, 1)) / w.sum())
        return mean, std

    lab = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2Lab).astype(np.float64)  # noqa: E731
    t_mean, t_std = stats(lab(target))
    s_mean, s_std = stats(lab(swapped))
    r_mean, r_std = stats(lab(transfer_colour(swapped, target, mask, "rct")))
    assert np.abs(s_mean - t_mean).max() > 5  # the inputs really differ
    assert np.abs(r_mean - t_mean).max() < 1.5, (r_mean, t_mean)
    assert np.abs(r_std - t_std).max() < 1.5, (r_std, t_std)

    rgb_t, _ = stats(target.astype(np.float64))
    rgb_m, _ = stats(transfer_colour(swapped, target, mask, "mean").astype(np.float64))
    assert np.abs(rgb_m - rgb_t).max() < 0.01

    hist = transfer_colour(swapped, target, mask, "histogram")
    sel = mask > 0.5
    for c in range(3):
        q_t = np.quantile(target[..., c][sel], [0.1, 0.5, 0.9])
        q_s = np.quantile(swapped[..., c][sel], [0.1, 0.5, 0.9])
        q_h = np.quantile(hist[..., c][sel], [0.1, 0.5, 0.9])
        assert np.abs(q_h - q_t).max() < 0.02 < np.abs(q_s - q_t).max()

    assert transfer_colour(swapped, target, mask, "none") is swapped
    for method in ("mean", "rct", "histogram"):
        out = transfer_colour(swapped, target, mask, method)
        assert out.dtype == np.float32 and out.shape == swapped.shape and 0 <= out.min() and out.max() <= 1


def test_mask_scales_with_crop_size(face):
    settings = CompositeSettings(erode=0.05, feather=0.08)
    masks = {s: _swap_inputs(face, s, settings)[2] for s in (64, 256)}
    small = masks[64]
    big_down = cv2.resize(masks[256], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(small - big_down).mean() < 0.02
    assert abs(small.mean() - masks[256].mean()) < 0.01
    # Erosion and feather do something, and proportionally at both sizes.
    for s in (64, 256):
        crop_from_frame = resize_crop_transform(face["crop_from_frame"], 256, s)
        pts = landmarks_to_crop(face["pts"], crop_from_frame)
        hard = face_mask(pts, s, CompositeSettings(erode=0.0, feather=0.0))
        assert set(np.unique(hard)) == {0.0, 1.0}
        eroded = face_mask(pts, s, CompositeSettings(erode=0.05, feather=0.0))
        assert eroded.sum() < 0.85 * hard.sum()
        assert np.all(eroded <= hard)
        soft = masks[s]
        assert np.all(soft <= hard) and ((soft > 0) & (soft < 1)).mean() > 0.05
    ratio = {s: face_mask(landmarks_to_crop(face["pts"], resize_crop_transform(face["crop_from_frame"], 256, s)), s,
                          CompositeSettings(erode=0.05, feather=0.0)).mean() for s in (64, 256)}
    assert abs(ratio[64] - ratio[256]) < 0.01


def test_ellipse_and_hull_cover_the_same_face(face):
    img = face["frame"]
    pts5 = landmarks_to_crop(_landmarks(img, 5), face["crop_from_frame"])
    pts68 = landmarks_to_crop(face["pts"], face["crop_from_frame"])
    hull = landmark_mask(pts68, 256, "hull") > 0
    for ellipse in (landmark_mask(pts5, 256, "ellipse") > 0, landmark_mask(pts68, 256, "ellipse") > 0):
        # The mean-face ellipse covers the hull plus some forehead and cheek.
        covered = (hull & ellipse).sum() / hull.sum()
        assert covered > 0.95 and ellipse.sum() < 1.3 * hull.sum(), (covered, ellipse.sum() / hull.sum())
    taller = landmark_mask(pts68, 256, "hull", forehead=0.3) > 0
    assert taller.sum() > 1.15 * hull.sum() and np.all(taller >= hull)
    # "hull" on a 5-point face uses the ellipse rather than failing.
    assert face_mask(pts5, 256, CompositeSettings(mask="hull")).sum() > 0


def test_learned_mask_is_intersected(face):
    crop_from_frame = face["crop_from_frame"]
    pts = landmarks_to_crop(face["pts"], crop_from_frame)
    learned = np.zeros((256, 256), np.float32)
    learned[:, :128] = 1.0
    learned[150:160, 100:110] = 0.3  # a soft spot, e.g. an occluding hand
    both = face_mask(pts, 256, CompositeSettings(mask="hull+learned", feather=0.0, erode=0.0), learned)
    hull = face_mask(pts, 256, CompositeSettings(mask="hull", feather=0.0, erode=0.0))
    assert both[:, 128:].max() == 0.0
    assert np.all(both <= hull)
    assert hull[155, 105] == 1.0 and both[155, 105] == pytest.approx(0.3)
    only = face_mask(pts, 256, CompositeSettings(mask="learned", feather=0.0, erode=0.0), learned)
    assert only[:, :127].mean() > 0.95 and only[:, 129:].max() == 0.0
    with pytest.raises(InputError, match="learned mask"):
        face_mask(pts, 256, CompositeSettings(mask="learned"))


def test_poisson_blends_and_respects_frame_edges(face):
    frame = face["frame"]
    poisson = CompositeSettings(colour="none", blend="poisson")
    alpha_s = CompositeSettings(colour="none", blend="alpha")
    _, frame_from_crop, mask = _swap_inputs(face, 128, poisson)
    crop = crop_of_frame(frame, frame_from_crop, 128)
    brighter = np.clip(crop + np.float32(0.15), 0, 1).astype(np.float32)
    a_frame = warp_mask_to_frame(mask, frame_from_crop, frame.shape[:2])
    out_p = composite(frame, brighter, frame_from_crop, mask, poisson)
    out_a = composite(frame, brighter, frame_from_crop, mask, alpha_s)
    assert np.array_equal(out_p[a_frame == 0], frame[a_frame == 0])
    inside = a_frame > 0.99
    diff_p = np.abs(out_p[inside].astype(int) - frame[inside]).mean()
    diff_a = np.abs(out_a[inside].astype(int) - frame[inside]).mean()
    assert diff_a > 25 and diff_p < diff_a / 3, (diff_p, diff_a)  # Poisson removes the brightness offset
    # A face cut by the left frame edge: no error, edge columns get face content.
    x_cut = int(face["pts"][:, 0].min()) + 20
    edge_frame = np.ascontiguousarray(frame[:, x_cut:])
    moved = frame_from_crop.copy()
    moved[0, 2] -= x_cut
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    out_e = composite(edge_frame, mirrored, moved, mask, poisson)
    a_edge = warp_mask_to_frame(mask, moved, edge_frame.shape[:2])
    assert a_edge[:, 0].max() > 0.99
    assert np.array_equal(out_e[a_edge == 0], edge_frame[a_edge == 0])
    col = a_edge[:, 0] > 0.99
    assert np.abs(out_e[col, 0].astype(int) - edge_frame[col, 0]).mean() > 3
    assert np.array_equal(out_e, composite(edge_frame, mirrored, moved, mask, poisson))
    out_ea = composite(edge_frame, mirrored, moved, mask, alpha_s)  # alpha clips its box the same way
    assert np.array_equal(out_ea[a_edge == 0], edge_frame[a_edge == 0])
    assert np.abs(out_ea[col, 0].astype(int) - edge_frame[col, 0]).mean() > 3


def test_composite_face_is_the_parts_in_one_call(face):
    settings = CompositeSettings(colour="mean")
    crop_from_frame, frame_from_crop, mask = _swap_inputs(face, 64, settings)
    swapped = np.ascontiguousarray(crop_of_frame(face["frame"], frame_from_crop, 64)[::-1])
    out, used = composite_face(face["frame"], face["pts"], crop_from_frame, swapped, settings)
    assert np.array_equal(used, mask)
    assert np.array_equal(out, composite(face["frame"], swapped, frame_from_crop, mask, settings))
    # In place (several faces, one frame buffer) gives the same pixels.
    buffer = face["frame"].copy()
    same, _ = composite_face(buffer, face["pts"], crop_from_frame, swapped, settings, out=buffer)
    assert same is buffer and np.array_equal(buffer, out)
    with pytest.raises(InputError, match=r"out must be"):
        composite_face(face["frame"], face["pts"], crop_from_frame, swapped, settings, out=buffer[:10])
    with pytest.raises(InputError, match=r"landmarks must be.*\(68, 2\)"):
        composite_face(face["frame"], face["pts"][:, 0], crop_from_frame, swapped, settings)


def test_deterministic_and_empty_mask_is_no_op(face):
    settings = CompositeSettings(colour="histogram")
    _, frame_from_crop, mask = _swap_inputs(face, 64, settings)
    swapped = np.random.default_rng(1).random((64, 64, 3), dtype=np.float32)
    a = composite(face["frame"], swapped, frame_from_crop, mask, settings)
    b = composite(face["frame"], swapped, frame_from_crop, mask, settings)
    assert np.array_equal(a, b)
    empty = composite(face["frame"], swapped, frame_from_crop, np.zeros_like(mask), settings)
    assert np.array_equal(empty, face["frame"])
    gone = frame_from_crop.copy()
    gone[:, 2] += 5000.0  # the face lies wholly outside the frame
    assert np.array_equal(composite(face["frame"], swapped, gone, mask, settings), face["frame"])


def test_temporal_blend_damps_flicker(face):
    settings = CompositeSettings(colour="none")
    frame = face["frame"]
    _, frame_from_crop, mask = _swap_inputs(face, 64, settings)
    crop = crop_of_frame(frame, frame_from_crop, 64)
    rng = np.random.default_rng(7)
    noisy = [np.clip(crop + rng.normal(0, 0.05, crop.shape).astype(np.float32), 0, 1).astype(np.float32) for _ in range(12)]
    region = warp_mask_to_frame(mask, frame_from_crop, frame.shape[:2])
    raw = [composite(frame, c, frame_from_crop, mask, settings) for c in noisy]
    blend = TemporalBlend(0.7)
    smooth = [composite(frame, blend.update("face0", i, c), frame_from_crop, mask, settings) for i, c in enumerate(noisy)]
    f_raw, f_smooth = mask_flicker(raw, region), mask_flicker(smooth, region)
    assert f_raw > 3 and f_smooth < 0.6 * f_raw, (f_raw, f_smooth)
    assert mask_flicker([frame, frame], region) == 0.0
    # A gap in the track (or reset at a cut) starts afresh.
    assert np.array_equal(blend.update("face0", 20, noisy[0]), noisy[0])
    blend.update("face0", 21, noisy[1])
    blend.reset()
    assert np.array_equal(blend.update("face0", 22, noisy[2]), noisy[2])
    assert np.array_equal(TemporalBlend(0.0).update(1, 0, noisy[3]), noisy[3])


def test_bad_inputs_raise_clear_errors(face):
    settings = CompositeSettings()
    _, frame_from_crop, mask = _swap_inputs(face, 64, settings)
    frame = face["frame"]
    good = np.zeros((64, 64, 3), np.float32)
    cases = [
        (lambda: composite(frame, (good * 255).astype(np.uint8), frame_from_crop, mask, settings), r"swapped_crop.*float32.*uint8"),
        (lambda: composite(frame, good + 200, frame_from_crop, mask, settings), r"\[0, 1\].*max 200.*divide by 255"),
        (lambda: composite(frame, good, frame_from_crop, mask[:32], settings), r"crop_mask must be a \(64, 64\).*\(32, 64\)"),
        (lambda: composite(frame.astype(np.float32), good, frame_from_crop, mask, settings), r"frame must be.*uint8.*float32"),
        (lambda: composite(frame, good, np.eye(3), mask, settings), r"frame_from_crop.*\(2, 3\).*\(3, 3\)"),
        (lambda: composite(frame, good * np.nan, frame_from_crop, mask, settings), r"swapped_crop values"),
        (lambda: CompositeSettings(mask="hul"), r"mask='hul'.*did you mean 'hull'"),
        (lambda: CompositeSettings(colour="reinhard"), r"colour='reinhard'.*allowed: none, mean, rct, histogram"),
        (lambda: CompositeSettings(feather=2.0), r"feather=2.0.*0.0 to 0.5"),
        (lambda: transfer_colour(good, good, mask, "lab"), r"unknown method 'lab'"),
        (lambda: landmark_mask(np.zeros((5, 2)), 64, "hull"), r"'hull' needs 68 landmarks; got 5"),
        (lambda: landmark_mask(np.zeros((12, 2)), 64, "hull"), r"\(68, 2\) or \(5, 2\).*\(12, 2\)"),
        (lambda: TemporalBlend(1.0), r"strength.*\[0, 1\); got 1.0"),
        (lambda: mask_flicker([frame], mask), r"at least 2 frames; got 1"),
    ]
    for call, pattern in cases:
        with pytest.raises(InputError, match=pattern):
            call()


# ---------------------------------------------------------------- equivalence with the float64-era blend

def _reference_composite(frame, swapped_crop, frame_from_crop, crop_mask, settings, original_crop):
    """The blend as it was before the box-level rewrite (numpy over the whole box, rounded half up),
    kept here, and only here, as the reference the fast path must stay within one code value of."""
    from renderer.composite.paste import _box_from_crop, _poisson, _warp_box

    out = frame.copy()
    box = _warp_box(crop_mask, frame_from_crop, frame.shape[:2])
    if box is None:
        return out
    if settings.colour != "none":
        swapped_crop = transfer_colour(swapped_crop, original_crop, crop_mask, settings.colour)
    x0, y0, x1, y1 = box
    box_from_crop = _box_from_crop(frame_from_crop, box)
    dsize = (x1 - x0, y1 - y0)
    alpha = cv2.warpAffine(crop_mask, box_from_crop, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    face = cv2.warpAffine(swapped_crop, box_from_crop, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    face *= np.float32(255.0)
    region = frame[y0:y1, x0:x1].copy()
    if settings.blend == "poisson" and np.any(alpha > 0):
        face_u8 = np.clip(np.floor(face + 0.5), 0, 255).astype(np.uint8)
        face = _poisson(region, face_u8, alpha).astype(np.float32)
    base = region.astype(np.float32)
    a = alpha[..., None]
    result = np.clip(np.floor(base + a * (face - base) + np.float32(0.5)), 0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = np.where(a > 0, result, region)
    return out


def _real_face_frames() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, frame, 68 landmarks) of real faces: the astronaut as shot (about 200 px), the same
    upscaled into a 1920x1080 close-up (about 650 px), and a frame of the kphotoalbum talking head."""
    img = _astronaut()
    pts = _landmarks(img, 68)
    s = 650 / (pts[:, 1].max() - pts[:, 1].min())
    big = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    close = np.full((1080, 1920, 3), 80, np.uint8)
    y_off = int(540 - pts[:, 1].mean() * s)
    x_off = int(960 - pts[:, 0].mean() * s)
    ys, xs = max(0, -y_off), max(0, -x_off)
    h, w = min(big.shape[0] - ys, 1080 - max(0, y_off)), min(big.shape[1] - xs, 1920 - max(0, x_off))
    close[max(0, y_off):max(0, y_off) + h, max(0, x_off):max(0, x_off) + w] = big[ys:ys + h, xs:xs + w]
    movie = face_data.kphotoalbum_file(face_data.MOVIE)
    from renderer import media

    _, head = next(media.read_frames(movie, 30, 30))
    head = cv2.resize(head, (480, 360), interpolation=cv2.INTER_CUBIC)
    return [("astronaut", img, pts), ("close-up", close, _landmarks(close, 68)), ("talking head", head, _landmarks(head, 68))]


@pytest.mark.parametrize("size", [64, 128])
def test_fast_paste_matches_the_reference_blend(size):
    rng = np.random.default_rng(3)
    for name, frame, pts in _real_face_frames():
        crop_from_frame = align_matrices(pts, size)[0]
        frame_from_crop = cv2.invertAffineTransform(crop_from_frame)
        original = crop_of_frame(frame, frame_from_crop, size)
        # A "model output": the real crop mirrored, tinted and noisy, so colour transfer and blend both work.
        swapped = np.clip(original[:, ::-1] * np.float32(0.8) + np.float32(0.1)
                          + rng.normal(0, 0.02, original.shape).astype(np.float32), 0, 1).astype(np.float32)
        blends = ["alpha", "poisson"] if name == "talking head" else ["alpha"]  # seamlessClone is slow on big boxes
        for colour in ("rct", "none"):
            for blend in blends:
                settings = CompositeSettings(colour=colour, blend=blend)
                mask = face_mask(landmarks_to_crop(pts, crop_from_frame), size, settings)
                want = _reference_composite(frame, swapped, frame_from_crop, mask, settings, original)
                got = composite(frame, swapped, frame_from_crop, mask, settings, original)
                diff = np.abs(got.astype(int) - want)
                assert diff.max() <= 1, (name, colour, blend, diff.max())
                assert (diff > 0).mean() < 0.01, (name, colour, blend, (diff > 0).mean())
                outside = warp_mask_to_frame(mask, frame_from_crop, frame.shape[:2]) == 0
                assert np.array_equal(got[outside], frame[outside])
                assert np.abs(got.astype(int) - frame).max() > 30  # the face really changed


def test_paste_face_reports_exactly_what_changed(face):
    from renderer.composite import paste_face

    settings = CompositeSettings()
    frame = face["frame"]
    _, frame_from_crop, mask = _swap_inputs(face, 64, settings)
    swapped = np.ascontiguousarray(crop_of_frame(frame, frame_from_crop, 64)[:, ::-1])
    work = frame.copy()
    patch = paste_face(work, swapped, frame_from_crop, mask, settings)
    assert patch is not None
    x0, y0, x1, y1 = patch.box
    changed = np.zeros(frame.shape[:2], bool)
    changed[y0:y1, x0:x1] = patch.changed
    assert np.array_equal(changed, np.any(work != frame, axis=2))
    assert changed.sum() > 2000 and (x1 - x0) * (y1 - y0) < frame.shape[0] * frame.shape[1] / 2
    assert np.array_equal(work, composite(frame, swapped, frame_from_crop, mask, settings))
    gone = frame_from_crop.copy()
    gone[:, 2] += 5000.0
    assert paste_face(work, swapped, gone, mask, settings) is None


def test_rct_is_its_statistics_applied(face):
    from renderer.colour import rct_apply, rct_statistics

    crop = crop_of_frame(face["frame"], face["frame_from_crop"], 64)
    swapped = np.ascontiguousarray(crop[:, ::-1] * np.float32(0.8))
    mask = np.ones((64, 64), np.float32)
    stats = rct_statistics(swapped, crop, mask)
    assert stats.shape == (4, 3) and stats.dtype == np.float32
    assert np.allclose(rct_apply(swapped, stats), transfer_colour(swapped, crop, mask, "rct"), atol=1e-4)


def test_rct_apply_rounds_as_numpy_float32() -> None:
    """rct_apply's per-channel OpenCV arithmetic gives the float32 numpy formula's values bit for bit."""
    from renderer.colour import rct_apply, rct_statistics

    rng = np.random.default_rng(7)
    for size in (64, 65, 128):
        swapped = rng.random((size, size, 3), dtype=np.float32)
        target = rng.random((size, size, 3), dtype=np.float32)
        weights = np.clip(rng.normal(0.5, 0.5, (size, size)), 0.0, 1.0).astype(np.float32)
        stats = rct_statistics(swapped, target, weights)
        mean_s, std_s, mean_t, std_t = stats
        scale = np.where(std_s > 1e-3, std_t / np.maximum(std_s, 1e-3), np.float32(1.0)).astype(np.float32)
        lab = cv2.cvtColor(swapped, cv2.COLOR_RGB2Lab)
        want = np.clip(cv2.cvtColor((lab - mean_s) * scale + mean_t, cv2.COLOR_Lab2RGB), 0.0, 1.0)
        assert np.array_equal(rct_apply(swapped, stats), want)
