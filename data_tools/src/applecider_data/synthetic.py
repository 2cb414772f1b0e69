"""Synthetic but realistic ZTF alert packets, written as real Avro with fastavro (for tests and examples).

Packets follow the official ZTF alert schema (version 4.01, shipped as ``schemas/ztf_alert_4.01.avsc``):
a ``candidate`` with every schema field (nullable fields not modelled are null), ``prv_candidates`` holding
earlier detections and upper limits (``magpsf`` null, ``diffmaglim`` set) of a rising-then-fading transient,
and gzip-compressed FITS cutouts (63×63 float32: sky noise + a Gaussian PSF; the template has only the host).
Everything derives from one seed, so a seed gives byte-identical packets.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import fastavro
import numpy as np

SCHEMA_VERSION = "4.01"
JD0 = 2459000.5  # 2020-05-31
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=1)
def alert_schema() -> dict:
    """The parsed ZTF alert Avro schema (fastavro)."""
    text = resources.files("applecider_data").joinpath("schemas/ztf_alert_4.01.avsc").read_text()
    return fastavro.parse_schema(json.loads(text))


def _record_fields(name: str) -> list[dict]:
    raw = json.loads(resources.files("applecider_data").joinpath("schemas/ztf_alert_4.01.avsc").read_text())
    found: dict[str, dict] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "record":
                found[node["name"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(raw)
    return found[name]["fields"]


def _default(avro_type: object) -> object:
    """Value for a field we do not model: null when nullable, else a zero of the right type."""
    if isinstance(avro_type, list):
        return None if "null" in avro_type else _default(avro_type[0])
    return {"string": "", "int": 0, "long": 0, "float": 0.0, "double": 0.0, "boolean": False}.get(avro_type, None)


def _fill(record_name: str, values: dict) -> dict:
    return {f["name"]: values.get(f["name"], _default(f["type"])) for f in _record_fields(record_name)}


def make_stamp(rng: np.random.Generator, amplitude: float, size: int = 63, host: float = 0.0) -> bytes:
    """gzip-compressed FITS stamp: sky noise (σ=5) + Gaussian PSF of ``amplitude`` counts + optional host."""
    from astropy.io import fits

    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    psf = np.exp(-(x**2 + y**2) / (2 * 1.8**2))
    hostimg = host * np.exp(-((x - 3) ** 2 + (y + 2) ** 2) / (2 * 4.0**2))
    image = (100.0 + rng.normal(0, 5.0, (size, size)) + amplitude * psf + hostimg).astype(np.float32)
    buffer = io.BytesIO()
    fits.PrimaryHDU(image).writeto(buffer)
    return gzip.compress(buffer.getvalue(), mtime=0)


def _object_id(rng: np.random.Generator) -> str:
    return "ZTF20" + "".join(rng.choice(list(_ALPHABET), 7))


def light_curve_mag(t_days: float, peak_mag: float, rise: float = 12.0, decline: float = 30.0) -> float:
    """Magnitude of a simple transient at ``t_days`` from peak (fast rise, slower decline)."""
    flux = math.exp(-((t_days / rise) ** 2)) if t_days < 0 else math.exp(-t_days / decline)
    return peak_mag - 2.5 * math.log10(max(flux, 1e-6))


def make_packet(rng: np.random.Generator, object_id: str | None = None, n_history: int = 12,
                candid_base: int = 1_200_000_000_000_000_000) -> dict:  # fmt: skip
    """One full alert packet (dict matching the 4.01 schema) with history and cutouts."""
    object_id = object_id or _object_id(rng)
    ra, dec = float(rng.uniform(0, 360)), float(rng.uniform(-25, 85))
    peak_mag, peak_jd = float(rng.uniform(17.0, 19.5)), JD0 + float(rng.uniform(0, 60))
    limit = float(rng.uniform(19.8, 20.8))
    epochs = np.sort(peak_jd - 12 + rng.uniform(0, 28, n_history + 1))  # a packet holds <= 30 days of history
    fids = rng.integers(1, 3, n_history + 1)  # g and r, as in the public survey
    history, candidate = [], None
    for k, (jd, fid) in enumerate(zip(epochs, fids)):
        mag = light_curve_mag(jd - peak_jd, peak_mag) + (0.0 if fid == 1 else -0.1)
        sigma = float(0.02 + 0.15 * 10 ** (0.4 * (mag - limit)))
        candid = candid_base + int(rng.integers(0, 10**15)) + k
        detected = mag < limit - 0.05 or k == n_history
        common = {"jd": float(jd), "fid": int(fid), "pid": int(candid // 1000), "diffmaglim": limit,
                  "programid": 1, "field": 600, "rcid": 30, "nid": 1500}  # fmt: skip
        if not detected:
            history.append(_fill("ztf.alert.prv_candidate", {**common, "candid": None}))
            continue
        magpsf = float(mag + rng.normal(0, sigma))
        fields = {**common, "candid": candid, "isdiffpos": "t", "ra": ra + rng.normal(0, 1e-5),
                  "dec": dec + rng.normal(0, 1e-5), "magpsf": magpsf, "sigmapsf": sigma, "chipsf": 1.2,
                  "magap": magpsf + 0.02, "sigmagap": sigma, "distnr": 0.6, "magnr": 20.5, "sigmagnr": 0.05,
                  "chinr": 1.1, "sharpnr": 0.01, "sky": float(rng.normal(0, 1)), "fwhm": 2.1, "classtar": 0.97,
                  "mindtoedge": 400.0, "magfromlim": limit - magpsf, "seeratio": 1.1, "aimage": 0.9,
                  "bimage": 0.8, "elong": 1.1, "nneg": 3, "nbad": 0, "rb": 0.9, "drb": 0.99,
                  "sgscore1": 0.05, "distpsnr1": 1.2, "sgscore2": 0.5, "distpsnr2": 9.5, "nmtchps": 4,
                  "scorr": 15.0, "magzpsci": 26.3, "jdstarthist": float(epochs[0]),
                  "jdendhist": float(jd), "ndethist": k + 1, "ncovhist": 40 + k, "tooflag": 0,
                  "xpos": 1500.0, "ypos": 1500.0, "ranr": ra, "decnr": dec}  # fmt: skip
        if k == n_history:
            candidate = _fill("ztf.alert.candidate", fields)
        else:
            history.append(_fill("ztf.alert.prv_candidate", fields))
    assert candidate is not None
    amplitude = 2000.0 * 10 ** (-0.4 * (candidate["magpsf"] - 18.0))
    stamps = {"cutoutScience": make_stamp(rng, amplitude, host=300.0), "cutoutTemplate": make_stamp(rng, 0.0, host=300.0),
              "cutoutDifference": make_stamp(rng, amplitude)}  # fmt: skip
    packet = {"schemavsn": SCHEMA_VERSION, "publisher": "applecider synthetic", "objectId": object_id,
              "candid": candidate["candid"], "candidate": candidate, "prv_candidates": history, "fp_hists": None}
    for name, data in stamps.items():
        packet[name] = {"fileName": f"candid{candidate['candid']}_{name[6:].lower()}.fits.gz", "stampData": data}
    return packet


def make_packets(n: int, seed: int = 0, n_objects: int | None = None) -> list[dict]:
    """``n`` packets from ``seed`` (``n_objects`` distinct objects, default ``n``)."""
    rng = np.random.default_rng(seed)
    ids = [_object_id(rng) for _ in range(n_objects or n)]
    return [make_packet(rng, ids[i % len(ids)]) for i in range(n)]


def write_avro(path: str | Path, packets: list[dict]) -> Path:
    """Write packets as one Avro container file (ZTF writes one alert per file; both are valid)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        # a fixed sync marker makes the file a pure function of the packets (fastavro draws a random one)
        fastavro.writer(f, alert_schema(), packets, codec="null", sync_marker=b"applecider-ztf!!")
    return path


