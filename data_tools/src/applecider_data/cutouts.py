"""Alert cutouts: gzip-compressed FITS stamps (ZTF) → float32 (63, 63) arrays; Rubin's FITS stamps as they are.

Conventions (Kowalski ``make_triplet`` without its display steps):
- the stamp is ``gzip.decompress`` → FITS primary HDU data, cast to float32; uncompressed FITS is accepted;
  simple stamps are read directly from the FITS bytes, anything else through ``astropy.io.fits``;
- NaN pixels (masked/bad pixels at IPAC) are kept as NaN; nothing is median-filled, flipped or normalised here
  (that is preprocessing, owned by the images package);
- stamps smaller than 63×63 (candidates near a CCD edge) are padded with NaN at the end of each axis, as
  Kowalski pads (it pads with the median), and reported as a problem; larger or non-2-D stamps and stamps
  that are not FITS (e.g. JPEG previews) are malformed: no triplet, a problem per stamp.

Rubin stamps (:func:`lsst_triplet`) are uncompressed FITS files of three HDUs: the image (``BUNIT`` nJy), its
variance and the PSF image. Their size varies (mostly 30×30, up to ~71×71) and is kept as it is (no padding:
the 0.2″ pixels make a ZTF-sized grid meaningless); the three stamps of an alert must share one shape.
"""

from __future__ import annotations

import gzip
import io
import logging
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from applecider_core.records import CUTOUT_KINDS, CUTOUT_SIZE, PIXEL_SCALE_ARCSEC, CutoutTriplet

logger = logging.getLogger(__name__)

PACKET_FIELDS = {"science": "cutoutScience", "template": "cutoutTemplate", "difference": "cutoutDifference"}


class StampError(ValueError):
    """A stamp that cannot be turned into an image."""


def stamp_bytes(stamp: object) -> bytes | None:
    """The raw bytes of a packet cutout field: ``{"stampData": b"..."}`` (Avro/Kowalski), bytes, or None."""
    if stamp is None:
        return None
    if isinstance(stamp, dict):
        stamp = stamp.get("stampData")
        if stamp is None:
            return None
    if isinstance(stamp, (bytes, bytearray, memoryview)):
        return bytes(stamp)
    raise StampError(f"stamp has type {type(stamp).__name__}; expected bytes or {{'stampData': bytes}}")


_FITS_BLOCK = 2880
_CARD = 80
_BITPIX_DTYPES = {-32: ">f4", -64: ">f8", 8: "u1", 16: ">i2", 32: ">i4"}
_HEADER_KEYS = frozenset({b"BITPIX", b"NAXIS", b"NAXIS1", b"NAXIS2", b"BSCALE", b"BZERO", b"BLANK", b"BUNIT"})


