"""SkyPortal / Fritz as a source of spectra and classifications (REST API, token from ``SKYPORTAL_TOKEN``).

Endpoints: ``GET /api/sources/{obj_id}/spectra`` → ``{"status": "success", "data": {"obj_id",
"spectra": [{"id", "obj_id", "observed_at", "wavelengths", "fluxes", "units", "instrument_name", ...}]}}``
and ``GET /api/sources/{obj_id}/classifications`` → ``{"data": [{"classification", "probability", "ml", ...}]}``.
Requests are retried with exponential backoff on HTTP 429 (honouring ``Retry-After``) and 5xx.
Classifications are combined with the core taxonomy (``combine_claims``; machine-learning classifications
and those below ``min_probability`` are ignored); the spectra become the same records as the parquet importer.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from applecider_core.records import Spectrum
from applecider_core.taxonomy import combine_claims

from .errors import SourceError
from .importers import SourcedSpectrum
from .stages import SKIPPED_COLUMNS, write_csv, write_parquet

logger = logging.getLogger(__name__)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def _iso_to_mjd(text: str | None) -> float:
    if not text:
        return math.nan
    from astropy.time import Time

    try:
        return float(Time(text.replace("Z", ""), format="isot", scale="utc").mjd)
    except ValueError:
        return math.nan


class SkyPortalClient:
    """Minimal SkyPortal REST client with rate-limit handling."""

    def __init__(self, base_url: str, token: str, max_retries: int = 6, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, timeout: float = 60.0, session=None) -> None:  # fmt: skip
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"token {token}"})
        self.max_retries, self.backoff_s, self.max_backoff_s, self.timeout = max_retries, backoff_s, max_backoff_s, timeout
        self.sleep = time.sleep  # replaceable in tests

    @classmethod
    def from_environment(cls, base_url: str | None = None) -> SkyPortalClient:
        token = os.environ.get("SKYPORTAL_TOKEN")
        if not token:
            raise SourceError("set SKYPORTAL_TOKEN (a SkyPortal/Fritz API token) to use the SkyPortal source")
        return cls(base_url or os.environ.get("SKYPORTAL_URL", "https://fritz.science"), token)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)

    def get(self, path: str, params: dict | None = None) -> dict:
        """GET ``path`` → the response's ``data``; retries 429/5xx; raises SourceError otherwise."""
        return self.request("GET", path, params=params)

    def request(self, method: str, path: str, params: dict | None = None, payload: dict | None = None):
        """``method path`` (JSON ``payload``) → the response's ``data``; retries 429 (Retry-After) and 5xx with
        backoff, then raises SourceError naming the last status."""
        import requests

        url = f"{self.base_url}/{path.lstrip('/')}"
        for attempt in range(self.max_retries + 1):
            try:
                response = self.session.request(method, url, params=params, json=payload, timeout=self.timeout)
            except requests.RequestException as err:
                if attempt == self.max_retries:
                    raise SourceError(f"SkyPortal {method} {url}: {err}") from None
                self.sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.max_retries:
                delay = self._delay(attempt, response.headers.get("Retry-After"))
                logger.info("SkyPortal %s %s: HTTP %d, retrying in %.1f s", method, url, response.status_code, delay)
                self.sleep(delay)
                continue
            if response.status_code != 200:
                raise SourceError(f"SkyPortal {method} {url}: HTTP {response.status_code}: {response.text[:200]}")
            body = response.json()
            if body.get("status") != "success":
                raise SourceError(f"SkyPortal {method} {url}: {body.get('status')}: {body.get('message')}")
            return body.get("data")
        raise SourceError(f"SkyPortal {method} {url}: gave up after {self.max_retries} retries")

    def spectra(self, obj_id: str) -> list[SourcedSpectrum]:
        data = self.get(f"/api/sources/{obj_id}/spectra") or {}
        out = []
        for item in data.get("spectra", []) if isinstance(data, dict) else data:
            wavelength = np.asarray(item.get("wavelengths") or [], dtype=np.float64)
            flux = np.asarray(item.get("fluxes") or [], dtype=np.float64)
            spectrum = Spectrum(
                object_id=obj_id, wavelength_aa=wavelength, flux=flux, spectrum_id=f"skyportal:{item.get('id')}",
                mjd=_iso_to_mjd(item.get("observed_at")), label=None, flux_unit=str(item.get("units") or "unknown"),
                instrument=str(item.get("instrument_name") or ""),
            )  # fmt: skip
            out.append(SourcedSpectrum(spectrum, f"skyportal:{self.base_url}", [obj_id]))
        return out

    def classification(self, obj_id: str, min_probability: float = 0.5) -> str | None:
        """Combined normalised label of the human classifications of ``obj_id`` (None if none/conflicting)."""
        data = self.get(f"/api/sources/{obj_id}/classifications") or []
        claims = [c["classification"] for c in data
                  if not c.get("ml") and (c.get("probability") is None or c["probability"] >= min_probability)]  # fmt: skip
        return combine_claims(claims) if claims else None

    def iter_spectra(self, obj_ids: Iterable[str]) -> Iterator[SourcedSpectrum | tuple[str, str]]:
        for obj_id in obj_ids:
            try:
                yield from self.spectra(obj_id)
            except (SourceError, ValueError) as err:
                yield f"skyportal spectra {obj_id}", str(err)


def classifications_stage(client: SkyPortalClient, obj_ids: Iterable[str], out: Path) -> dict:
    """Build stage: labels.parquet (object_id, label) and skipped.csv from SkyPortal classifications."""
    rows, skipped = [], []
    for obj_id in obj_ids:
        try:
            label = client.classification(obj_id)
        except SourceError as err:
            skipped.append((f"classification {obj_id}", "skyportal", str(err)))
            continue
        if label is None:
            skipped.append((f"classification {obj_id}", "skyportal", "no usable (non-ML, consistent) classification"))
        else:
            rows.append((obj_id, label))
    write_parquet(pd.DataFrame(rows, columns=["object_id", "label"]), out / "labels.parquet")
    write_csv(pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), out / "skipped.csv")
    return {"labels": len(rows), "skipped": len(skipped)}
