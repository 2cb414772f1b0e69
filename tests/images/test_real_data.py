"""Real ZTF cutouts from the shared bundle decode and pass through preprocessing and the tiny model."""

from __future__ import annotations

import gzip
import io
import json
import warnings

import numpy as np
import pytest
import torch

from applecider_core.records import ALERT_METADATA_FEATURES, METADATA_FEATURES
from applecider_images import AstroMiNN, AstroMiNNConfig, BTSbotClassifier, BTSbotConfig
from applecider_images.preprocessing import MetadataPreprocessor, pad_stamp, preprocess_cutouts

pytestmark = pytest.mark.slow


def _decode(blob: bytes) -> np.ndarray:
    fits = pytest.importorskip("astropy.io.fits")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some stamps have a non-standard SIMPLE card
        with fits.open(io.BytesIO(gzip.decompress(blob))) as hdul:
            return pad_stamp(np.asarray(hdul[0].data, dtype=np.float32))


def _read_alerts(shared_data, n: int = 6):
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(shared_data / "alerts" / "ztf_public_alerts.parquet",
                          columns=["candidate", "cutout_format", "cutoutScience", "cutoutTemplate", "cutoutDifference"])
    frame = table.slice(0, 200).to_pandas()
    frame = frame[frame["cutout_format"] == "gzip-fits"].head(n)
    stamps = np.stack([np.stack([_decode(row.cutoutScience), _decode(row.cutoutTemplate),
                                 _decode(row.cutoutDifference)]) for row in frame.itertuples()])
    metadata = np.full((len(frame), len(METADATA_FEATURES)), np.nan, np.float32)
    coords = np.zeros((len(frame), 2))
    for i, text in enumerate(frame["candidate"]):
        cand = json.loads(text)
        for j, name in enumerate(ALERT_METADATA_FEATURES):
            metadata[i, j] = np.nan if cand.get(name) is None else cand[name]
        metadata[i, -1] = metadata[i, METADATA_FEATURES.index("ncovhist")] - metadata[i, METADATA_FEATURES.index("ndethist")]
        coords[i] = cand["ra"], cand["dec"]
    return stamps, metadata, coords


def test_real_cutouts_pass_through(shared_data):
    stamps, metadata, coords = _read_alerts(shared_data)
    assert stamps.shape == (6, 3, 63, 63) and stamps.dtype == np.float32
    torch.manual_seed(0)
    for model in (AstroMiNN(AstroMiNNConfig.from_preset("tiny")), BTSbotClassifier(BTSbotConfig.from_preset("tiny"))):
        images = preprocess_cutouts(stamps, coords[:, 0], coords[:, 1], model.config.image_input)
        assert np.isfinite(images).all()
        assert images.shape == (6, model.config.image_input.num_channels, model.config.crop_size, model.config.crop_size)
        meta = MetadataPreprocessor.fit(metadata).transform(metadata)
        with torch.no_grad():
            out = model.eval()(torch.from_numpy(images), torch.from_numpy(meta), torch.tensor(coords, dtype=torch.float32))
        assert out.logits.shape == (6, 10) and torch.isfinite(out.logits).all()
    # the science stamp peaks near the centre for most real alerts (a detected source is there)
    centre = stamps[:, 0, 26:37, 26:37]
    assert np.nanmax(centre, axis=(1, 2)).mean() > np.nanmedian(stamps[:, 0], axis=(1, 2)).mean()
