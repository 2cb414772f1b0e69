"""Training and evaluation entry points on a tiny dataset written by the fixture (two-step smoke runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from applecider_core.config import load_yaml
from applecider_core.dataset import open_dataset
from applecider_images import AstroMiNN, AstroMiNNConfig, load_model
from applecider_images.data import AlertImageDataset, encode_labels
from applecider_images.evaluate import main as evaluate_main
from applecider_images.preprocessing import (
    MetadataPreprocessor,
    metadata_preprocessor_for,
    preprocess_cutouts,
)
from applecider_images.train import ImagesRunConfig, module_param_groups
from applecider_images.train import main as train_main

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "images.yaml"


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(CONFIG), "--set", f"data.path={data}", "--set", f"train.output_dir={out}",
            "--set", "model.preset=tiny", "--set", "train.batch_size=8", "--set", "train.cpu=true",
            "--set", "data.min_class_objects=1", *extra]


def test_config_file_parses():
    config = load_yaml(CONFIG, ImagesRunConfig)
    assert config.train.monitor == "macro_auprc" and config.model.preset == "paper"
    assert config.optim.lr_multipliers["router"] == 1.5


def test_encode_labels_by_taxonomy():
    labels = ["SN Ia", "SN Ibn", "SLSN-I", None, "TDE"]
    np.testing.assert_array_equal(encode_labels(labels, ("SN Ia", "SN Ib", "TDE")), [0, 1, -1, -1, 2])
    np.testing.assert_array_equal(encode_labels(labels, ("SN I", "SN II", "CV", "AGN", "TDE")), [0, 0, 0, -1, 4])


def test_param_groups_reference_multipliers():
    model = AstroMiNN(AstroMiNNConfig.from_preset("tiny"))
    groups = module_param_groups(model, 1.0, 0.01, {"image": 2.0, "router": 1.5}, {"image": 0.05})
    by_name = {g["name"]: g for g in groups}
    assert by_name["image"]["lr"] == 2.0 and by_name["image"]["weight_decay"] == 0.05
    assert by_name["image.no_decay"]["weight_decay"] == 0.0
    assert by_name["router"]["lr"] == 1.5 and by_name["tower.psf"]["lr"] == 1.0
    n_grouped = sum(p.numel() for g in groups for p in g["params"])
    assert n_grouped == sum(p.numel() for p in model.parameters())


def test_dataset_item_equals_inference_preprocessing(tiny_dataset):
    table = open_dataset(tiny_dataset).alerts("train")
    config = AstroMiNNConfig.from_preset("tiny")
    prep = MetadataPreprocessor.fit(table.metadata)
    ds = AlertImageDataset(table, config, prep)
    item = ds[3]
    row = int(ds.rows[3])
    expected = preprocess_cutouts(table.cutouts(row), table.frame["ra_deg"].iat[row], table.frame["dec_deg"].iat[row],
                                  config.image_input)
    np.testing.assert_array_equal(item["images"].numpy(), expected)
    np.testing.assert_array_equal(item["metadata"].numpy(), prep.transform(table.metadata[row]))
    assert item["images"].shape == (7, 49, 49) and len(ds) == 24


def test_train_resume_and_evaluate(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    assert train_main(_args(tiny_dataset, out, "--set", "train.max_steps=2")) == 0
    model = load_model(out / "model")
    prep = metadata_preprocessor_for(model.config, model.preprocessor)
    assert prep.mean.shape == (19,) and model.preprocessor["image"]["crop_size"] == 49
    assert (out / "checkpoints").is_dir() and (out / "history.json").is_file()
    # resume: the next run continues from the saved checkpoint
    assert train_main(_args(tiny_dataset, out, "--set", "train.max_steps=3")) == 0
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["step"] == 3
    assert evaluate_main(["--model", str(out / "model"), "--dataset", str(tiny_dataset), "--split", "test",
                          "--output-dir", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 8 and "expert_load" in metrics and set(metrics["table6"]) == {"SN I", "SN II", "CV", "Nuclear"}
    for name in ("confusion_matrix.png", "expert_load.png", "table6.md"):
        assert (tmp_path / "eval" / name).stat().st_size > 0


@pytest.mark.parametrize("balance", ["oversample", "none"])
def test_btsbot_trains_through_the_same_loop(tiny_dataset, tmp_path, balance):
    out = tmp_path / "bts"
    args = _args(tiny_dataset, out, "--set", "model.type=btsbot", "--set", "train.max_steps=2",
                 "--set", f"data.balance={balance}", "--set", "model.overrides={class_names: [SN I, SN II, CV, AGN, TDE]}")
    assert train_main(args) == 0
    model = load_model(out / "model")
    assert model.config.model_type == "btsbot" and model.config.num_classes == 5


def test_alert_records_give_the_dataset_tensors(tiny_dataset, tmp_path):
    from applecider_core.records import Alert, CutoutTriplet, LightCurve
    from applecider_images.inference import alert_inputs, classify_alerts

    table = open_dataset(tiny_dataset).alerts("test")
    config = AstroMiNNConfig.from_preset("tiny")
    model = AstroMiNN(config).eval()
    prep = MetadataPreprocessor.fit(open_dataset(tiny_dataset).alerts("train").metadata)
    model.preprocessor = {"metadata": prep.to_dict()}
    ds = AlertImageDataset(table, config, prep)
    empty = LightCurve("x", [], [], [], [], [])
    alerts = []
    for i in range(len(ds)):
        row = table.frame.iloc[int(ds.rows[i])]
        alerts.append(Alert(row.object_id, int(row.candid), float(row.mjd), row.band, float(row.ra_deg),
                            float(row.dec_deg), table.metadata[int(ds.rows[i])], empty,
                            CutoutTriplet(*table.cutouts(int(ds.rows[i])))))
    batch = alert_inputs(alerts, config, model.preprocessor)
    items = [ds[i] for i in range(len(ds))]
    for key in ("images", "metadata", "coords"):
        torch.testing.assert_close(batch[key], torch.stack([item[key] for item in items]), rtol=0, atol=0)
    alerts[1].cutouts = None
    probs = classify_alerts(model, alerts, batch_size=3)
    assert np.isnan(probs[1]).all() and np.allclose(np.delete(probs, 1, axis=0).sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        expected = torch.softmax(model(**{k: v[:1] for k, v in batch.items()}).logits, -1).numpy()
    np.testing.assert_allclose(probs[0], expected[0], rtol=1e-5, atol=1e-6)


def test_paper_loss_is_the_default_and_table6_config_trains(tiny_dataset, tmp_path):
    config = AstroMiNNConfig()
    assert config.focal_gamma == 2.0 and config.specialisation_weight > 0  # paper I §4.4, Eq. 3
    table6 = load_yaml(CONFIG.with_name("images_table6.yaml"), ImagesRunConfig)
    assert table6.model_config().class_names == ("SN I", "SN II", "CV", "Nuclear")
    np.testing.assert_array_equal(encode_labels(["TDE", "AGN", "SN Ic", "CV"], ("SN I", "SN II", "CV", "Nuclear")),
                                  [3, 3, 0, 2])
    out = tmp_path / "t6"
    args = _args(tiny_dataset, out, "--set", "train.max_steps=1", "--set", "data.min_class_objects=1")
    args[1] = str(CONFIG.with_name("images_table6.yaml"))
    assert train_main(args) == 0
    model = AstroMiNN.from_pretrained(out / "model")
    assert model.config.class_names == ("SN I", "SN II", "CV", "Nuclear") and model.config.specialisation_weight > 0


def test_only_classes_with_enough_training_objects_get_an_output(tiny_dataset, tmp_path):
    counts = AlertImageDataset(open_dataset(tiny_dataset).alerts("train"), AstroMiNNConfig.from_preset("tiny"),
                               MetadataPreprocessor.fit(open_dataset(tiny_dataset).alerts("train").metadata,
                                                        AstroMiNNConfig().metadata_features)).object_counts()
    minimum = sorted(v for v in counts.values() if v > 0)[-2]  # the two largest classes reach it
    out = tmp_path / "cov"
    assert train_main(_args(tiny_dataset, out, "--set", "train.max_steps=1", "--set", f"data.min_class_objects={minimum}")) == 0
    expected = tuple(c for c in AstroMiNNConfig().class_names if counts[c] >= minimum)
    assert AstroMiNN.from_pretrained(out / "model").config.class_names == expected and len(expected) >= 2
