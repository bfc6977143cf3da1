"""Face regions on the aligned crop, built from landmarks.

The aligned crop puts the eye centres at fixed places; regions are convex
hulls of landmark groups (widened by a margin) drawn into an int32 label map
that :func:`microexpr.region_stats` reads. Region names are fine-grained
(inner/outer brows, each mouth corner...); each belongs to one coarse group
("brows", "eyes", "cheeks", "nose", "mouth", "chin") that events report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landmarks import PointScheme, get_scheme

__all__ = [
    "REGION_NAMES",
    "REGION_GROUPS",
    "GROUP_NAMES",
    "REFERENCE_REGION",
    "CropGeometry",
    "region_labels",
    "rigid_mask",
    "alignment_template",
]

# Order matters: labels are drawn in this order, later regions on top.
REGION_NAMES = (
    "cheek_right",
    "cheek_left",
    "chin",
    "nose",
    "upper_lip",
    "lower_lip",
    "mouth_corner_right",
    "mouth_corner_left",
    "eye_lower_right",
    "eye_lower_left",
    "eye_upper_right",
    "eye_upper_left",
    "brow_outer_right",
    "brow_outer_left",
    "brow_inner_right",
    "brow_inner_left",
    "nose_bridge",
)
REFERENCE_REGION = REGION_NAMES.index("nose_bridge")

REGION_GROUPS = {
    "cheek_right": "cheeks",
    "cheek_left": "cheeks",
    "chin": "chin",
    "nose": "nose",
    "upper_lip": "mouth",
    "lower_lip": "mouth",
    "mouth_corner_right": "mouth",
    "mouth_corner_left": "mouth",
    "eye_lower_right": "eyes",
    "eye_lower_left": "eyes",
    "eye_upper_right": "eyes",
    "eye_upper_left": "eyes",
    "brow_outer_right": "brows",
    "brow_outer_left": "brows",
    "brow_inner_right": "brows",
    "brow_inner_left": "brows",
    "nose_bridge": "reference",
}
GROUP_NAMES = ("brows", "eyes", "cheeks", "nose", "mouth", "chin")


@dataclass(frozen=True)
class CropGeometry:
    """Where the aligned crop puts the face.

    size : crop side, px. Eye centres land at ``(0.5 -+ iod/2, eye_y) * size``.
    """

    size: int = 160
    eye_y: float = 0.34
    iod: float = 0.36

    @property
    def eye_centres(self) -> np.ndarray:
        s = self.size
        return np.array([[(0.5 - self.iod / 2) * s, self.eye_y * s],
                         [(0.5 + self.iod / 2) * s, self.eye_y * s]])

    @property
    def iod_px(self) -> float:
        return self.iod * self.size


def alignment_template(points: np.ndarray, scheme: str | PointScheme,
                       geometry: CropGeometry) -> np.ndarray:
    """Canonical positions of the scheme's alignment points for this face.

    The face's own alignment points are moved by the similarity that puts its
    eye centres on the crop's eye centres, so the template keeps the person's
    proportions (nose bridge length, eye shape) and aligning later frames to
    it removes only head motion.
    """
    from .core import estimate_similarity

    sch = get_scheme(scheme)
    pts = np.asarray(points, dtype=np.float64)
    right = pts[list(sch.eye_corners["right"])].mean(axis=0)
    left = pts[list(sch.eye_corners["left"])].mean(axis=0)
    # The subject's right eye is on the image's left.
    src = np.ascontiguousarray(np.stack([right, left]))
    M = estimate_similarity(src, np.ascontiguousarray(geometry.eye_centres))
    align = pts[list(sch.alignment_indices)]
    return np.ascontiguousarray(align @ M[:, :2].T + M[:, 2])


def _widened_hull(points: np.ndarray, margin: float) -> np.ndarray:
    import cv2

    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)
    centre = hull.mean(axis=0)
    direction = hull - centre
    norm = np.linalg.norm(direction, axis=1, keepdims=True)
    norm[norm < 1e-6] = 1.0
    return hull + direction / norm * margin


def _brow_halves(points: np.ndarray, midline_x: float) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer) halves of a brow by distance to the face midline."""
    order = np.argsort(np.abs(points[:, 0] - midline_x))
    half = (len(points) + 1) // 2
    return points[order[:half]], points[order[half - 1:]]