def _fast_image_hdu(data: bytes, offset: int) -> tuple[np.ndarray, int, str] | None:
    """The 2-D image of the HDU starting at ``offset``, the offset of the next HDU and BUNIT; None if unusual.

    ZTF and Rubin stamps are plain images (BITPIX -32/-64, no scaling): reading the header cards and the
    big-endian data block directly is ~10x faster than ``astropy.io.fits`` and gives identical arrays
    (tested). Anything unusual (scaled or BLANK integers, other NAXIS, short data) returns None and goes
    through astropy.
    """
    cards: dict[bytes, bytes] = {}
    while True:
        block = data[offset : offset + _FITS_BLOCK]
        if len(block) < _FITS_BLOCK:
            return None
        offset += _FITS_BLOCK
        ended = False
        for start in range(0, _FITS_BLOCK, _CARD):
            key = block[start : start + 8].rstrip()
            if key == b"END":
                ended = True
                break
            if key in _HEADER_KEYS and block[start + 8 : start + 10] == b"= ":
                cards[key] = block[start + 10 : start + _CARD].split(b"/")[0].strip()
        if ended:
            break
    try:
        bitpix, naxis = int(cards[b"BITPIX"]), int(cards[b"NAXIS"])
        width, height = int(cards[b"NAXIS1"]), int(cards[b"NAXIS2"])
    except (KeyError, ValueError):
        return None
    scaled = float(cards.get(b"BSCALE", b"1") or 1) != 1.0 or float(cards.get(b"BZERO", b"0") or 0) != 0.0
    dtype = _BITPIX_DTYPES.get(bitpix)
    if naxis != 2 or dtype is None or scaled or b"BLANK" in cards:
        return None
    count = width * height
    size = count * np.dtype(dtype).itemsize
    if len(data) < offset + size:
        return None
    image = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(height, width).astype(np.float32)
    unit = cards.get(b"BUNIT", b"").strip(b"'").strip().decode("ascii", "replace")
    return image, offset + -(-size // _FITS_BLOCK) * _FITS_BLOCK, unit


def _fits_bytes(data: bytes) -> bytes:
    """Plain FITS bytes of a stamp (gunzipped when gzip); StampError when it is not FITS."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise StampError(f"corrupt gzip stream ({err})") from None
    if not data.startswith(b"SIMPLE"):
        kind = "JPEG" if data[:3] == b"\xff\xd8\xff" else "unknown"
        raise StampError(f"not a FITS stamp ({kind} data, {len(data)} bytes)")
    return data


def decode_stamp_hdus(data: bytes, n_hdus: int, fast: bool = True) -> tuple[list[np.ndarray], str]:
    """The first ``n_hdus`` 2-D images of a (gzip-)FITS stamp as float32, and the first HDU's BUNIT.

    Raises StampError when the stamp is not FITS or has fewer than ``n_hdus`` 2-D images.
    """
    data = _fits_bytes(data)
    if fast:
        images, unit, offset = [], "", 0
        while len(images) < n_hdus:
            hdu = _fast_image_hdu(data, offset)
            if hdu is None:
                break
            image, offset, hdu_unit = hdu
            unit = unit if images else hdu_unit
            images.append(image)
        if len(images) == n_hdus:
            return images, unit
    return _astropy_hdus(data, n_hdus)


def _astropy_hdus(data: bytes, n_hdus: int) -> tuple[list[np.ndarray], str]:
    from astropy.io import fits  # imported lazily: astropy import is slow and not every caller needs it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns on truncated headers; we report instead
            with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False) as hdus:
                arrays = [None if hdu.data is None else np.array(hdu.data, dtype=np.float32) for hdu in hdus[:n_hdus]]
                unit = str(hdus[0].header.get("BUNIT", "")).strip()
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise StampError(f"unreadable FITS ({err})") from None
    shapes = [None if a is None else a.shape for a in arrays]
    if len(arrays) < n_hdus or any(a is None or a.ndim != 2 for a in arrays):
        raise StampError(f"FITS has {len(arrays)} HDU(s) of shapes {shapes}; expected {n_hdus} 2-D image(s)")
    return arrays, unit  # type: ignore[return-value]


def decode_stamp(data: bytes, fast: bool = True) -> np.ndarray:
    """gzip-FITS (or plain FITS) bytes → 2-D float32 image (NaN kept). Raises StampError.

    ``fast=False`` always uses ``astropy.io.fits`` (the reference path the fast reader is tested against).
    """
    return decode_stamp_hdus(data, 1, fast)[0][0]


def fit_to_size(image: np.ndarray, size: int = CUTOUT_SIZE) -> tuple[np.ndarray, str | None]:
    """Pad an undersized 2-D stamp with NaN to (size, size); returns (image, problem or None)."""
    h, w = image.shape
    if h > size or w > size:
        raise StampError(f"stamp is {h}x{w}, larger than {size}x{size}")
    if (h, w) == (size, size):
        return image, None
    padded = np.full((size, size), np.nan, dtype=np.float32)
    padded[:h, :w] = image
    return padded, f"stamp {h}x{w} padded with NaN to {size}x{size} (edge of CCD)"


def _decoded_stamps(packet: dict, decode: Callable[[bytes], Any], problems: list[str]) -> Iterator[tuple[str, Any]]:
    """``(kind, decode(stamp bytes))`` for each stamp of the packet that decodes; a problem for each other one."""
    for kind in CUTOUT_KINDS:
        field = PACKET_FIELDS[kind]
        try:
            raw = stamp_bytes(packet.get(field))
            if raw is None:
                problems.append(f"{field}: missing")
                continue
            decoded = decode(raw)
        except StampError as err:
            problems.append(f"{field}: {err}")
            continue
        yield kind, decoded


def packet_triplet(packet: dict) -> tuple[CutoutTriplet | None, list[str]]:
    """The (science, template, difference) triplet of a packet and the problems met.

    Returns ``(None, problems)`` when any of the three stamps is missing or malformed (a partial triplet is
    not usable by the image models); padded stamps still give a triplet, with a problem noted.
    """
    images: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for kind, (image, problem) in _decoded_stamps(packet, lambda raw: fit_to_size(decode_stamp(raw)), problems):
        if problem:
            problems.append(f"{PACKET_FIELDS[kind]}: {problem}")
        images[kind] = image
    if len(images) < len(CUTOUT_KINDS):
        return None, problems
    return CutoutTriplet(**images), problems


LSST_HDUS = 3  # image, variance, PSF


def lsst_triplet(packet: dict) -> tuple[CutoutTriplet | None, list[str]]:
    """The Rubin stamps of a packet (image nJy + variance + PSF per kind, 0.2″ pixels) and the problems met.

    ``(None, problems)`` when a stamp is missing or malformed, or the three stamps differ in shape.
    """
    images, variance, psf, units, problems = {}, {}, {}, set(), []
    decoded = _decoded_stamps(packet, lambda raw: decode_stamp_hdus(raw, LSST_HDUS), problems)
    for kind, ((image, var, kernel), unit) in decoded:
        if var.shape != image.shape:
            problems.append(f"{PACKET_FIELDS[kind]}: variance plane {var.shape} differs from the image {image.shape}")
            continue
        images[kind], variance[kind], psf[kind] = image, var, kernel
        units.add(unit)
    if len(images) < len(CUTOUT_KINDS):
        return None, problems
    shapes = {kind: image.shape for kind, image in images.items()}
    if len(set(shapes.values())) != 1:
        return None, [*problems, f"stamps differ in shape: {shapes}"]
    unit = units.pop() if len(units) == 1 else ""
    return CutoutTriplet(**images, pixel_scale_arcsec=PIXEL_SCALE_ARCSEC["lsst"], unit=unit, variance=variance,
                         psf=psf), problems
