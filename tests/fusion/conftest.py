"""A models directory with freshly initialised tiny models of all three modalities (random weights; the
preprocessor.json statistics fitted on synthetic alerts), saved exactly as training saves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from applecider_data import packet_to_alert, synthetic
from applecider_fusion.untrained import write_untrained_models


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    alerts = [packet_to_alert(p) for p in synthetic.make_packets(8, seed=0)]
    return write_untrained_models(tmp_path_factory.mktemp("models"), alerts, preset="tiny")
