"""Face crops with exactly known optical flow, for accuracy tests and benchmarks.

A pair is rendered from a real face photograph (scikit-image's ``astronaut``,
shipped inside its wheel): the second crop samples the photo through a known
backward displacement field ``b`` (``next(y) = prev(y - b(y))``), and the
forward flow that ``dense_flow`` estimates is recovered from ``b`` by a
fixed-point iteration ``d(x) = b(x + d(x))``, so the truth is exact up to
interpolation. The field mixes what an aligned face shows: face-like local
blobs of 0.1-3 px (expression), a small global shift and rotation (residual
head motion) and mild sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["FlowPair", "face_photo", "make_flow_pair", "end_point_error"]


@lru_cache(maxsize=1)
def face_photo() -> np.ndarray:
    """Grey float32 face region (about 260 x 300 px) of scikit-image's astronaut photo."""
    from skimage import data

    rgb = data.astronaut().astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # The face: eyes at about y=115, mouth at y=200 in the 512 x 512 photo.
    return np.ascontiguousarray(grey[20:280, 130:390])


@dataclass(frozen=True)
class FlowPair:
    """Two uint8 crops and the true forward flow between them."""

    prev: np.ndarray  # (size, size) uint8
    next: np.ndarray  # (size, size) uint8
    flow: np.ndarray  # (size, size, 2) float32, px
    mask: np.ndarray  # (size, size) bool: the face area scored (border excluded)


def _bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(field, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def make_flow_pair(
    size: int = 128,
    *,
    seed: int = 0,
    max_blob: float = 3.0,
    head_shift: float = 1.0,
    head_rotation_deg: float = 0.5,
    noise: float = 1.5,
    brightness: float = 0.0,
) -> FlowPair:
    """Render a face crop pair of ``size`` px with a known displacement field.

    Parameters
    ----------
    size : int
        Crop side in pixels.
    seed : int
        Fixes blobs, head motion and noise.
    max_blob : float
        Largest local (expression) displacement, px at this crop size.
    head_shift, head_rotation_deg : float
        Largest global translation (px) and rotation (degrees).
    noise : float
        Standard deviation of the Gaussian sensor noise, grey levels.
    brightness : float
        Relative brightness change of the second crop (0.03 = 3 % brighter).
    """
    import cv2

    rng = np.random.default_rng(seed)
    photo = face_photo()
    ph, pw = photo.shape
    scale = pw / size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)

    # Backward field b(y), px at crop scale: blobs plus a small similarity.
    bx = np.zeros((size, size), np.float32)
    by = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(4, 9))):
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        sigma = rng.uniform(0.06, 0.15) * size
        amp = rng.uniform(0.1, max_blob)
        angle = rng.uniform(0, 2 * np.pi)
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).astype(np.float32)
        bx += amp * np.cos(angle) * g
        by += amp * np.sin(angle) * g
    theta = np.deg2rad(rng.uniform(-head_rotation_deg, head_rotation_deg))
    tx, ty = rng.uniform(-head_shift, head_shift, 2)
    c = size / 2
    bx += (np.cos(theta) - 1) * (xs - c) - np.sin(theta) * (ys - c) + tx
    by += np.sin(theta) * (xs - c) + (np.cos(theta) - 1) * (ys - c) + ty

    # Forward flow: d(x) = b(x + d(x)).
    dx = bx.copy()
    dy = by.copy()
    for _ in range(12):
        dx, dy = _bilinear(bx, xs + dx, ys + dy), _bilinear(by, xs + dx, ys + dy)

    def render(map_x: np.ndarray, map_y: np.ndarray, gain: float) -> np.ndarray:
        img = cv2.remap(photo, (map_x + 0.5) * scale - 0.5, (map_y + 0.5) * scale - 0.5,
                        cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        img = img * gain + rng.normal(0.0, noise, img.shape)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    prev = render(xs, ys, 1.0)
    nxt = render(xs - bx, ys - by, 1.0 + brightness)
    border = max(2, size // 10)
    mask = np.zeros((size, size), bool)
    mask[border:-border, border:-border] = True
    return FlowPair(prev, nxt, np.dstack([dx, dy]).astype(np.float32), mask)


def end_point_error(flow: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean Euclidean distance between two (H, W, 2) flows (within ``mask``), px."""
    err = np.hypot(flow[..., 0] - truth[..., 0], flow[..., 1] - truth[..., 1])
    return float(err[mask].mean() if mask is not None else err.mean())
