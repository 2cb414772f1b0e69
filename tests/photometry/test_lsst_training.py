"""configs/photometry_lsst.yaml trains end to end on Rubin-shaped records and the model classifies Rubin packets.

The light curves are the real Rubin packets of the bundle (alerts_lsst/) converted by ``packet_to_alert``; the
labels are SYNTHETIC (the packets are unlabelled): this tests the path (six bands, 10 event channels, survey
recorded, runner accepts Rubin and skips ZTF), not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from applecider_core.records import LSST_BANDS
from applecider_data import PacketError, iter_packets, packet_to_alert, synthetic
from applecider_data import wire as wire_module
from applecider_fusion import Classifier
from applecider_photometry import PhotometryClassifier
from applecider_photometry.train import main as train_main

from .conftest import write_light_curve_dataset

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
LABELS = ("SN Ia", "SN II")


def rubin_dataset(shared_data: Path, root: Path) -> tuple[Path, list[dict]]:
    packets = [p for p in iter_packets(shared_data / "alerts_lsst") if not isinstance(p, PacketError)]
    objects, rows = [], []
    for k, packet in enumerate(packets):
        lc = packet_to_alert(packet, with_cutouts=False).light_curve
        split = ("train", "train", "train", "val", "test")[k % 5]
        objects.append({"object_id": lc.object_id, "label": LABELS[k % 2], "redshift": np.nan, "split": split,
                        "has_alerts": False, "has_light_curve": True, "has_spectrum": False})
        rows += [{"object_id": lc.object_id, "mjd": t, "band": b, "flux_ujy": f, "flux_err_ujy": e,
                  "is_detection": d, "source": "rubin-test"} for t, b, f, e, d in
                 zip(lc.mjd, lc.band, lc.flux_ujy, lc.flux_err_ujy, lc.is_detection)]
    return write_light_curve_dataset(root, objects, rows), packets


@pytest.mark.slow
def test_rubin_photometry_config_trains_and_classifies_rubin_packets(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(wire_module, "_lsst_package_root", lambda: None)
    dataset, packets = rubin_dataset(shared_data, tmp_path / "dataset")
    out = tmp_path / "run"
    overrides = [f"data.path={dataset}", f"train.output_dir={out}", "model.preset=tiny", "train.batch_size=16",
                 "train.max_steps=3", "train.ema_decay=null", "data.class_names=[SN Ia, SN II]",
                 "finetune.oversample_class=null", "finetune.temperature_scaling=false"]
    args = ["--config", str(REPO / "configs/photometry_lsst.yaml")]
    assert train_main([*args, *(a for o in overrides for a in ("--set", o))]) == 0
    model = PhotometryClassifier.from_pretrained(out / "model")
    assert model.config.survey == "lsst" and model.config.bands == LSST_BANDS and model.config.n_features == 10
    assert model.preprocessor["features"]["bands"] == list(LSST_BANDS)
    models = tmp_path / "models"
    models.mkdir()
    (out / "model").rename(models / "photometry")
    records = Classifier.from_dir(models).classify([*packets[:5], *synthetic.make_packets(2, seed=1)])
    rubin = [r for r in records if r["survey"] == "lsst"]
    ztf = [r for r in records if r["survey"] == "ztf"]
    assert len(rubin) == 5 and all(r["modalities"] == ["photometry"] and r["top_class"] for r in rubin)
    assert all(set(r["probabilities"]["photometry"]) == set(LABELS) for r in rubin)
    assert len(ztf) == 2 and all("trained on lsst" in r["skipped"]["photometry"] for r in ztf)
