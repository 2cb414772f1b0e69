"""Cutout decoding: gzip-FITS → float32 63×63, NaN kept, edge stamps padded, malformed stamps reported."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from astropy.io import fits

from applecider_data.cutouts import StampError, decode_stamp, fit_to_size, packet_triplet


def _stamp(image: np.ndarray, compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    fits.PrimaryHDU(image).writeto(buffer)
    return gzip.compress(buffer.getvalue()) if compress else buffer.getvalue()


def test_decode_keeps_nan_and_values():
    image = np.arange(63 * 63, dtype=np.float32).reshape(63, 63)
    image[5, 7] = np.nan
    out = decode_stamp(_stamp(image))
    assert out.dtype == np.float32 and out.shape == (63, 63)
    assert np.isnan(out[5, 7]) and np.isnan(out).sum() == 1
    np.testing.assert_array_equal(out[~np.isnan(out)], image[~np.isnan(image)])
    np.testing.assert_array_equal(decode_stamp(_stamp(image, compress=False))[0], image[0])


def test_edge_stamp_padded_with_nan():
    image = np.ones((63, 50), dtype=np.float32)
    out, problem = fit_to_size(decode_stamp(_stamp(image)))
    assert out.shape == (63, 63) and np.isnan(out[:, 50:]).all() and (out[:, :50] == 1).all()
    assert "63x50 padded" in problem


@pytest.mark.parametrize(("data", "message"), [
    (gzip.compress(b"\xff\xd8\xff\xe0 jpeg", mtime=0), "JPEG"), (b"\x1f\x8b\x08garbage", "corrupt gzip"),
    (gzip.compress(b"SIMPLE  =                    T broken", mtime=0), "unreadable FITS|not a 2-D"),
])
def test_malformed_stamps(data, message):
    with pytest.raises(StampError, match=message):
        decode_stamp(data)


def test_oversized_stamp_rejected():
    with pytest.raises(StampError, match="larger"):
        fit_to_size(np.zeros((64, 63), dtype=np.float32))


def test_triplet_reports_each_problem(synthetic_packets):
    packet = dict(synthetic_packets[0])
    packet["cutoutTemplate"] = None
    packet["cutoutDifference"] = {"stampData": b"\x00\x01"}
    triplet, problems = packet_triplet(packet)
    assert triplet is None
    assert problems[0] == "cutoutTemplate: missing" and problems[1].startswith("cutoutDifference: not a FITS")
    triplet, problems = packet_triplet(synthetic_packets[0])
    assert problems == [] and triplet.stack().shape == (3, 63, 63)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_fast_reader_equals_astropy(dtype):
    rng = np.random.default_rng(0)
    image = (rng.normal(100, 20, (63, 63))).astype(dtype)
    if dtype != np.int16:
        image[3, 4] = np.nan
    data = _stamp(image)
    fast, reference = decode_stamp(data), decode_stamp(data, fast=False)
    assert fast.dtype == np.float32 and np.array_equal(fast, reference, equal_nan=True)


def test_scaled_integer_stamp_goes_through_astropy():
    hdu = fits.PrimaryHDU(np.arange(63 * 63, dtype=np.int16).reshape(63, 63))
    hdu.header["BSCALE"], hdu.header["BZERO"] = 2.0, 10.0
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    out = decode_stamp(buffer.getvalue())
    assert out[0, 1] == pytest.approx(12.0) and out.dtype == np.float32


@pytest.mark.slow
def test_fast_reader_equals_astropy_on_every_real_stamp(shared_data):
    from applecider_data import PacketError, iter_packets
    from applecider_data.cutouts import stamp_bytes

    compared = 0
    for packet in iter_packets([shared_data / "alerts" / "ztf_public_alerts.parquet", shared_data / "alerts" / "avro"]):
        assert not isinstance(packet, PacketError)
        for field in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
            data = stamp_bytes(packet.get(field))
            if data is None:
                continue
            try:
                reference = decode_stamp(data, fast=False)
            except StampError:
                with pytest.raises(StampError):
                    decode_stamp(data)
                continue
            assert np.array_equal(decode_stamp(data), reference, equal_nan=True)
            compared += 1
    assert compared > 6000
