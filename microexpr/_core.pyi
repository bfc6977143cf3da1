"""Type stubs of the compiled module (documented wrappers: microexpr.core)."""

from typing import Sequence

import numpy as np
import numpy.typing as npt

__version__: str
simd: str
MIN_FLOW_SIDE: int
REGION_COLUMNS: tuple[str, ...]

def estimate_similarity(
    src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]: ...
def warp_affine(
    image: npt.NDArray[np.uint8] | npt.NDArray[np.float32],
    M: npt.NDArray[np.float64],
    size: tuple[int, int],
    *,
    border: str = "replicate",
    fill: float = 0.0,
) -> npt.NDArray[np.uint8] | npt.NDArray[np.float32]: ...

class DenseFlow:
    def __init__(
        self,
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
    ) -> None: ...
    def compute(
        self,
        prev: npt.NDArray[np.uint8] | npt.NDArray[np.float32],
        next: npt.NDArray[np.uint8] | npt.NDArray[np.float32],
        *,
        out: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]: ...
    @property
    def params(self) -> dict[str, float]: ...

def region_stats(
    flow: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    *,
    n_regions: int,
    reference: int | None = None,
    top_fraction: float = 0.2,
    direction_bins: int = 8,
) -> npt.NDArray[np.float64]: ...

class Spectra:
    def __init__(
        self,
        n_channels: int,
        *,
        rate: float,
        window: float,
        bands: Sequence[tuple[float, float]],
        detrend: bool = True,
    ) -> None: ...
    def push(self, t: float, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    def energies(self) -> npt.NDArray[np.float64]: ...
    def reset(self) -> None: ...
    @property
    def n_channels(self) -> int: ...
    @property
    def rate(self) -> float: ...
    @property
    def window(self) -> float: ...
    @property
    def bands(self) -> list[tuple[float, float]]: ...
    @property
    def probe_frequencies(self) -> npt.NDArray[np.float64]: ...
    @property
    def samples(self) -> int: ...

def spectrogram(
    t: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    *,
    rate: float,
    window: float,
    hop: float,
    detrend: bool = True,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
