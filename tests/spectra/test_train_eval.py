import json

import numpy as np
import pytest
import yaml

from applecider_spectra.data import group_split, redshift_bins
from applecider_spectra.evaluate import load_model
from applecider_spectra.evaluate import main as evaluate_main
from applecider_spectra.metrics import redshift_metrics
from applecider_spectra.train import main as train_main


def write_config(path, dataset, output_dir, **extra):
    config = {
        "task": "classification",
        "data": {"path": str(dataset), "class_names": ["SN Ia", "SN II", "TDE"], "min_class_objects": 2},
        "model": {"arch": "spectranet", "preset": "tiny"},
        "train": {"output_dir": str(output_dir), "epochs": 2, "batch_size": 8, "learning_rate": 1e-3,
                  "warmup_steps": 1, "schedule": "constant", "ema_decay": 0.9, "patience": 5, "cpu": True},
    }  # fmt: skip
    for key, value in extra.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_resume_evaluate_classification(tmp_path, spectra_dataset):
    config = write_config(tmp_path / "spectra.yaml", spectra_dataset, tmp_path / "run")
    assert train_main(["--config", str(config), "--set", "train.max_steps=2"]) == 0
    model = load_model(tmp_path / "run" / "model")
    assert model.config.class_names == ("SN Ia", "SN II", "TDE") and model.config.class_counts == (8, 8, 8)
    assert model.preprocessor["preprocess"]["num_points"] == 4096
    assert (tmp_path / "run" / "checkpoints").is_dir()
    # resume: a longer run continues from the saved checkpoint rather than starting over
    assert train_main(["--config", str(config), "--set", "train.max_steps=4"]) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["step"] == 4 and "composite" in history[-1]
    out = tmp_path / "eval"
    assert evaluate_main(["--config", str(config), "--model", str(tmp_path / "run" / "model"), "--output", str(out),
                          "--mc-passes", "3"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["strategies"]) == {"given_z", "no_z"}
    given = report["strategies"]["given_z"]
    assert given["n"] == 12 and {"accuracy", "top3_accuracy", "macro_f1", "macro_roc_auc", "per_class"} <= set(given)
    assert set(given["mc_dropout"]["mean_std_per_class"]) == {"SN Ia", "SN II", "TDE"}
    assert (out / "confusion_given_z.png").stat().st_size > 0


def test_seeds_report_mean_and_std_and_baselines_share_the_loop(tmp_path, spectra_dataset, capsys):
    config = write_config(tmp_path / "spectra.yaml", spectra_dataset, tmp_path / "run", model={"arch": "galspecnet"})
    assert train_main(["--config", str(config), "--set", "train.max_steps=1", "--seeds", "0", "1"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and set(summary["macro_f1"]) == {"mean", "std"}
    assert (tmp_path / "run" / "seed_1" / "model" / "model.safetensors").is_file()
    assert "macro_f1" in capsys.readouterr().out
    config = write_config(tmp_path / "rnn.yaml", spectra_dataset, tmp_path / "rnn", model={"arch": "rnn", "preset": "tiny"})
    assert train_main(["--config", str(config), "--set", "train.max_steps=1"]) == 0
    assert load_model(tmp_path / "rnn" / "model").config.model_type == "spectra_rnn"


def test_redshift_regressor_and_three_strategies(tmp_path, spectra_dataset):
    zconfig = write_config(tmp_path / "z.yaml", spectra_dataset, tmp_path / "z", task="redshift")
    assert train_main(["--config", str(zconfig), "--set", "train.max_steps=2"]) == 0
    regressor = load_model(tmp_path / "z" / "model")
    assert regressor.config.task == "redshift" and regressor.preprocessor["preprocess"]["redshift_mode"] == "none"
    cconfig = write_config(tmp_path / "c.yaml", spectra_dataset, tmp_path / "c")
    assert train_main(["--config", str(cconfig), "--set", "train.max_steps=1"]) == 0
    out = tmp_path / "eval"
    assert evaluate_main(["--config", str(cconfig), "--model", str(tmp_path / "c" / "model"),
                          "--redshift-model", str(tmp_path / "z" / "model"), "--output", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["strategies"]) == {"given_z", "predicted_z", "no_z"}
    assert {"bias", "sigma", "mad", "mae", "rmse", "max_error", "r2", "outlier_rate_pct"} <= set(report["redshift"])
    assert (out / "redshift_pred_vs_true.png").is_file()


def test_redshift_metrics_hand_values():
    true = np.array([0.0, 0.1, 0.2, 0.3])
    pred = np.array([0.0, 0.1, 0.2, 0.43])  # one error of 0.13 → Δz = 0.1 → an outlier (> 0.05)
    m = redshift_metrics(pred, true)
    assert m["bias"] == pytest.approx(0.025) and m["mae"] == pytest.approx(0.025)
    assert m["rmse"] == pytest.approx(0.05) and m["max_error"] == pytest.approx(0.1)
    assert m["mad"] == pytest.approx(0.0) and m["outlier_rate_pct"] == pytest.approx(25.0)
    assert m["sigma"] == pytest.approx(np.std([0, 0, 0, 0.1]))
    assert m["r2"] == pytest.approx(1 - 0.13**2 / 0.05)


def test_group_split_is_object_level_and_stratified():
    rng = np.random.default_rng(0)
    objects = np.repeat([f"o{i}" for i in range(60)], 3)
    labels = np.repeat(["a"] * 40 + ["b"] * 20, 3)
    split = group_split(objects, labels, seed=1)
    for obj in set(objects):
        assert len(set(split[objects == obj])) == 1  # an object never straddles splits
    for label, n in (("a", 40), ("b", 20)):
        counts = {s: len(set(objects[(labels == label) & (split == s)])) for s in ("train", "val", "test")}
        assert counts == {"train": n - 2 * int(0.15 * n), "val": int(0.15 * n), "test": int(0.15 * n)}
    assert (group_split(objects, labels, seed=1) == split).all()
    z = rng.uniform(0, 1, 100)
    bins = redshift_bins(z, 10)
    assert bins.min() == 0 and bins.max() == 9
    assert ((z - z.min()) // ((z.max() - z.min()) / 10)).clip(0, 9).astype(int).tolist() == bins.tolist()


def test_class_presets_of_the_papers_and_coverage(tmp_path, spectra_dataset):
    from applecider_core.config import ConfigError
    from applecider_spectra.train import CLASS_PRESETS, DataSection

    assert len(CLASS_PRESETS["paper_ii_table2"]) == 10 and "SLSN-I" in CLASS_PRESETS["paper_ii_table2"]
    assert len(CLASS_PRESETS["paper_i_table7"]) == 9 and "SN II" not in CLASS_PRESETS["paper_i_table7"]
    assert DataSection(class_preset="paper_i_table7").candidate_classes() == list(CLASS_PRESETS["paper_i_table7"])
    with pytest.raises(ConfigError, match="class_preset"):
        DataSection(class_preset="table9")
    # the tiny dataset has SN Ia / SN II / TDE only: of the Table 7 classes only SN Ia and TDE are covered
    config = write_config(tmp_path / "p.yaml", spectra_dataset, tmp_path / "p",
                          data={"class_names": None, "class_preset": "paper_i_table7"})
    assert train_main(["--config", str(config), "--set", "train.max_steps=1"]) == 0
    assert load_model(tmp_path / "p" / "model").config.class_names == ("SN Ia", "TDE")


def test_all_redshift_strategies_are_scored_on_one_shared_subset(tmp_path, spectra_dataset):
    import shutil

    import pandas as pd

    data = tmp_path / "data"
    shutil.copytree(spectra_dataset, data)
    spectra = pd.read_parquet(data / "spectra.parquet")
    test_ids = set(pd.read_parquet(data / "objects.parquet").query("split == 'test'")["object_id"])
    no_z = spectra.index[spectra["object_id"].isin(test_ids)][:3]
    spectra.loc[no_z, "redshift"] = np.nan  # usable without z (no_z) but not with the catalogue z
    spectra.to_parquet(data / "spectra.parquet")
    config = write_config(tmp_path / "c.yaml", data, tmp_path / "c")
    assert train_main(["--config", str(config), "--set", "train.max_steps=1"]) == 0
    out = tmp_path / "eval"
    assert evaluate_main(["--config", str(config), "--model", str(tmp_path / "c" / "model"), "--output", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    usable = report["shared_subset"]["usable_per_strategy"]
    assert usable["no_z"] == usable["given_z"] + 3
    assert {m["n"] for m in report["strategies"].values()} == {report["shared_subset"]["spectra"]} == {usable["given_z"]}
