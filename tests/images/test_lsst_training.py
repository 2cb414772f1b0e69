"""configs/images_lsst.yaml end to end on the real Rubin packets: ``cider data build`` → ``cider train images`` →
the classifier runs the Rubin-trained AstroMiNN on Rubin alerts and skips ZTF ones.

The packets are unlabelled: the labels here are SYNTHETIC (alternating SN Ia / SN II). This tests the path
(Rubin metadata towers, 0.2″ stamps on the 63×63 grid, survey recorded and honoured), not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from applecider_core.records import LSST_METADATA_FEATURES
from applecider_data import PacketError, iter_packets, open_dataset, packet_to_alert, synthetic
from applecider_data import wire as wire_module
from applecider_data.build import main as build_main
from applecider_fusion import Classifier
from applecider_images import load_model
from applecider_images.train import main as train_main

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
LABELS = ("SN Ia", "SN II")


@pytest.mark.slow
def test_rubin_images_config_builds_trains_and_classifies(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(wire_module, "_lsst_package_root", lambda: None)
    lsst = shared_data / "alerts_lsst"
    sources = [str(lsst / "fink_v9_0_avro"), str(lsst / "fink_v10_0.parquet")]
    packets = [p for p in iter_packets(sources) if not isinstance(p, PacketError)]
    ids = sorted({packet_to_alert(p, with_cutouts=False).object_id for p in packets})
    pd.DataFrame({"objectId": ids, "label": [LABELS[k % 2] for k in range(len(ids))]}).to_csv(
        tmp_path / "labels.csv", index=False)
    data_config = {"output_dir": str(tmp_path / "ds"), "sources": {"alerts": sources, "labels": str(tmp_path / "labels.csv")},
                   "split": {"seed": 0}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data_config))
    assert build_main(["--config", str(tmp_path / "data.yaml")]) == 0
    table = open_dataset(tmp_path / "ds").alerts()
    assert table.survey == "lsst" and table.metadata.shape == (125, len(LSST_METADATA_FEATURES))
    stamps = table.cutouts(0)
    assert stamps.shape == (3, 63, 63) and np.isnan(stamps[:, :16]).all() and np.isfinite(stamps[:, 16:46, 16:46]).all()

    run = yaml.safe_load((REPO / "configs" / "images_lsst.yaml").read_text())
    run["model"]["overrides"]["class_names"] = list(LABELS)
    (tmp_path / "images_lsst.yaml").write_text(yaml.safe_dump(run))
    out = tmp_path / "run"
    sets = [f"data.path={tmp_path / 'ds'}", f"train.output_dir={out}", "model.preset=tiny", "train.batch_size=8",
            "train.max_steps=2", "train.cpu=true"]
    assert train_main(["--config", str(tmp_path / "images_lsst.yaml"), *(a for s in sets for a in ("--set", s))]) == 0
    model = load_model(out / "model")
    assert model.config.survey == "lsst" and model.config.pixel_scale_arcsec == 0.2
    assert model.preprocessor["metadata"]["survey"] == "lsst"

    models = tmp_path / "models"
    models.mkdir()
    (out / "model").rename(models / "images")
    records = Classifier.from_dir(models).classify([*packets[:4], *synthetic.make_packets(2, seed=3)])
    rubin = [r for r in records if r["survey"] == "lsst"]
    ztf = [r for r in records if r["survey"] == "ztf"]
    assert len(rubin) == 4 and all(r["modalities"] == ["images"] and r["top_class"] for r in rubin)
    assert all(set(r["probabilities"]["images"]) == set(LABELS) for r in rubin)
    assert len(ztf) == 2 and all("trained on lsst" in r["skipped"]["images"] for r in ztf)
