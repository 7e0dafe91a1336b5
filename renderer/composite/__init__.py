"""Compositing: face masks, colour transfer, blending and paste-back into the frame.

Convention:
    frame         (H, W, 3) uint8 RGB, the source frame (written only if passed as `out`).
    swapped crop  (S, S, 3) float32 RGB in [0, 1], the model output for one face's
                  aligned crop; S is the model's size (e.g. 64), not necessarily
                  `Face.crop_size` (use `resize_crop_transform`).
    crop mask     (S, S) float32 in [0, 1], in the same aligned-crop pixels.
    crop_from_frame / frame_from_crop  (2, 3) float64 affines for *that* S: the
                  crop was `cv2.warpAffine(frame, crop_from_frame, (S, S))`.
    Pixel centres are at integer coordinates in both spaces (OpenCV's convention).

A swap stage is a few lines:

    crop_from_frame = resize_crop_transform(face.crop_from_frame, face.crop_size, S)
    crop = cv2.warpAffine(frame, crop_from_frame, (S, S))      # model input
    swapped, learned = model(crop)                              # (S, S, 3), (S, S) or None
    frame, mask = composite_face(frame, face.landmarks, crop_from_frame, swapped, settings, learned)

(or the parts: `face_mask`, `transfer_colour`, `composite`). Any crop_from_frame
works as long as the model's crop was made with the same matrix; note that
`resize_crop_transform` (matches `cv2.resize` of a stored 256 px crop) and
`align_matrices(landmarks, S)` (scales the unit square by S) differ by
0.5 * (1 - S/256) px.

Detail and grain (`renderer.composite.grain`, settings `detail` and `grain`): an unsharp mask
of the swapped crop, and grain measured just outside the mask added inside it, seeded by the
caller (`paste_face(..., seed=(frame index, track))`) so chunked renders draw the same grain.

Erosion and feather are fractions of the crop side, so a mask looks the same
relative to the face at S=64 and S=256, and for a small or a large face.
"""

from __future__ import annotations

from renderer.composite.masks import face_mask, landmark_mask, landmarks_to_crop, resize_crop_transform
from renderer.composite.occlusion import OCCLUSION_MODES, OcclusionSettings, occlusion_keep
from renderer.composite.paste import Patch, composite, composite_face, crop_of_frame, masked_copy, paste_box, paste_face, warp_mask_to_frame
from renderer.composite.settings import BLEND_METHODS, LANDMARK_KINDS, MASK_KINDS, CompositeSettings
from renderer.composite.temporal import TemporalBlend, mask_flicker

__all__ = [
    "BLEND_METHODS", "LANDMARK_KINDS", "MASK_KINDS", "OCCLUSION_MODES", "CompositeSettings", "OcclusionSettings",
    "Patch", "TemporalBlend", "occlusion_keep",
    "composite", "composite_face", "crop_of_frame", "face_mask", "landmark_mask", "landmarks_to_crop",
    "mask_flicker", "masked_copy", "paste_box", "paste_face", "resize_crop_transform", "warp_mask_to_frame",
]