def region_labels(points: np.ndarray, scheme: str | PointScheme,
                  geometry: CropGeometry) -> np.ndarray:
    """Label map of the crop: index into :data:`REGION_NAMES`, -1 elsewhere.

    Parameters
    ----------
    points : (N, 2) landmarks already in crop coordinates.
    """
    import cv2

    sch = get_scheme(scheme)
    pts = np.asarray(points, dtype=np.float32)
    g = sch.regions
    iod = geometry.iod_px
    midline = float(pts[list(g["nose_bridge"])][:, 0].mean())
    brow_r_in, brow_r_out = _brow_halves(pts[list(g["brow_right"])], midline)
    brow_l_in, brow_l_out = _brow_halves(pts[list(g["brow_left"])], midline)
    groups: dict[str, tuple[list[np.ndarray], float]] = {
        "cheek_right": ([pts[list(g["cheek_right"])]], 0.06),
        "cheek_left": ([pts[list(g["cheek_left"])]], 0.06),
        "chin": ([pts[list(g["chin"])]], 0.05),
        "nose": ([pts[list(g["nose_wing_right"])], pts[list(g["nose_wing_left"])]], 0.05),
        "upper_lip": ([pts[list(g["upper_lip"])]], 0.03),
        "lower_lip": ([pts[list(g["lower_lip"])]], 0.03),
        "mouth_corner_right": ([pts[list(g["mouth_corner_right"])]], 0.07),
        "mouth_corner_left": ([pts[list(g["mouth_corner_left"])]], 0.07),
        "eye_lower_right": ([pts[list(g["eye_right_lower_lid"])]], 0.05),
        "eye_lower_left": ([pts[list(g["eye_left_lower_lid"])]], 0.05),
        "eye_upper_right": ([pts[list(g["eye_right_upper_lid"])]], 0.05),
        "eye_upper_left": ([pts[list(g["eye_left_upper_lid"])]], 0.05),
        "brow_outer_right": ([brow_r_out], 0.06),
        "brow_outer_left": ([brow_l_out], 0.06),
        "brow_inner_right": ([brow_r_in], 0.06),
        "brow_inner_left": ([brow_l_in], 0.06),
        "nose_bridge": ([pts[list(g["nose_bridge"])]], 0.07),
    }
    labels = np.full((geometry.size, geometry.size), -1, np.int32)
    for index, name in enumerate(REGION_NAMES):
        polys, margin = groups[name]
        for poly in polys:
            hull = _widened_hull(poly, margin * iod)
            cv2.fillConvexPoly(labels, np.round(hull * 16).astype(np.int32), index,
                               lineType=cv2.LINE_8, shift=4)
    return labels


def rigid_mask(points: np.ndarray, scheme: str | PointScheme, geometry: CropGeometry) -> np.ndarray:
    """Pixels that move only with the head: nose bridge and tip, and a band of
    forehead above the brows. Residual head motion is fitted there.
    """
    import cv2

    sch = get_scheme(scheme)
    pts = np.asarray(points, dtype=np.float32)
    g = sch.regions
    iod = geometry.iod_px
    mask = np.zeros((geometry.size, geometry.size), np.uint8)
    brows = pts[list(g["brow_right"]) + list(g["brow_left"])]
    top = brows[:, 1].min()
    x0, x1 = brows[:, 0].min(), brows[:, 0].max()
    band = np.array([[x0, top - 0.45 * iod], [x1, top - 0.45 * iod],
                     [x1, top - 0.15 * iod], [x0, top - 0.15 * iod]])
    nose = np.concatenate([pts[list(g["nose_bridge"])],
                           pts[list(g["nose_wing_right"])], pts[list(g["nose_wing_left"])]])
    for poly, margin in ((band, 0.0), (pts[list(g["nose_bridge"])], 0.08), (nose, 0.0)):
        hull = _widened_hull(poly, margin * iod) if margin else poly
        cv2.fillConvexPoly(mask, np.round(hull * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)
