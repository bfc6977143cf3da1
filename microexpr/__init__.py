"""microexpr: real-time micro-expression spotting.

The compiled kernels are re-exported here: :func:`estimate_similarity`,
:func:`warp_affine`, :func:`dense_flow`, :func:`region_stats`,
:class:`Spectra` and :func:`spectrogram`.
"""

from .errors import (
    LandmarkError,
    MicroexprError,
    ModelNotFoundError,
    ParameterError,
    VideoError,
)
from .core import (
    FLOW_PRESETS,
    REGION_COLUMNS,
    RegionStats,
    Spectra,
    c_abi_paths,
    dense_flow,
    estimate_similarity,
    region_stats,
    spectrogram,
    warp_affine,
)

from .events import Event, Result
from .pipeline import Analyzer, analyze

__version__ = "0.1.0"

__all__ = [
    "Analyzer",
    "Event",
    "Result",
    "analyze",
    "FLOW_PRESETS",
    "LandmarkError",
    "MicroexprError",
    "ModelNotFoundError",
    "ParameterError",
    "REGION_COLUMNS",
    "RegionStats",
    "Spectra",
    "VideoError",
    "c_abi_paths",
    "dense_flow",
    "estimate_similarity",
    "region_stats",
    "spectrogram",
    "warp_affine",
]
