"""The BOOM-interface graph: triplet (N, 63, 63, 3) + raw metadata → the same logits as the numpy preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from applecider_core.records import METADATA_FEATURES
from applecider_data import packet_to_alert, synthetic
from applecider_images import AstroMiNN, AstroMiNNConfig, BTSbotClassifier, BTSbotConfig, MetadataPreprocessor
from applecider_images.export import BoomGraph, ExportError, MetadataTransform
from applecider_images.inference import alert_inputs
from applecider_images.preprocessing import boom_features, boom_inputs, preprocessor_dict


def _alerts(n: int = 6) -> list:
    alerts = [packet_to_alert(p) for p in synthetic.make_packets(n, seed=5)]
    alerts[0].cutouts.science[:4, :4] = np.nan  # a masked corner
    alerts[1].metadata[[2, 7]] = np.nan  # missing features
    alerts[2].metadata[3] = -999.0  # the legacy sentinel
    return alerts


def _fitted(model_class, config, alerts):
    model = model_class(config).eval()
    prep = MetadataPreprocessor.fit(np.stack([a.metadata for a in alerts]), config.metadata_features)
    model.preprocessor = preprocessor_dict(prep, config.image_input)
    return model


@pytest.mark.parametrize("model_class,config", [
    (AstroMiNN, AstroMiNNConfig.from_preset("tiny", sky_encoding="sincos")),
    (AstroMiNN, AstroMiNNConfig.from_preset("tiny", metadata_features=("magpsf", "sgscore1", "age_days"),
                                             tower_features={"m": ("magpsf", "sgscore1", "age_days")})),
    (BTSbotClassifier, BTSbotConfig.from_preset("tiny")),
])  # fmt: skip
def test_graph_equals_numpy_preprocessing_then_model(model_class, config):
    torch.manual_seed(0)
    alerts = _alerts()
    model = _fitted(model_class, config, alerts)
    with torch.no_grad():
        expected = model(**alert_inputs(alerts, model.config, model.preprocessor)).logits.numpy()
        inputs = boom_inputs(alerts, model.config)
        got = BoomGraph(model)(*(torch.from_numpy(inputs[n]) for n in ("triplet", "metadata"))).numpy()
    assert inputs["triplet"].shape == (len(alerts), 63, 63, 3) and np.isfinite(inputs["triplet"]).all()
    np.testing.assert_allclose(np.linalg.norm(inputs["triplet"][0], axis=(0, 1)), 1.0, rtol=1e-5)  # L2 per stamp
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_feature_order_appends_the_position_only_when_used():
    subset = AstroMiNNConfig.from_preset("tiny", metadata_features=("magpsf",), tower_features={"m": ("magpsf",)})
    assert boom_features(subset) == ("magpsf", "ra", "dec")
    assert boom_features(AstroMiNNConfig.from_preset("tiny")) == METADATA_FEATURES
    assert boom_features(BTSbotConfig.from_preset("tiny", metadata_features=("magpsf",))) == ("magpsf",)


def test_metadata_transform_equals_the_numpy_preprocessor():
    rng = np.random.default_rng(1)
    raw = rng.lognormal(1.0, 2.0, (50, len(METADATA_FEATURES))).astype(np.float32) * rng.choice([-1, 1], (50, 19))
    raw[rng.random(raw.shape) < 0.15] = np.nan
    raw[0, 4], raw[1, 5] = np.inf, -999.0
    for indicators in (True, False):
        prep = MetadataPreprocessor.fit(raw[10:], missing_indicators=indicators, clip=3.0)
        got = MetadataTransform(prep)(torch.from_numpy(raw)).numpy()
        np.testing.assert_allclose(got, prep.transform(raw), atol=2e-6)


def test_models_the_triplet_cannot_express_are_refused():
    config = AstroMiNNConfig.from_preset("tiny", validity_channel=True)
    with pytest.raises(ExportError, match="validity_channel"):
        BoomGraph(_fitted(AstroMiNN, config, _alerts(3)))