def make_spectrum(rng: np.random.Generator, redshift: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """A supernova-like optical spectrum in the observer frame: (wavelength Å, flux erg/s/cm²/Å).

    A 10,000 K blackbody continuum with broad Gaussian absorptions at the rest wavelengths of Ca II H&K
    (3945 Å), Si II (6355 Å) and the Ca II triplet (8579 Å), shifted by ``redshift``, sampled on an
    SEDM-like grid (3800–9200 Å, 600 points) with 2 % noise.
    """
    rest = np.linspace(3800.0, 9200.0, 600) / (1.0 + redshift)
    x = 1.4388e8 / (rest * 1.0e4)  # hc / (λ k T) with λ in Å and T = 10,000 K
    flux = 1.0 / (rest**5 * np.expm1(x))
    for centre, depth, width in ((3945.0, 0.5, 60.0), (6355.0, 0.4, 90.0), (8579.0, 0.35, 120.0)):
        flux *= 1.0 - depth * np.exp(-0.5 * ((rest - centre) / width) ** 2)
    flux = 1e-16 * flux / flux.max() * (1.0 + rng.normal(0.0, 0.02, flux.size))
    return rest * (1.0 + redshift), flux


def write_alert_files(folder: str | Path, n: int, seed: int = 0) -> list[Path]:
    """One ``<candid>.avro`` per packet in ``folder``, like a ZTF nightly tarball's content."""
    folder = Path(folder)
    return [write_avro(folder / f"{p['candid']}.avro", [p]) for p in make_packets(n, seed)]
