"""What a broker knew about an object at a horizon after its first detection (paper I §6, early classification).

For an object with first detection t0 (the earliest of: its light curve's detections, its alerts' epochs and
the alerts' ``age_days`` back from them) and a horizon h (days), the evaluation inputs are:

- the light curve cut at t0 + h (points with ``mjd ≤ t0 + h``, upper limits included);
- images/metadata from the last alert at or before t0 + h;
- the spectrum closest in time to t0; with ``spectra_before_horizon`` only spectra taken at or before the
  cut (spectra without an epoch are then unusable). Without any photometric epoch (spectra-only objects) t0 is
  unknown: the earliest spectrum is used, or, with the switch, none.

Per object there is one case per horizon; per alert there is one case for every alert at or before t0 + h,
each cut at that alert's own epoch, as the stream saw it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from applecider_core.dataset import SharedDataset
from applecider_core.records import METADATA_FEATURES, Alert, CutoutTriplet, LightCurve, Spectrum

AGE = METADATA_FEATURES.index("age_days")
_EMPTY = LightCurve("", [], [], [], [], [])


@dataclass
class Case:
    """One evaluation item: what the models get for an object at a cut (None = modality absent)."""

    object_id: str
    cut_mjd: float  # NaN when the object has no photometric epoch
    age_days: float  # cut_mjd - first detection (NaN when unknown)
    light_curve: LightCurve | None
    alert: Alert | None
    spectrum: Spectrum | None


class Timelines:
    """Per-object light curve, alerts (time-ordered) and spectra of one split, for cutting at horizons."""

    def __init__(self, ds: SharedDataset, split: str) -> None:
        self.ds = ds
        self.table = ds.alerts(split)
        frame = self.table.frame
        self.alert_rows: dict[str, np.ndarray] = {
            o: rows.sort_values("mjd").index.to_numpy() for o, rows in frame.groupby("object_id", sort=False)}
        self.with_light_curve = set(ds.light_curve_ids(split))
        self.spectra: dict[str, list[Spectrum]] = defaultdict(list)
        for spectrum in ds.spectra(split):
            self.spectra[spectrum.object_id].append(spectrum)
        self._curves: dict[str, LightCurve] = {}

    def light_curve(self, object_id: str) -> LightCurve | None:
        if object_id not in self.with_light_curve:
            return None
        if object_id not in self._curves:
            self._curves[object_id] = self.ds.light_curve(object_id)
        return self._curves[object_id]

    def first_detection_mjd(self, object_id: str) -> float:
        """Earliest known detection epoch (NaN when the object has no photometry and no alert)."""
        epochs = []
        curve = self.light_curve(object_id)
        if curve is not None and curve.is_detection.any():
            epochs.append(curve.mjd[curve.is_detection].min())
        rows = self.alert_rows.get(object_id, np.zeros(0, int))
        if rows.size:
            mjd = self.table.frame["mjd"].to_numpy()[rows]
            age = self.table.metadata[rows, AGE]
            epochs += [mjd.min(), np.nanmin(np.where(np.isfinite(age), mjd - age, np.inf))]
        return float(min(epochs)) if epochs else float("nan")

    def alert(self, row: int) -> Alert:
        """The dataset's alert ``row`` as an Alert record (cutouts read from the memmap)."""
        r = self.table.frame.loc[row]
        stamps = self.table.cutouts(row)
        return Alert(r.object_id, int(r.candid), float(r.mjd), r.band, float(r.ra_deg), float(r.dec_deg),
                     self.table.metadata[row], _EMPTY, CutoutTriplet(*stamps) if stamps is not None else None)

    def spectrum(self, object_id: str, first_mjd: float, cut_mjd: float, before_cut: bool) -> Spectrum | None:
        """The spectrum closest to the first detection (see module docstring)."""
        spectra = self.spectra.get(object_id, [])
        if before_cut:
            spectra = [s for s in spectra if np.isfinite(s.mjd) and np.isfinite(cut_mjd) and s.mjd <= cut_mjd + 1e-6]
        if not spectra:
            return None
        if not np.isfinite(first_mjd):
            return min(spectra, key=lambda s: (not np.isfinite(s.mjd), s.mjd if np.isfinite(s.mjd) else 0.0))
        return min(spectra, key=lambda s: abs(s.mjd - first_mjd) if np.isfinite(s.mjd) else np.inf)

    def _case(self, object_id: str, first_mjd: float, cut_mjd: float, alert: Alert | None,
              spectra_before: bool) -> Case:
        curve = self.light_curve(object_id)
        if curve is not None:
            curve = curve.select(curve.mjd <= cut_mjd + 1e-6) if np.isfinite(cut_mjd) else None
        return Case(object_id, cut_mjd, cut_mjd - first_mjd, curve, alert,
                    self.spectrum(object_id, first_mjd, cut_mjd, spectra_before))

    def per_object(self, object_ids: Sequence[str], horizon_days: float, spectra_before: bool) -> list[Case]:
        cases = []
        for object_id in object_ids:
            first = self.first_detection_mjd(object_id)
            cut = first + horizon_days
            rows = [r for r in self.alert_rows.get(object_id, []) if self.table.frame.at[r, "mjd"] <= cut + 1e-6]
            alert = self.alert(rows[-1]) if rows else None
            cases.append(self._case(object_id, first, cut, alert, spectra_before))
        return cases

    def per_alert(self, object_ids: Sequence[str], horizon_days: float, spectra_before: bool) -> list[Case]:
        cases = []
        for object_id in object_ids:
            first = self.first_detection_mjd(object_id)
            for row in self.alert_rows.get(object_id, []):
                alert = self.alert(row)
                if alert.mjd <= first + horizon_days + 1e-6:
                    cases.append(self._case(object_id, first, alert.mjd, alert, spectra_before))
        return cases
