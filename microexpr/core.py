"""The compiled kernels, documented.

Thin wrappers over :mod:`microexpr._core`. Arrays cross the boundary without
copies: they must already have the documented dtype, shape and C order, and
anything else raises a :class:`TypeError` (dtype) or
:class:`~microexpr.errors.ParameterError` (shape, size, values) naming what
was expected and what came. The GIL is released during every computation.
Plain-numpy twins of every kernel live in :mod:`microexpr.reference`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import _core

__all__ = [
    "FLOW_PRESETS",
    "REGION_COLUMNS",
    "c_abi_paths",
    "RegionStats",
    "Spectra",
    "dense_flow",
    "estimate_similarity",
    "region_stats",
    "spectrogram",
    "warp_affine",
]

FLOW_PRESETS = ("fast", "balanced", "accurate")
REGION_COLUMNS: tuple[str, ...] = tuple(_core.REGION_COLUMNS)

DenseFlow = _core.DenseFlow


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform taking ``src`` points to ``dst``.

    Parameters
    ----------
    src, dst : float64 arrays of shape (N, 2)
        Corresponding (x, y) points, N >= 2.

    Returns
    -------
    M : float64 array of shape (2, 3)
        ``[[s cos a, -s sin a, tx], [s sin a, s cos a, ty]]`` minimising
        ``sum |M [x, y, 1] - dst|^2`` (Umeyama's estimate, no reflection).
    """
    return _core.estimate_similarity(src, dst)


def warp_affine(
    image: np.ndarray,
    M: np.ndarray,
    size: tuple[int, int],
    *,
    border: str = "replicate",
    fill: float = 0.0,
) -> np.ndarray:
    """Warp a grey image with a 2x3 affine matrix, bilinear.

    Parameters
    ----------
    image : uint8 or float32 array of shape (H, W)
    M : float64 array of shape (2, 3)
        Maps source (x, y) to output (x', y'); the output samples
        ``image(M^-1 [x', y'])`` (OpenCV's ``warpAffine`` convention).
    size : (width, height)
        Output size in pixels.
    border : {"replicate", "constant"}
        Outside the image, repeat the edge or use ``fill``.

    Returns
    -------
    crop : array of shape (height, width), the dtype of ``image``
        uint8 output is rounded to nearest.
    """
    return _core.warp_affine(image, M, tuple(size), border=border, fill=float(fill))


def c_abi_paths() -> tuple[Path, Path]:
    """Where the installed C ABI lives: ``(include_dir, lib_dir)``.

    ``include_dir`` holds ``microexpr.h``; ``lib_dir`` the ``libmicroexpr``
    shared library that native hosts (C programs, the OBS plugin) link.
    """
    root = Path(_core.__file__).resolve().parent
    return root / "include", root / "lib"


_flow_cache = threading.local()


