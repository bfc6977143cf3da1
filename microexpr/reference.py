"""Plain-numpy twins of the compiled kernels in :mod:`microexpr.core`.

Each function here computes what its compiled namesake computes, step by
step and in the same floating-point types (float32 where the C++ core uses
float32), written for a reader to check by eye rather than for speed. The
tests run both paths on the same inputs and compare them within a tolerance
stated per kernel, so this module is the specification of the core:

* :func:`estimate_similarity` - Umeyama's least-squares similarity in 2-D.
* :func:`warp_affine` - bilinear affine warp, replicated or constant border.
* :func:`dense_flow` - coarse-to-fine combined local-global optical flow
  (``core/src/flow.cpp``).
* :func:`region_stats` - per-region magnitude, mean vector, MDMD, strain.
* :class:`Spectra` - streaming band energies from a bank of resonators.
* :func:`spectrogram` - short-time power spectrum at real timestamps.

Inputs are validated like the compiled boundary: a wrong dtype (or an object
that is not an array) raises :class:`TypeError`; a wrong shape, a
non-C-contiguous array, a size out of range or a non-finite value raises
:class:`~microexpr.errors.ParameterError`. Nothing is copied silently.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Sequence

import numpy as np

from microexpr import _core
from microexpr.errors import ParameterError

__all__ = [
    "FLOW_PRESETS",
    "MIN_FLOW_SIDE",
    "REGION_COLUMNS",
    "Spectra",
    "dense_flow",
    "estimate_similarity",
    "flow_params",
    "region_stats",
    "spectrogram",
    "warp_affine",
]

FLOW_PRESETS = ("fast", "balanced", "accurate")
MIN_FLOW_SIDE = 8
REGION_COLUMNS = ("count", "mean_magnitude", "mean_dx", "mean_dy", "mdmd", "main_direction", "mean_strain")

_F32 = np.float32


# ------------------------------------------------------------------ checks
def _describe(obj: object) -> str:
    """``"float32 array of shape (3, 4)"``, or the type name of a non-array."""
    if not isinstance(obj, np.ndarray):
        return type(obj).__name__
    dims = ", ".join(str(n) for n in obj.shape) + ("," if obj.ndim == 1 else "")
    text = f"{obj.dtype} array of shape ({dims})"
    if not obj.flags.c_contiguous:
        text += " (not C-contiguous)"
    return text


def _expect(obj: object, name: str, dtype: type, expected: str, shape: Sequence[int]) -> np.ndarray:
    """Return ``obj`` unchanged if it is a C-contiguous ``dtype`` array of ``shape`` (-1: any)."""
    if not isinstance(obj, np.ndarray) or obj.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected {expected}, got {_describe(obj)}")
    if obj.ndim != len(shape) or any(n >= 0 and got != n for got, n in zip(obj.shape, shape)):
        raise ParameterError(f"{name}: expected {expected}, got {_describe(obj)}")
    if not obj.flags.c_contiguous:
        raise ParameterError(
            f"{name}: expected a C-contiguous array (use numpy.ascontiguousarray), got {_describe(obj)}"
        )
    return obj


def _as_int(value: object, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None


def _as_float(value: object, name: str) -> float:
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    return float(value)


# --------------------------------------------------------------- alignment
def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Parameters
    ----------
    src, dst : float64 arrays of shape (N, 2)
        Corresponding (x, y) points, N >= 2, ``src`` not all coincident.

    Returns
    -------
    M : float64 array of shape (2, 3)
        ``[[a, -b, tx], [b, a, ty]]`` where the complex number ``a + ib``
        minimises ``sum |(a + ib) s_i - d_i|^2`` over the centred points.
    """
    src = _expect(src, "src", np.float64, "float64 array of shape (N, 2)", (-1, 2))
    dst = _expect(dst, "dst", np.float64, "float64 array of shape (N, 2)", (-1, 2))
    if len(src) != len(dst):
        raise ParameterError(
            f"src and dst must hold the same number of points, got {len(src)} and {len(dst)}"
        )
    if len(src) < 2:
        raise ParameterError(f"need at least 2 point pairs, got {len(src)}")
    finite = np.isfinite(src).all(axis=1) & np.isfinite(dst).all(axis=1)
    if not finite.all():
        raise ParameterError(f"point {int(np.argmin(finite))} is not finite")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s = src - src_mean
    d = dst - dst_mean
    spread = np.sum(s * s)
    if not spread > 1e-12:
        raise ParameterError("source points are all coincident")
    a = np.sum(s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]) / spread
    b = np.sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]) / spread
    rotation_scale = np.array([[a, -b], [b, a]])
    translation = dst_mean - rotation_scale @ src_mean
    return np.hstack([rotation_scale, translation[:, None]])


def _invert_affine(m: np.ndarray) -> np.ndarray:
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    if not (abs(det) > 1e-12 and math.isfinite(det)):
        raise ParameterError("affine matrix is singular or not finite")
    linear_inv = np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]]) / det
    return np.hstack([linear_inv, -(linear_inv @ m[:, 2])[:, None]])


