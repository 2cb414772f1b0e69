"""Spectra as images (AppleCiDEr paper I, Appendix A): each spectrum drawn as a line plot with matplotlib — no
axes, ticks or grid, the curve on a white background, native sampling (no resampling) — once raw and once per
LOESS-smoothed version (spans 0.05 and 0.1: the appendix's best subset of channels), each curve min–max
normalised, stacked into a (3, H, W) float32 array in [0, 1] (1 = white). 288 × 288 and line width 1.0 are
the appendix's best settings.

LOESS here is local linear regression with tricube weights (no robustness iterations); on spectra with more
than ``max_smoothing_points`` samples it runs on an evenly strided subset (the raw channel keeps every point),
which bounds its cost on long spectra.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from applecider_core.records import Spectrum

from .preprocessing import _clean
from .sedm import loess


def _minmax(values: np.ndarray) -> np.ndarray:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


class SpectrumRenderer:
    """``renderer(spectrum)`` → (1 + len(spans), size, size) float32 image channels."""

    def __init__(self, size: int = 288, linewidth: float = 1.0, spans: Sequence[float] = (0.05, 0.1),
                 max_smoothing_points: int = 1024) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.size, self.spans, self.max_points = size, tuple(spans), max_smoothing_points
        self.figure = plt.figure(figsize=(1, 1), dpi=size, facecolor="white")
        self.axes = self.figure.add_axes((0, 0, 1, 1))
        self.axes.set_axis_off()
        (self.line,) = self.axes.plot([0, 1], [0, 1], color="black", linewidth=linewidth)
        self.axes.set_xlim(0, 1)
        self.axes.set_ylim(-0.02, 1.02)

    def curves(self, spectrum: Spectrum) -> list[tuple[np.ndarray, np.ndarray]]:
        wavelength, flux = _clean(spectrum, spectrum.spectrum_id or spectrum.object_id)
        x = _minmax(wavelength)
        stride = max(1, int(np.ceil(len(x) / self.max_points)))
        out = [(x, _minmax(flux))]
        for span in self.spans:
            out.append((x[::stride], _minmax(loess(flux[::stride], span, 1, 0, wavelength[::stride]))))
        return out

    def __call__(self, spectrum: Spectrum) -> np.ndarray:
        channels = []
        for x, y in self.curves(spectrum):
            self.line.set_data(x, y)
            self.figure.canvas.draw()
            rgba = np.asarray(self.figure.canvas.buffer_rgba())
            channels.append(rgba[..., :3].mean(axis=-1) / 255.0)
        return np.stack(channels).astype(np.float32)


__all__ = ["SpectrumRenderer"]