def dense_flow(
    prev: np.ndarray,
    next: np.ndarray,
    *,
    preset: str = "balanced",
    levels: int | None = None,
    finest_level: int | None = None,
    warps: int | None = None,
    sweeps: int | None = None,
    window: int | None = None,
    smoothness: float | None = None,
    relaxation: float | None = None,
    highpass: int | None = None,
    correction_sweeps: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Dense optical flow between two grey face crops.

    Coarse-to-fine combined local-global flow: a local structure tensor
    (Lucas-Kanade) data term with a first-order smoothness term, solved by
    red-black Gauss-Seidel at each pyramid level. Both images are
    standardised (zero mean, unit variance) first, so global brightness and
    contrast changes between the frames do not bias the flow. Written for
    96-256 px crops with displacements mostly below 3 px.

    Parameters
    ----------
    prev, next : uint8 or float32 arrays of shape (H, W), same dtype and shape
        H, W >= 8.
    preset : {"fast", "balanced", "accurate"}
        ``fast`` solves at half resolution and upsamples; ``accurate`` does
        more warps and sweeps than ``balanced`` over a wider structure-tensor
        window.
    levels, finest_level, warps, sweeps, window, smoothness, relaxation, correction_sweeps
        Override single parameters of the preset (pyramid levels, finest
        level solved, warping iterations per level, Gauss-Seidel sweeps per
        warp, structure-tensor box radius in px, smoothness weight,
        over-relaxation factor in (0, 2), sweeps of the half-resolution
        correction that ``balanced`` and ``accurate`` run between the two
        halves of the finest level's sweeps; 0 turns it off).
    out : float32 array of shape (H, W, 2), optional
        Written in place and returned (no allocation per frame).

    Returns
    -------
    flow : float32 array of shape (H, W, 2)
        ``flow[y, x] = (dx, dy)`` in pixels: where the content of ``prev`` at
        (x, y) is found in ``next``.
    """
    key = (preset, levels, finest_level, warps, sweeps, window, smoothness, relaxation, highpass,
           correction_sweeps)
    engines = getattr(_flow_cache, "engines", None)
    if engines is None:
        engines = _flow_cache.engines = {}
    engine = engines.get(key)
    if engine is None:
        engine = DenseFlow(
            preset=preset,
            levels=levels,
            finest_level=finest_level,
            warps=warps,
            sweeps=sweeps,
            window=window,
            smoothness=smoothness,
            relaxation=relaxation,
            highpass=highpass,
            correction_sweeps=correction_sweeps,
        )
        if len(engines) > 16:
            engines.clear()
        engines[key] = engine
    return engine.compute(prev, next, out=out)


@dataclass(frozen=True)
class RegionStats:
    """Per-region summary of a flow field (one row per region).

    Attributes
    ----------
    count : (R,) number of pixels in each region
    mean_magnitude : (R,) mean flow magnitude, px
    mean_vector : (R, 2) mean (dx, dy), px
    mdmd : (R,) main-direction mean magnitude: mean magnitude of the top
        ``top_fraction`` of vectors in the most populated direction bin, px
    main_direction : (R,) centre angle of that bin, radians (image axes, y down)
    mean_strain : (R,) mean optical strain magnitude (unitless)

    Empty regions hold count 0 and NaN elsewhere.
    """

    table: np.ndarray

    @property
    def count(self) -> np.ndarray:
        return self.table[:, 0]

    @property
    def mean_magnitude(self) -> np.ndarray:
        return self.table[:, 1]

    @property
    def mean_vector(self) -> np.ndarray:
        return self.table[:, 2:4]

    @property
    def mdmd(self) -> np.ndarray:
        return self.table[:, 4]

    @property
    def main_direction(self) -> np.ndarray:
        return self.table[:, 5]

    @property
    def mean_strain(self) -> np.ndarray:
        return self.table[:, 6]

    def to_frame(self, names: Sequence[str] | None = None):
        """The table as a pandas DataFrame, one row per region."""
        import pandas as pd

        index = list(names) if names is not None else None
        return pd.DataFrame(self.table, columns=list(REGION_COLUMNS), index=index)


def region_stats(
    flow: np.ndarray,
    labels: np.ndarray,
    *,
    n_regions: int,
    reference: int | None = None,
    top_fraction: float = 0.2,
    direction_bins: int = 8,
) -> RegionStats:
    """Summarise a flow field over labelled face regions.

    Parameters
    ----------
    flow : float32 array of shape (H, W, 2)
    labels : int32 array of shape (H, W)
        Region index per pixel in ``[0, n_regions)``; negative means none.
    n_regions : int
    reference : int, optional
        Region whose mean vector is subtracted from every vector first
        (the nose bridge: residual head motion after alignment).
    top_fraction : float in (0, 1]
        Share of the dominant-direction vectors averaged for MDMD.
    direction_bins : int
        Number of equal angular bins for the dominant direction.

    Returns
    -------
    RegionStats
    """
    table = _core.region_stats(
        flow,
        labels,
        n_regions=n_regions,
        reference=reference,
        top_fraction=top_fraction,
        direction_bins=direction_bins,
    )
    return RegionStats(table)


class Spectra:
    """Streaming band energies of many channels at real timestamps.

    Samples pushed at irregular times are linearly resampled onto a grid at
    ``rate`` Hz. Each band is watched by resonators at probe frequencies
    ``1 / window`` apart (an exponentially windowed sliding DFT), so the state
    is a few complex numbers per band and channel and a push costs
    O(channels x probes) per grid sample. With ``detrend`` a one-pole
    high-pass (time constant ``window``) removes position offsets and drift.
    A gap longer than ``window`` restarts the analysis.

    Parameters
    ----------
    n_channels : int
    rate : float
        Analysis rate, Hz.
    window : float
        Effective analysis window, seconds.
    bands : sequence of (lo, hi)
        Frequency bands, Hz, within [0, rate / 2].

    Notes
    -----
    Energies approximate the mean square of each band's content: a tone of
    amplitude A inside a band reads about A**2 / 2 (within about 30 %,
    depending on where it falls between probes).
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
        self._impl = _core.Spectra(
            n_channels, rate=rate, window=window, bands=[tuple(b) for b in bands], detrend=detrend
        )

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
        return self._impl.push(float(t), values)

    def energies(self) -> np.ndarray:
        """Current band energies, shape (n_channels, n_bands)."""
        return self._impl.energies()

    def reset(self) -> None:
        """Forget all history."""
        self._impl.reset()

    @property
    def n_channels(self) -> int:
        return self._impl.n_channels

    @property
    def rate(self) -> float:
        return self._impl.rate

    @property
    def window(self) -> float:
        return self._impl.window

    @property
    def bands(self) -> list[tuple[float, float]]:
        return self._impl.bands

    @property
    def probe_frequencies(self) -> np.ndarray:
        return self._impl.probe_frequencies

    @property
    def samples(self) -> int:
        """Grid samples processed since the last (re)start."""
        return self._impl.samples


def spectrogram(
    t: np.ndarray,
    x: np.ndarray,
    *,
    rate: float,
    window: float,
    hop: float,
    detrend: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short-time power spectrum of signals sampled at real timestamps.

    Parameters
    ----------
    t : float64 array of shape (N,)
        Strictly increasing sample times, seconds.
    x : float64 array of shape (N,) or (C, N)
    rate : float
        Resampling rate, Hz (linear interpolation onto ``t[0] + k / rate``).
    window, hop : float
        Segment length and step, seconds (periodic Hann window).
    detrend : bool
        Subtract each segment's mean first.

    Returns
    -------
    times : (T,) segment centres, seconds
    freqs : (F,) Hz
    power : (T, F) or (C, T, F)
        One-sided power; a tone of amplitude A peaks at A**2 / 2.
    """
    return _core.spectrogram(t, x, rate=rate, window=window, hop=hop, detrend=detrend)