def warp_affine(
    image: np.ndarray,
    M: np.ndarray,
    size: tuple[int, int],
    *,
    border: str = "replicate",
    fill: float = 0.0,
) -> np.ndarray:
    """Bilinear affine warp: ``out(x, y) = image(M^-1 (x, y))``.

    Parameters
    ----------
    image : uint8 or float32 array of shape (H, W)
    M : float64 array of shape (2, 3)
        Maps source (x, y) to output (x', y') (OpenCV's convention).
    size : (width, height)
        Output size in pixels, each in [1, 16384].
    border : {"replicate", "constant"}
        Outside the image, repeat the nearest edge pixel or use ``fill``.
    fill : float
        Value outside the image with ``border="constant"``; must be finite
        for uint8 images (NaN marks the outside of float32 images).

    Returns
    -------
    out : array of shape (height, width), the dtype of ``image``
        Interpolated in float32; uint8 output is clipped and rounded to nearest.
    """
    size = tuple(size)
    fill = float(fill)
    if len(size) != 2:
        raise TypeError(f"size: expected a (width, height) pair, got {size!r}")
    out_w, out_h = (_as_int(n, "size") for n in size)
    m = _expect(M, "M", np.float64, "float64 array of shape (2, 3)", (2, 3))
    if not (1 <= out_w <= 16384 and 1 <= out_h <= 16384):
        raise ParameterError(
            f"size must be (width, height) with each in [1, 16384], got ({out_w}, {out_h})"
        )
    if not isinstance(border, str):
        raise TypeError(f"border: expected a str, got {type(border).__name__}")
    if border not in ("replicate", "constant"):
        raise ParameterError(f"border must be 'replicate' or 'constant', got '{border}'")
    dtype = np.float32 if isinstance(image, np.ndarray) and image.dtype == np.float32 else np.uint8
    img = _expect(image, "image", dtype, "uint8 or float32 array of shape (H, W)", (-1, -1))
    h, w = img.shape
    if h < 1 or w < 1:
        raise ParameterError("image is empty")
    if not np.isfinite(m).all():
        raise ParameterError("affine matrix is not finite")
    if dtype == np.uint8 and not math.isfinite(fill):
        raise ParameterError(f"fill must be finite for a uint8 image, got {fill}")
    inv = _invert_affine(m)

    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    # Beyond two pixels outside every tap is border anyway; clipping keeps
    # the integer positions small without changing any value.
    sx = np.clip(sx, -2.0, w + 1.0)
    sy = np.clip(sy, -2.0, h + 1.0)
    x0f, y0f = np.floor(sx), np.floor(sy)
    fx = (sx - x0f).astype(_F32)
    fy = (sy - y0f).astype(_F32)
    x0, y0 = x0f.astype(np.int64), y0f.astype(np.int64)

    pixels = img.astype(_F32)

    def tap(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        value = pixels[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]
        if border == "constant":
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            value = np.where(inside, value, _F32(fill))
        return value

    a, b = tap(x0, y0), tap(x0 + 1, y0)
    c, e = tap(x0, y0 + 1), tap(x0 + 1, y0 + 1)
    top = a + fx * (b - a)
    bottom = c + fx * (e - c)
    value = top + fy * (bottom - top)
    if dtype == np.float32:
        return value
    return np.floor(np.clip(value, _F32(0), _F32(255)) + _F32(0.5)).astype(np.uint8)


# -------------------------------------------------------------- dense flow
def flow_params(preset: str = "balanced", **overrides: object) -> dict[str, int | float]:
    """The dense-flow parameters of ``preset`` with ``overrides`` applied and checked.

    The presets are read from the compiled core so the two paths cannot drift.
    ``smoothness`` and ``relaxation`` are float32 values, as in the core.
    """
    if not isinstance(preset, str):
        raise TypeError(f"preset: expected a str, got {type(preset).__name__}")
    if preset not in FLOW_PRESETS:
        raise ParameterError(f"unknown flow preset '{preset}': expected 'fast', 'balanced' or 'accurate'")
    params = dict(_core.DenseFlow(preset=preset).params)
    for name, value in overrides.items():
        if name not in params:
            raise TypeError(f"dense_flow() got an unexpected keyword argument '{name}'")
        if value is None:
            continue
        if name in ("smoothness", "relaxation"):
            with np.errstate(over="ignore"):
                params[name] = float(_F32(_as_float(value, name)))
        else:
            params[name] = _as_int(value, name)
    ranges = {
        "levels": (0, 10), "finest_level": (0, 4), "warps": (1, 50), "sweeps": (0, 200), "window": (0, 16),
        "highpass": (0, 64), "correction_sweeps": (0, 200),
    }
    for name, (lo, hi) in ranges.items():
        if name in params and not lo <= params[name] <= hi:
            raise ParameterError(f"{name} must be in [{lo}, {hi}], got {params[name]}")
    if not (params["smoothness"] > 0 and math.isfinite(params["smoothness"])):
        raise ParameterError("smoothness must be a positive finite number")
    if not 0 < params["relaxation"] < 2:
        raise ParameterError("relaxation must be in (0, 2)")
    return params


def _standardise(image: np.ndarray) -> np.ndarray:
    """(image - mean) / standard deviation, in float32 (moments in float64)."""
    values = image.astype(np.float64)
    mean = values.sum() / values.size
    sd = math.sqrt(max((values * values).sum() / values.size - mean * mean, 0.0))
    inv = _F32(1.0 / sd) if sd > 1e-6 else _F32(1.0)
    return (image.astype(_F32) - _F32(mean)) * inv


def _downsample(image: np.ndarray) -> np.ndarray:
    """2x2 mean; a (h, w) image becomes (h // 2, w // 2)."""
    h, w = image.shape
    q = image[: h // 2 * 2, : w // 2 * 2]
    return _F32(0.25) * ((q[0::2, 0::2] + q[0::2, 1::2]) + (q[1::2, 0::2] + q[1::2, 1::2]))


def _smooth3(image: np.ndarray) -> np.ndarray:
    """Separable [1 2 1] / 4 smoothing with replicated borders (rows first)."""
    s = image
    t = np.empty_like(s)
    t[:, 1:-1] = _F32(0.25) * ((s[:, :-2] + s[:, 2:]) + _F32(2) * s[:, 1:-1])
    t[:, 0] = _F32(0.25) * (_F32(3) * s[:, 0] + s[:, 1])
    t[:, -1] = _F32(0.25) * (_F32(3) * s[:, -1] + s[:, -2])
    up = np.vstack([t[:1], t[:-1]])
    down = np.vstack([t[1:], t[-1:]])
    return _F32(0.25) * ((up + down) + _F32(2) * t)


def _gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy.gradient: central differences inside, one-sided at the borders."""
    gx = np.empty_like(image)
    gx[:, 1:-1] = _F32(0.5) * (image[:, 2:] - image[:, :-2])
    gx[:, 0] = image[:, 1] - image[:, 0]
    gx[:, -1] = image[:, -1] - image[:, -2]
    gy = np.empty_like(image)
    gy[1:-1] = _F32(0.5) * (image[2:] - image[:-2])
    gy[0] = image[1] - image[0]
    gy[-1] = image[-1] - image[-2]
    return gx, gy


def _box_mean(image: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 box clipped to the image (divided by the pixels inside)."""
    h, w = image.shape
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = image.astype(np.float64).cumsum(axis=0).cumsum(axis=1)
    y_lo, y_hi = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    x_lo, x_hi = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    total = (
        integral[np.ix_(y_hi, x_hi)] - integral[np.ix_(y_lo, x_hi)]
        - integral[np.ix_(y_hi, x_lo)] + integral[np.ix_(y_lo, x_lo)]
    )
    count = np.outer(y_hi - y_lo, x_hi - x_lo)
    return (total / count).astype(_F32)


def _neighbour_count(h: int, w: int) -> np.ndarray:
    """How many of the 4 neighbours of each pixel lie inside the image (float32)."""
    count = np.full((h, w), 4, dtype=_F32)
    count[0] -= 1
    count[-1] -= 1
    count[:, 0] -= 1
    count[:, -1] -= 1
    return count


def _neighbour_sum(f: np.ndarray) -> np.ndarray:
    """(left + right) + (up + down), with neighbours outside the image counted as 0."""
    padded = np.pad(f, 1)
    return (padded[1:-1, :-2] + padded[1:-1, 2:]) + (padded[:-2, 1:-1] + padded[2:, 1:-1])


def _warp_by_flow(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """image(x + u, y + v), bilinear, sample positions clamped to the image."""
    h, w = image.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(_F32)
    sx = np.clip(xs + u, _F32(0), _F32(w - 1))
    sy = np.clip(ys + v, _F32(0), _F32(h - 1))
    x0 = np.minimum(sx.astype(np.int64), w - 2)
    y0 = np.minimum(sy.astype(np.int64), h - 2)
    fx = sx - x0.astype(_F32)
    fy = sy - y0.astype(_F32)
    top = image[y0, x0] + fx * (image[y0, x0 + 1] - image[y0, x0])
    bottom = image[y0 + 1, x0] + fx * (image[y0 + 1, x0 + 1] - image[y0 + 1, x0])
    return top + fy * (bottom - top)


def _upsample2(src: np.ndarray) -> np.ndarray:
    """Exact 2x upsampling of a flow component (values doubled).

    Each output pixel sits a quarter of a coarse pixel from its nearest
    coarse sample, so the weights are 3/4 and 1/4; the edges clamp.
    """
    sh, sw = src.shape
    k = np.arange(2 * sh) // 2
    other = np.where(np.arange(2 * sh) % 2 == 1, np.minimum(k + 1, sh - 1), np.maximum(k - 1, 0))
    rows = _F32(2) * (_F32(0.75) * src[k] + _F32(0.25) * src[other])
    out = np.empty((2 * sh, 2 * sw), dtype=_F32)
    out[:, 0] = rows[:, 0]
    out[:, 1:-1:2] = _F32(0.75) * rows[:, :-1] + _F32(0.25) * rows[:, 1:]
    out[:, 2:-1:2] = _F32(0.25) * rows[:, :-1] + _F32(0.75) * rows[:, 1:]
    out[:, -1] = rows[:, -1]
    return out


def _upsample(src: np.ndarray, dw: int, dh: int, scale: float) -> np.ndarray:
    """Bilinear upsampling to (dh, dw) by ``scale``, values multiplied by it (pixel centres aligned)."""
    sh, sw = src.shape
    scale = _F32(scale)

    def positions(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out, dtype=_F32) + _F32(0.5)) / scale - _F32(0.5), _F32(0), _F32(n_in - 1))
        lo = np.minimum(pos.astype(np.int64), max(n_in - 2, 0))
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo.astype(_F32)

    x0, x1, fx = positions(dw, sw)
    y0, y1, fy = positions(dh, sh)
    fy = fy[:, None]
    top = src[np.ix_(y0, x0)] + fx * (src[np.ix_(y0, x1)] - src[np.ix_(y0, x0)])
    bottom = src[np.ix_(y1, x0)] + fx * (src[np.ix_(y1, x1)] - src[np.ix_(y1, x0)])
    return scale * (top + fy * (bottom - top))


def _upsample_flow(src: np.ndarray, dw: int, dh: int, factor: int) -> np.ndarray:
    """Upsample by ``factor``, through the exact 2x path whenever the sizes allow."""
    sh, sw = src.shape
    if factor == 2 and dw == 2 * sw and dh == 2 * sh:
        return _upsample2(src)
    return _upsample(src, dw, dh, float(factor))


def _sum_cells(image: np.ndarray) -> np.ndarray:
    """Sums over 2x2 cells; with an odd side the last row or column joins the cell before it."""
    h, w = image.shape
    cw, ch = w // 2, h // 2
    cols = image[:, 0 : 2 * cw : 2] + image[:, 1 : 2 * cw : 2]
    if w % 2:
        cols[:, -1] += image[:, -1]
    cells = np.zeros((ch, cw), _F32)
    for y in range(h):
        cells[min(y // 2, ch - 1)] += cols[y]
    return cells


def _prolong(cells: np.ndarray, w: int, h: int) -> np.ndarray:
    """Cell-centred bilinear interpolation of a (h // 2, w // 2) grid to (h, w), edges replicated.

    Pixel x takes 3/4 of cell x // 2 and 1/4 of cell x // 2 - 1 (x even) or
    x // 2 + 1 (x odd), both clamped to the grid; rows first, then columns.
    """
    ch, cw = cells.shape

    def near_far(n: int, cells_n: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(n)
        far = np.where(i % 2 == 1, i // 2 + 1, i // 2 - 1)
        return np.minimum(i // 2, cells_n - 1), np.clip(far, 0, cells_n - 1)

    yn, yf = near_far(h, ch)
    rows = _F32(0.75) * cells[yn] + _F32(0.25) * cells[yf]
    xn, xf = near_far(w, cw)
    return _F32(0.75) * rows[:, xn] + _F32(0.25) * rows[:, xf]


def _sor(inv: tuple[np.ndarray, np.ndarray, np.ndarray], cx: np.ndarray, cy: np.ndarray,
         du: np.ndarray, dv: np.ndarray, alpha: np.float32, omega: np.float32, sweeps: int) -> None:
    """Red-black SOR sweeps (red, ``(x + y)`` even, first) on the increment (du, dv), in place."""
    inv_a, inv_b, inv_c = inv
    h, w = du.shape
    yy, xx = np.mgrid[0:h, 0:w]
    colours = [(xx + yy) % 2 == 0, (xx + yy) % 2 == 1]
    for _ in range(sweeps):
        for colour in colours:
            # Pixels of one colour only have neighbours of the other one.
            rx = cx + alpha * _neighbour_sum(du)
            ry = cy + alpha * _neighbour_sum(dv)
            du_new = du + omega * ((inv_a * rx + inv_b * ry) - du)
            dv_new = dv + omega * ((inv_b * rx + inv_c * ry) - dv)
            du[colour] = du_new[colour]
            dv[colour] = dv_new[colour]


def _invert_systems(jxx: np.ndarray, jxy: np.ndarray, jyy: np.ndarray,
                    alpha: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse (a, b, c) of ``[[jxx, jxy], [jxy, jyy]] + alpha * (neighbour count) * I`` per pixel."""
    count = _neighbour_count(*jxx.shape)
    jxx, jyy = jxx + alpha * count, jyy + alpha * count
    inv_det = _F32(1) / (jxx * jyy - jxy * jxy)
    return jyy * inv_det, -jxy * inv_det, jxx * inv_det


def _check_flow_images(prev: object, next: object, out: object) -> tuple[np.ndarray, np.ndarray]:
    expected = "uint8 or float32 array of shape (H, W)"
    if out is None:
        # The output is allocated from prev's shape before its dtype is looked at.
        if isinstance(prev, np.ndarray) and prev.ndim != 2:
            raise ParameterError(f"prev: expected {expected}, got {_describe(prev)}")
    else:
        _expect(out, "out", np.float32, "float32 array of shape (H, W, 2)", (-1, -1, 2))
    dtype = np.float32 if isinstance(prev, np.ndarray) and prev.dtype == np.float32 else np.uint8
    prev = _expect(prev, "prev", dtype, expected, (-1, -1))
    next = _expect(next, "next", dtype, expected, prev.shape)
    h, w = prev.shape
    if out is not None and out.shape[:2] != (h, w):
        raise ParameterError(f"out: expected float32 array of shape ({h}, {w}, 2), got {_describe(out)}")
    if dtype == np.float32:
        for name, image in (("prev", prev), ("next", next)):
            bad = ~np.isfinite(image)
            if bad.any():
                raise ParameterError(
                    f"{name}: image holds a non-finite value at pixel {int(np.flatnonzero(bad)[0])}"
                )
    if w < MIN_FLOW_SIDE or h < MIN_FLOW_SIDE:
        raise ParameterError(
            f"images must be at least {MIN_FLOW_SIDE}x{MIN_FLOW_SIDE} pixels, got {w}x{h}"
        )
    return prev, next


def dense_flow(
    prev: np.ndarray,
    next: np.ndarray,
    *,
    preset: str = "balanced",
    out: np.ndarray | None = None,
    **overrides: int | float | None,
) -> np.ndarray:
    """Dense optical flow, the way ``core/src/flow.cpp`` computes it.

    Combined local-global flow (Bruhn et al. 2005), coarse to fine, with the
    gradient of the first image (inverse compositional linearisation):

    1. standardise both images (zero mean, unit variance) and, with
       ``highpass > 0``, subtract their box mean of that radius;
    2. build 2x2 mean pyramids (floor sizes) while the short side stays
       >= 12 px after halving, at most ``finest_level + levels`` times;
    3. per level, coarsest first: upsample the coarser flow (x2, values
       doubled), smooth both images with [1 2 1]/4, take numpy.gradient of
       the first, and invert per pixel the 2x2 system
       ``box(grad grad^T) + alpha * (neighbour count) * I``;
    4. per warp: sample the second image at the current flow, form the
       right-hand side ``-box(grad * It) + alpha * (sum of neighbour flows
       - count * own flow)``, and solve for the increment with red-black
       successive over-relaxation, ``sweeps * 2^min(level - finest, 2)``
       sweeps, red (``(x + y)`` even) first; with ``correction_sweeps > 0``
       the finest level runs half of them (rounded down), then a two-grid
       correction, then the rest. The correction grid has ``(h // 2, w // 2)``
       cells (an odd last row or column joins the cell before it); its 2x2
       tensors and right-hand side are the fine tensors and residuals
       ``c + alpha * (sum of neighbour increments) - (tensor + alpha * count)
       * increment`` summed per cell, the smoothness weight stays ``alpha``;
       ``correction_sweeps`` SOR sweeps from zero solve it, and its
       cell-centred bilinear interpolation is added to the increment;
    5. upsample the finest solved level to full size when ``finest_level > 0``.

    Parameters
    ----------
    prev, next : uint8 or float32 arrays of shape (H, W), same dtype and shape
        H, W >= 8; float32 values must be finite.
    preset : {"fast", "balanced", "accurate"}
    out : float32 array of shape (H, W, 2), optional
        Written in place and returned.
    **overrides
        ``levels``, ``finest_level``, ``warps``, ``sweeps``, ``window``,
        ``smoothness``, ``relaxation``, ``highpass``, ``correction_sweeps``
        (see :func:`microexpr.dense_flow`).

    Returns
    -------
    flow : float32 array of shape (H, W, 2)
        ``(dx, dy)`` in pixels from each ``prev`` pixel into ``next``.
    """
    p = flow_params(preset, **overrides)
    prev, next = _check_flow_images(prev, next, out)
    height, width = prev.shape

    top, side = 0, min(width, height)
    while side // 2 >= 12 and top < p["finest_level"] + p["levels"]:
        top += 1
        side //= 2
    finest = min(p["finest_level"], top)
    prevs, nexts = [_standardise(prev)], [_standardise(next)]
    if p.get("highpass", 0) > 0:
        # Local mean removal: a lighting gradient that changes between the frames would read as motion.
        prevs[0] = prevs[0] - _box_mean(prevs[0], p["highpass"])
        nexts[0] = nexts[0] - _box_mean(nexts[0], p["highpass"])
    for _ in range(top):
        prevs.append(_downsample(prevs[-1]))
        nexts.append(_downsample(nexts[-1]))

    alpha, omega, r = _F32(p["smoothness"]), _F32(p["relaxation"]), p["window"]
    u = v = None
    for level in range(top, finest - 1, -1):
        h, w = prevs[level].shape
        if u is None:
            u, v = np.zeros((h, w), _F32), np.zeros((h, w), _F32)
        else:
            u, v = _upsample_flow(u, w, h, 2), _upsample_flow(v, w, h, 2)
        prev_s, next_s = _smooth3(prevs[level]), _smooth3(nexts[level])
        ix, iy = _gradient(prev_s)

        count = _neighbour_count(h, w)
        txx, txy, tyy = _box_mean(ix * ix, r), _box_mean(ix * iy, r), _box_mean(iy * iy, r)
        inv = _invert_systems(txx, txy, tyy, alpha)
        correcting = level == finest and p["correction_sweeps"] > 0
        if correcting:
            # The correction grid's equations: the fine ones summed over 2x2 cells.
            coarse_inv = _invert_systems(_sum_cells(txx), _sum_cells(txy), _sum_cells(tyy), alpha)

        level_sweeps = p["sweeps"] * (1 << min(level - finest, 2))
        for _ in range(p["warps"]):
            it = _warp_by_flow(next_s, u, v) - prev_s
            cx = -_box_mean(ix * it, r) + alpha * (_neighbour_sum(u) - count * u)
            cy = -_box_mean(iy * it, r) + alpha * (_neighbour_sum(v) - count * v)
            du, dv = np.zeros((h, w), _F32), np.zeros((h, w), _F32)
            if correcting:
                before = level_sweeps // 2
                _sor(inv, cx, cy, du, dv, alpha, omega, before)
                reg = alpha * count
                res_x = (cx + alpha * _neighbour_sum(du)) - ((txx + reg) * du + txy * dv)
                res_y = (cy + alpha * _neighbour_sum(dv)) - (txy * du + (tyy + reg) * dv)
                ex, ey = np.zeros((h // 2, w // 2), _F32), np.zeros((h // 2, w // 2), _F32)
                _sor(coarse_inv, _sum_cells(res_x), _sum_cells(res_y), ex, ey, alpha, omega,
                     p["correction_sweeps"])
                du += _prolong(ex, w, h)
                dv += _prolong(ey, w, h)
                _sor(inv, cx, cy, du, dv, alpha, omega, level_sweeps - before)
            else:
                _sor(inv, cx, cy, du, dv, alpha, omega, level_sweeps)
            u, v = u + du, v + dv

    if finest > 0:
        u = _upsample_flow(u, width, height, 1 << finest)
        v = _upsample_flow(v, width, height, 1 << finest)
    flow = out if out is not None else np.empty((height, width, 2), _F32)
    flow[..., 0] = u
    flow[..., 1] = v
    return flow


# ------------------------------------------------------------------ regions
def _strain_magnitude(flow: np.ndarray) -> np.ndarray:
    """sqrt(exx^2 + eyy^2 + 2 exy^2) per pixel, derivatives as numpy.gradient, float64."""

    def derivative(f: np.ndarray, axis: int) -> np.ndarray:
        if f.shape[axis] == 1:
            return np.zeros_like(f)
        return np.gradient(f, axis=axis)

    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    exx = derivative(u, 1)
    eyy = derivative(v, 0)
    exy = 0.5 * (derivative(u, 0) + derivative(v, 1))
    return np.sqrt(exx * exx + eyy * eyy + 2.0 * exy * exy)


def region_stats(
    flow: np.ndarray,
    labels: np.ndarray,
    *,
    n_regions: int,
    reference: int | None = None,
    top_fraction: float = 0.2,
    direction_bins: int = 8,
) -> np.ndarray:
    """Per-region flow statistics, the table behind :class:`microexpr.RegionStats`.

    Parameters
    ----------
    flow : float32 array of shape (H, W, 2)
        Finite (dx, dy) per pixel.
    labels : int32 array of shape (H, W)
        Region per pixel in [0, n_regions); negative means no region.
    n_regions : int >= 1
    reference : int, optional
        Region whose mean vector is subtracted from every vector first.
    top_fraction : float in (0, 1]
        Share of the dominant-direction magnitudes averaged for MDMD:
        the ``max(1, ceil(top_fraction * m))`` largest of the ``m`` (as float32).
    direction_bins : int in [1, 360]
        Equal angular bins over (-pi, pi]; bin ``floor((angle + pi) / width)``.

    Returns
    -------
    table : float64 array of shape (n_regions, 7)
        Columns :data:`REGION_COLUMNS`: count, mean magnitude (px), mean dx,
        mean dy (px), MDMD (px), main direction (bin centre, rad), mean
        strain. Empty regions read count 0 and NaN elsewhere.
    """
    n_regions = _as_int(n_regions, "n_regions")
    top_fraction = _as_float(top_fraction, "top_fraction")
    direction_bins = _as_int(direction_bins, "direction_bins")
    flow = _expect(flow, "flow", np.float32, "float32 array of shape (H, W, 2)", (-1, -1, 2))
    h, w = flow.shape[:2]
    if h < 1 or w < 1:
        raise ParameterError("flow is empty")
    labels = _expect(labels, "labels", np.int32, f"int32 array of shape ({h}, {w})", (h, w))
    ref = -1 if reference is None else _as_int(reference, "reference")
    if reference is not None and ref < 0:
        raise ParameterError(f"reference must be a region index >= 0 or None, got {ref}")
    if n_regions < 1:
        raise ParameterError(f"n_regions must be >= 1, got {n_regions}")
    if ref >= n_regions:
        raise ParameterError(f"reference region {ref} is not below n_regions={n_regions}")
    if not 0.0 < top_fraction <= 1.0:
        raise ParameterError("top_fraction must be in (0, 1]")
    if not 1 <= direction_bins <= 360:
        raise ParameterError("direction_bins must be in [1, 360]")
    bad = (labels.ravel() >= n_regions) | ~np.isfinite(flow.reshape(-1, 2)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if labels.flat[i] >= n_regions:
            raise ParameterError(f"label {labels.flat[i]} at pixel {i} is not below n_regions={n_regions}")
        raise ParameterError(f"flow is not finite at pixel {i}")

    fx = flow[..., 0].astype(np.float64)
    fy = flow[..., 1].astype(np.float64)
    ref_x = ref_y = 0.0
    if ref >= 0 and (labels == ref).any():
        ref_x, ref_y = fx[labels == ref].mean(), fy[labels == ref].mean()

    inside = labels >= 0
    region = labels[inside]
    dx, dy = fx[inside] - ref_x, fy[inside] - ref_y
    magnitude = np.sqrt(dx * dx + dy * dy)
    bin_width = 2.0 * math.pi / direction_bins
    # The C library's atan2 (as the core uses), so vectors on a bin edge land in the same bin.
    angle = np.array([math.atan2(y, x) for x, y in zip(dx, dy)], dtype=np.float64)
    angle_bin = np.clip(np.floor((angle + math.pi) / bin_width), 0, direction_bins - 1).astype(np.int64)
    strain = _strain_magnitude(flow)[inside]

    def per_region_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(region, weights=values, minlength=n_regions)

    count = np.bincount(region, minlength=n_regions).astype(np.float64)
    bin_count = np.bincount(region * direction_bins + angle_bin, minlength=n_regions * direction_bins)
    dominant = bin_count.reshape(n_regions, direction_bins).argmax(axis=1)

    table = np.full((n_regions, len(REGION_COLUMNS)), np.nan)
    table[:, 0] = count
    filled = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        table[filled, 1] = (per_region_sum(magnitude) / count)[filled]
        table[filled, 2] = (per_region_sum(dx) / count)[filled]
        table[filled, 3] = (per_region_sum(dy) / count)[filled]
        table[filled, 6] = (per_region_sum(strain) / count)[filled]
    for k in np.flatnonzero(filled):
        # The core keeps these magnitudes as float32 while ranking them.
        members = magnitude[(region == k) & (angle_bin == dominant[k])].astype(_F32)
        top = max(1, math.ceil(top_fraction * len(members) - 1e-9))
        largest = np.sort(members)[::-1][:top]
        table[k, 4] = largest.astype(np.float64).sum() / top
        table[k, 5] = -math.pi + (dominant[k] + 0.5) * bin_width
    return table


# ------------------------------------------------------------------ spectra
def _check_rate_window(rate: float, window: float) -> None:
    if not (rate > 0.0 and math.isfinite(rate)):
        raise ParameterError("rate must be a positive number of Hz")
    if not (window > 0.0 and math.isfinite(window)):
        raise ParameterError("window must be a positive number of seconds")
    if window * rate < 2.0:
        raise ParameterError("window * rate must cover at least 2 samples")
    if rate > 1e5:
        raise ParameterError("rate must be at most 1e5 Hz")
    if window * rate > 1e6:
        raise ParameterError("window * rate must be at most 1e6 samples")


def _as_band(item: object, index: int) -> tuple[float, float]:
    try:
        pair = tuple(item)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"band {index}: expected a (lo, hi) pair of Hz, got {type(item).__name__}") from None
    if len(pair) != 2:
        raise ParameterError(f"band {index}: expected a (lo, hi) pair of Hz, got {pair!r}")
    return _as_float(pair[0], f"band {index} lo"), _as_float(pair[1], f"band {index} hi")


class Spectra:
    """Streaming band energies, the way ``core/src/spectra.cpp`` computes them.

    Samples at irregular times are linearly interpolated onto a grid of step
    ``1 / rate`` that starts at the first sample (a gap longer than
    ``window`` starts over). Each grid value, optionally high-passed by a
    one-pole running mean (time constant ``window``), feeds resonators
    ``s <- r e^{i 2 pi f / rate} s + x`` with ``r = exp(-2 / (rate * window))``
    at probe frequencies ``1 / window`` apart across each band (a band
    narrower than that gets one probe at its centre). A probe reads a tone
    amplitude ``a = 2 (1 - r) |s|`` (``(1 - r) |s|`` at 0 Hz) and adds
    ``a^2 / 2`` (``a^2`` at 0 Hz) to its band's energy.

    Parameters
    ----------
    n_channels : int >= 1
    rate : float
        Grid rate, Hz.
    window : float
        Effective window, seconds; ``window * rate >= 2``.
    bands : sequence of (lo, hi)
        Hz, ``0 <= lo <= hi <= rate / 2``.
    detrend : bool
    """

    def __init__(
        self,
        n_channels: int,
        *,
        rate: float,
        window: float,
        bands: Sequence[tuple[float, float]],
        detrend: bool = True,
    ) -> None:
        n_channels = _as_int(n_channels, "n_channels")
        rate = _as_float(rate, "rate")
        window = _as_float(window, "window")
        band_list = [_as_band(item, i) for i, item in enumerate(bands)]
        if n_channels < 1:
            raise ParameterError("n_channels must be >= 1")
        _check_rate_window(rate, window)
        if not band_list:
            raise ParameterError("at least one band is needed")
        nyquist, df = rate / 2.0, 1.0 / window
        probes: list[float] = []
        probe_band: list[int] = []
        for b, (lo, hi) in enumerate(band_list):
            if not (lo >= 0.0 and hi >= lo and math.isfinite(hi)):
                raise ParameterError(f"band {b} must satisfy 0 <= lo <= hi")
            if hi > nyquist + 1e-9:
                raise ParameterError(
                    f"band {b} reaches {hi:f} Hz, above the Nyquist frequency {nyquist:f} Hz of rate {rate:f}"
                )
            k = math.floor((hi - lo) / df + 1e-9)
            if k > 4096:
                raise ParameterError(f"band {b} needs more than 4096 probes at this window")
            if k == 0:
                freqs = [0.5 * (lo + hi)]
            else:
                start = lo + 0.5 * ((hi - lo) - k * df)
                freqs = [start + j * df for j in range(k + 1)]
                freqs = [0.0 if abs(f) < 1e-9 * df else f for f in freqs]
            probes += freqs
            probe_band += [b] * len(freqs)
        self.n_channels, self.rate, self.window = n_channels, rate, window
        self.bands = band_list
        self.detrend = bool(detrend)
        self.probe_frequencies = np.array(probes)
        self._probe_band = np.array(probe_band)
        self._decay = math.exp(-2.0 / (rate * window))
        self._mean_decay = math.exp(-1.0 / (rate * window))
        angle = 2.0 * math.pi * self.probe_frequencies / rate
        self._rotor = self._decay * (np.cos(angle) + 1j * np.sin(angle))
        self._state = np.zeros((n_channels, len(probes)), dtype=np.complex128)
        self._mean = np.zeros(n_channels)
        self._last_values = np.zeros(n_channels)
        self._last_t = 0.0
        self._next_grid_t = 0.0
        self._started = False
        self.samples = 0

    def reset(self) -> None:
        """Forget all history (the next push starts a new grid)."""
        self._state[:] = 0.0
        self._started = False
        self.samples = 0

    def _step(self, x: np.ndarray) -> None:
        """Feed one grid sample per channel to every resonator."""
        if self.detrend:
            if self.samples == 0:
                self._mean = x.copy()
            else:
                self._mean = self._mean_decay * self._mean + (1.0 - self._mean_decay) * x
            x = x - self._mean
        self._state = self._rotor * self._state + x[:, None]
        self.samples += 1

    def push(self, t: float, values: np.ndarray) -> np.ndarray:
        """Add one sample per channel at time ``t`` (seconds, increasing).

        Parameters
        ----------
        t : float
        values : float64 array of shape (n_channels,)

        Returns
        -------
        energies : float64 array of shape (n_channels, n_bands)
        """
        t = float(t)
        values = _expect(
            values, "values", np.float64, f"float64 array of shape ({self.n_channels},)", (self.n_channels,)
        )
        if not math.isfinite(t):
            raise ParameterError("timestamp is not finite")
        bad = ~np.isfinite(values)
        if bad.any():
            raise ParameterError(f"value of channel {int(np.flatnonzero(bad)[0])} is not finite")
        if self._started and not t > self._last_t:
            raise ParameterError(f"timestamps must increase: got {t:f} s after {self._last_t:f} s")
        if self._started and t - self._last_t > self.window:
            self.reset()
        dt = 1.0 / self.rate
        if not self._started:
            self._started = True
            self._step(values.copy())
            self._next_grid_t = t + dt
        else:
            span = t - self._last_t
            if not self._next_grid_t + dt > self._next_grid_t:
                raise ParameterError(f"timestamps are too large for rate {self.rate}: the sampling step vanishes")
            while self._next_grid_t <= t + 1e-12:
                a = (self._next_grid_t - self._last_t) / span
                self._step(self._last_values + a * (values - self._last_values))
                self._next_grid_t += dt
        self._last_t = t
        self._last_values = values.copy()
        return self.energies()

    def energies(self) -> np.ndarray:
        """Current band energies, float64 array of shape (n_channels, n_bands)."""
        positive = self.probe_frequencies > 0.0
        amplitude = np.where(positive, 2.0, 1.0) * (1.0 - self._decay) * np.abs(self._state)
        energy = np.where(positive, 0.5 * amplitude * amplitude, amplitude * amplitude)
        out = np.zeros((self.n_channels, len(self.bands)))
        for p, band in enumerate(self._probe_band):
            out[:, band] += energy[:, p]
        return out


def _round_half_up(x: float) -> int:
    """Nearest integer to x >= 0, halves rounded up (C's llround, not Python's round-half-even)."""
    whole = math.floor(x)
    return int(whole) + (1 if x - whole >= 0.5 else 0)


def spectrogram(
    t: np.ndarray,
    x: np.ndarray,
    *,
    rate: float,
    window: float,
    hop: float,
    detrend: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short-time power spectrum of signals at real timestamps.

    The samples are linearly interpolated onto ``t[0] + i / rate`` up to
    ``t[-1]``; segments of ``N = round(window * rate)`` grid samples every
    ``max(1, round(hop * rate))`` (halves rounded up) are (optionally) mean-removed, multiplied
    by a periodic Hann window and transformed; power is ``|X_k|^2 / (sum
    window)^2``, doubled except at 0 Hz and at the Nyquist bin of an even N.

    Parameters
    ----------
    t : float64 array of shape (N,)
        Strictly increasing, seconds.
    x : float64 array of shape (N,) or (C, N)
    rate, window, hop : float
        Hz, seconds, seconds.
    detrend : bool

    Returns
    -------
    times : (T,) segment centres, seconds
    freqs : (F,) Hz, ``k * rate / N``
    power : (T, F) or (C, T, F)
    """
    t = _expect(t, "t", np.float64, "float64 array of shape (N,)", (-1,))
    n = len(t)
    if isinstance(x, np.ndarray) and x.ndim not in (1, 2):
        raise ParameterError(f"x: expected float64 array of shape ({n},) or (C, {n}), got {_describe(x)}")
    if isinstance(x, np.ndarray) and x.ndim == 2:
        x = _expect(x, "x", np.float64, f"float64 array of shape (C, {n})", (-1, n))
    else:
        x = _expect(x, "x", np.float64, f"float64 array of shape ({n},)", (n,))
    rate, window, hop = _as_float(rate, "rate"), _as_float(window, "window"), _as_float(hop, "hop")
    _check_rate_window(rate, window)
    if not (hop > 0.0 and math.isfinite(hop)):
        raise ParameterError("hop must be a positive number of seconds")
    channels = x if x.ndim == 2 else x[None, :]
    if len(channels) == 0:
        raise ParameterError(f"x: expected at least one channel, got shape (0, {n})")
    for signal in channels:
        bad = ~(np.isfinite(t) & np.isfinite(signal))
        if bad.any():
            raise ParameterError(f"sample {int(np.flatnonzero(bad)[0])} is not finite")
    if n > 1 and not (np.diff(t) > 0).all():
        first = int(np.flatnonzero(~(np.diff(t) > 0))[0]) + 1
        raise ParameterError(f"times must increase strictly (sample {first})")

    size = _round_half_up(window * rate)
    step = max(1, _round_half_up(hop * rate))
    freqs = np.arange(size // 2 + 1) * rate / size
    n_grid = int(math.floor((t[-1] - t[0]) * rate + 1e-9)) + 1 if n else 0
    starts = np.arange(0, n_grid - size + 1, step) if n and n_grid >= size else np.arange(0)
    times = t[0] + (starts + 0.5 * size) / rate if len(starts) else np.zeros(0)

    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(size) / size)
    one_sided = np.full(len(freqs), 2.0)
    one_sided[0] = 1.0
    if size % 2 == 0:
        one_sided[-1] = 1.0
    power = np.zeros((len(channels), len(starts), len(freqs)))
    if not len(starts):
        return times, freqs, power if x.ndim == 2 else power[0]
    grid_t = t[0] + np.arange(n_grid) / rate
    # Each grid time lies in the interval that starts at the last sample at or before it.
    j = np.searchsorted(t, grid_t, side="right") - 1
    j1 = np.minimum(j + 1, n - 1)
    for c, signal in enumerate(channels):
        with np.errstate(invalid="ignore", divide="ignore"):
            between = signal[j] + (grid_t - t[j]) / (t[j1] - t[j]) * (signal[j1] - signal[j])
        grid = np.where(j + 1 < n, between, signal[-1])
        for s, start in enumerate(starts):
            segment = grid[start : start + size]
            if detrend:
                segment = segment - segment.mean()
            spectrum = np.fft.rfft(segment * hann)
            power[c, s] = one_sided * np.abs(spectrum) ** 2 / hann.sum() ** 2
    return times, freqs, power if x.ndim == 2 else power[0]
