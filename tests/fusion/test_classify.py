"""`Classifier` and `cider classify` on synthetic Avro packets, the real packets of the bundle, and bad input."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from applecider_core.pretrained import PretrainedError
from applecider_core.records import Spectrum
from applecider_core.taxonomy import FUSION_CLASSES
from applecider_data import PacketError, iter_packets, synthetic
from applecider_fusion import Classifier, FusionError
from applecider_fusion.classify import main as classify_main
from applecider_spectra import SpectraNet, SpectraNetConfig


def _check_record(record: dict) -> None:
    if record["top_class"] is None:
        assert record["errors"], record
        return
    assert record["modalities"] and set(record["modalities"]) <= set(record["probabilities"])  # fused ⊆ ran
    fused = np.array(list(record["fused"].values()))
    assert list(record["fused"]) == list(FUSION_CLASSES)
    assert abs(fused.sum() - 1) < 1e-4 and record["top_class"] == max(record["fused"], key=record["fused"].get)


def _spectrum_csv(path, object_id: str, redshift: float = 0.05) -> None:
    wave = np.linspace(3600, 9500, 600)
    flux = 1e-16 * (1 + 0.3 * np.sin(wave / 300.0))
    pd.DataFrame({"objectId": object_id, "spectrum_id": "s1", "wavelength_aa": wave, "flux": flux,
                  "redshift": redshift}).to_csv(path, index=False)


def test_every_packet_gets_a_fused_record_and_history_accumulates(models_dir):
    packets = synthetic.make_packets(9, seed=3, n_objects=3)
    classifier = Classifier.from_dir(models_dir)
    records = classifier.classify(packets, batch_size=16)
    assert sorted(r["candid"] for r in records) == sorted(p["candid"] for p in packets)
    for record in records:
        _check_record(record)
        assert record["modalities"] == ["photometry", "images"] and not record["errors"]
    # one packet per call, in time order: the per-object history cache must rebuild the same light curves
    # as one batch holding everything (alerts of an object are processed in time order either way)
    streaming = Classifier.from_dir(models_dir)
    for packet in sorted(packets, key=lambda p: p["candidate"]["jd"]):
        (single,) = streaming.classify([packet])
        batched = next(r for r in records if r["candid"] == single["candid"])
        for name, prob in batched["probabilities"]["photometry"].items():
            assert single["probabilities"]["photometry"][name] == pytest.approx(prob, abs=1e-5)


def test_later_alerts_do_not_leak_into_earlier_ones(models_dir):
    """Within one batch an alert sees only photometry up to its own epoch."""
    rng = np.random.default_rng(5)
    first = synthetic.make_packet(rng, "ZTF20aaaaaaa")
    later = synthetic.make_packet(rng, "ZTF20aaaaaaa")
    later["candidate"]["jd"] = first["candidate"]["jd"] + 20
    alone = Classifier.from_dir(models_dir).classify([first])[0]
    together = {r["candid"]: r for r in Classifier.from_dir(models_dir).classify([later, first])}
    assert together[first["candid"]]["probabilities"]["photometry"] == alone["probabilities"]["photometry"]


def test_spectra_join_by_object_and_a_missing_modality_is_left_out(models_dir, tmp_path):
    packets = synthetic.make_packets(4, seed=11, n_objects=2)
    with_spectrum = packets[0]["objectId"]
    _spectrum_csv(tmp_path / "spectra.csv", with_spectrum)
    from applecider_fusion.inputs import read_spectra_table

    spectra = read_spectra_table(tmp_path / "spectra.csv")
    for packet in packets[2:]:
        packet["cutoutScience"] = None  # no stamps: images/metadata cannot run on these
    records = Classifier.from_dir(models_dir).classify(packets, spectra=spectra)
    for record in records:
        _check_record(record)
        packet = next(p for p in packets if p["candid"] == record["candid"])
        expected = ["photometry"] + (["images"] if packet["cutoutScience"] else [])
        expected += ["spectra"] if record["objectId"] == with_spectrum else []
        assert record["modalities"] == expected
        if packet["cutoutScience"] is None:  # a packet without stamps failed nothing: a note, not an error
            assert not record["errors"] and "images: the packet has no cutouts" in record["notes"]
            assert not any(n.startswith("cutout") for n in record["notes"])


def test_bad_packets_and_read_errors_become_error_records(models_dir):
    packets = synthetic.make_packets(3, seed=2)
    broken = dict(packets[1], candidate=None)
    records = Classifier.from_dir(models_dir).classify(
        [packets[0], broken, PacketError("night.tar.gz", "x.avro", "truncated"), packets[2]])
    assert len(records) == 4
    failed = [r for r in records if r["top_class"] is None]
    assert len(failed) == 2 and all(r["errors"] for r in failed)
    assert any("night.tar.gz" in e for r in failed for e in r["errors"])


def test_models_that_do_not_map_or_are_not_classifiers_are_refused(models_dir, tmp_path):
    odd = tmp_path / "odd"
    shutil.copytree(models_dir, odd)
    shutil.rmtree(odd / "photometry")
    from applecider_photometry import PhotometryClassifier, PhotometryConfig

    PhotometryClassifier(PhotometryConfig.from_preset("tiny", class_names=("SN Ia", "Kilonova"))).save_pretrained(
        odd / "photometry", json.loads((models_dir / "photometry" / "preprocessor.json").read_text()))
    with pytest.raises(FusionError, match=r"photometry model.*Kilonova"):
        Classifier.from_dir(odd)
    regressor = tmp_path / "regressor"
    SpectraNet(SpectraNetConfig.from_preset("tiny", task="redshift", class_names=())).save_pretrained(
        regressor / "spectra", {"task": "redshift"})
    with pytest.raises(PretrainedError, match="needs a classifier"):
        Classifier.from_dir(regressor)
    with pytest.raises(FusionError, match="no model directories"):
        Classifier.from_dir(tmp_path / "empty")


def test_cli_reports_a_truncated_file_and_classifies_the_rest(models_dir, tmp_path, capsys):
    folder = tmp_path / "night"
    paths = synthetic.write_alert_files(folder, 5, seed=4)
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.jsonl"
    code = classify_main([str(folder), "--models", str(models_dir), "--out", str(out), "--no-progress"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 1  # something failed
    assert len(records) == 5
    failed = [r for r in records if r["top_class"] is None]
    assert len(failed) == 1 and paths[0].name in failed[0]["errors"][0]
    summary = capsys.readouterr().err
    assert "top class" in summary and "5 records (1 without a classification)" in summary
    csv_out = tmp_path / "out.csv"
    assert classify_main([str(p) for p in paths[1:]] + ["--models", str(models_dir), "--out", str(csv_out),
                                                        "--no-progress"]) == 0
    table = pd.read_csv(csv_out)
    assert len(table) == 4 and {"fused_SN I", "photometry_SN Ia", "images_TDE", "errors"} <= set(table.columns)


@pytest.mark.slow
def test_real_packets_of_the_bundle(models_dir, shared_data, tmp_path):
    """All real packets (Avro folder and the alert parquet): every alert gets a result or an error record."""
    from applecider_data import iter_packets

    sources = [shared_data / "alerts" / "avro", shared_data / "alerts" / "ztf_public_alerts.parquet"]
    expected = sum(1 for _ in iter_packets(sources))
    records = list(Classifier.from_dir(models_dir).stream(iter_packets(sources), batch_size=128))
    assert len(records) == expected > 1000
    for record in records:
        _check_record(record)
    classified = [r for r in records if r["top_class"] is not None]
    assert len(classified) / len(records) > 0.95
    assert sum("images" in r["modalities"] for r in classified) / len(classified) > 0.9


def test_examples_tarball_and_spectra_make_a_three_modality_demo(models_dir, tmp_path, capsys):
    from applecider_fusion.examples import main as examples_main

    assert examples_main(["--out", str(tmp_path / "alerts"), "-n", "6", "--spectra", "2", "--tarball"]) == 0
    out = tmp_path / "predictions.jsonl"
    assert classify_main([str(tmp_path / "alerts.tar.gz"), "--spectra", str(tmp_path / "spectra.csv"), "--models",
                          str(models_dir), "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 6
    with_spectra = {r["objectId"] for r in records if "spectra" in r["modalities"]}
    assert len(with_spectra) == 2 and all(r["modalities"][:2] == ["photometry", "images"] for r in records)


def test_fusion_settings_file_and_weights_option(models_dir, tmp_path):
    tuned = tmp_path / "tuned"
    shutil.copytree(models_dir, tuned)
    (tuned / "fusion.json").write_text(json.dumps({"weights": {"spectra": 2.0}, "temperatures": {"images": 4.0}}))
    classifier = Classifier.from_dir(tuned, weights={"photometry": 0.5})
    assert classifier.fusion.temperatures["images"] == 4.0
    assert dict(classifier.fusion.weights) == {"spectra": 2.0, "photometry": 0.5}
    (tuned / "fusion.json").write_text(json.dumps({"weigths": {}}))
    with pytest.raises(FusionError, match="unknown keys"):
        Classifier.from_dir(tuned)
    alerts = tmp_path / "alerts"
    synthetic.write_alert_files(alerts, 2, seed=8)
    with pytest.raises(SystemExit):
        classify_main([str(alerts), "--models", str(models_dir), "--weight", "spectra"])
    out = tmp_path / "weighted.jsonl"
    assert classify_main([str(alerts), "--models", str(models_dir), "--weight", "images=0.25", "--out", str(out),
                          "--no-progress"]) == 0
    record = json.loads(out.read_text().splitlines()[0])
    projection = {"SN I": ("SN Ia", "SN Ib", "SN Ic"), "SN II": ("SN II", "SN IIP", "SN IIn", "SN IIb"),
                  "CV": ("CV",), "AGN": ("AGN",), "TDE": ("TDE",)}
    for name, members in projection.items():
        expected = sum((record["probabilities"]["photometry"][m] + 0.25 * record["probabilities"]["images"][m])
                       for m in members) / 1.25
        assert record["fused"][name] == pytest.approx(expected, abs=1e-5)


def test_a_model_unvalidated_on_every_class_runs_but_does_not_enter_the_fusion(models_dir, tmp_path, capsys):
    tuned = tmp_path / "tuned"
    shutil.copytree(models_dir, tuned)
    (tuned / "fusion.json").write_text(json.dumps({"unvalidated": {"images": list(FUSION_CLASSES)}}))
    alerts = tmp_path / "alerts"
    synthetic.write_alert_files(alerts, 3, seed=5)
    out = tmp_path / "records.jsonl"
    assert classify_main([str(alerts), "--models", str(tuned), "--out", str(out), "--no-progress"]) == 0
    assert "images 0/3 (not fused: validated on no class" in capsys.readouterr().err
    photometry_only = Classifier.from_dir(models_dir, modalities=("photometry",))
    alone = {r["candid"]: r for r in photometry_only.classify(list(iter_packets([alerts])))}
    for record in map(json.loads, out.read_text().splitlines()):
        _check_record(record)
        assert record["modalities"] == ["photometry"] and "images" in record["probabilities"]
        assert record["fused"] == pytest.approx(alone[record["candid"]]["fused"], abs=1e-6)


def test_new_spectra_of_an_object_are_classified_not_served_from_the_cache(models_dir, tmp_path):
    packet = synthetic.make_packets(1, seed=12)[0]
    _spectrum_csv(tmp_path / "a.csv", packet["objectId"], redshift=0.05)
    _spectrum_csv(tmp_path / "b.csv", packet["objectId"], redshift=0.30)
    from applecider_fusion.inputs import read_spectra_table

    classifier = Classifier.from_dir(models_dir)
    first = classifier.classify([packet], spectra=read_spectra_table(tmp_path / "a.csv"))[0]
    again = classifier.classify([packet], spectra=read_spectra_table(tmp_path / "a.csv"))[0]
    other = classifier.classify([packet], spectra=read_spectra_table(tmp_path / "b.csv"))[0]
    assert first["probabilities"]["spectra"] == again["probabilities"]["spectra"]
    assert other["probabilities"]["spectra"] != first["probabilities"]["spectra"]


def test_cli_bad_paths_and_unusable_inputs(models_dir, tmp_path, capsys):
    alerts = tmp_path / "alerts"
    synthetic.write_alert_files(alerts, 2, seed=9)
    out = tmp_path / "out.jsonl"
    # a missing input path is an error record; the good inputs are still classified
    assert classify_main([str(tmp_path / "nope.avro"), str(alerts), "--models", str(models_dir), "--out", str(out),
                          "--no-progress"]) == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(r["top_class"] is not None for r in records) == 2
    assert any("nope.avro" in e and "no such file" in e for r in records for e in r["errors"])
    capsys.readouterr()
    for bad in (["--models", str(tmp_path / "no_models")], ["--models", str(models_dir), "--spectra", "missing.csv"]):
        with pytest.raises(SystemExit) as exit_info:
            classify_main([str(alerts), *bad])
        assert exit_info.value.code == 2
        message = capsys.readouterr().err
        assert message.startswith("cider classify: error:") and ("no model directories" in message or "missing.csv" in message)


def _write_seed_systems(models: Path) -> None:
    """Untrained tiny SNIascore (classifier + redshift) and CCSNscore (layer 1 and 2, case S) folders."""
    from applecider_spectra import CCSNscoreClassifier, CCSNscoreConfig, SNIascore, SNIascoreConfig
    from applecider_spectra.configuration_ccsnscore import CCSN_LAYERS

    SNIascore(SNIascoreConfig.from_preset("tiny")).save_pretrained(models / "sniascore" / "classifier",
                                                                   {"operating_point": {"score_cut": 0.0, "error_cut": 1.0}})
    SNIascore(SNIascoreConfig.from_preset("tiny", task="redshift")).save_pretrained(models / "sniascore" / "redshift")
    for layer, targets in CCSN_LAYERS.items():
        for target in targets:
            config = CCSNscoreConfig.from_preset("tiny", layer=layer, target=target)
            CCSNscoreClassifier(config).save_pretrained(models / "ccsnscore" / config.folder_name)


def test_seed_spectral_systems_add_their_entries_when_their_folders_are_present(models_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    _write_seed_systems(models)
    packets = synthetic.make_packets(4, seed=3, n_objects=2)
    good, bad = packets[0]["objectId"], packets[1]["objectId"]
    _spectrum_csv(tmp_path / "good.csv", good)
    from applecider_fusion.inputs import read_spectra_table

    spectra = read_spectra_table(tmp_path / "good.csv")
    uv = Spectrum(object_id=bad, wavelength_aa=np.linspace(1200, 3000, 300), flux=np.linspace(1, 2, 300),
                  spectrum_id="uv", redshift=0.05)
    spectra[bad] = [uv]
    records = Classifier.from_dir(models).classify(packets, spectra=spectra)
    for record in records:
        _check_record(record)
        if record["objectId"] == good:
            snia = record["sniascore"]
            assert {"score", "score_error", "is_ia_confident", "redshift"} <= set(snia) and snia["is_ia_confident"]
            assert isinstance(snia["redshift"], float)  # confident (cut 0) → the regressor's redshift
            ccsn = record["ccsnscore"]
            assert ccsn["case"] == "S" and set(ccsn["scores"]["1"]) == {"H-rich", "H-poor"} and "type" in ccsn
        else:
            assert "sniascore" not in record and "ccsnscore" not in record
            assert any(e.startswith("sniascore:") and "SEDM bins" in e for e in record["errors"])
    plain = Classifier.from_dir(models_dir).classify(packets[:1], spectra=spectra)
    assert "sniascore" not in plain[0] and "ccsnscore" not in plain[0]


def test_decoding_ahead_in_a_thread_gives_the_same_records(models_dir):
    packets = [*synthetic.make_packets(11, seed=5, n_objects=4), PacketError("night.tar.gz", "x.avro", "truncated")]
    inline = Classifier.from_dir(models_dir).classify(iter(packets), batch_size=3, overlap=False)
    ahead = Classifier.from_dir(models_dir).classify(iter(packets), batch_size=3, overlap=True)
    assert ahead == inline and len(ahead) == len(packets) and "night.tar.gz" in ahead[-1]["errors"][0]


def test_decoding_ahead_raises_the_input_error_and_stops_when_closed(models_dir):
    classifier = Classifier.from_dir(models_dir)

    def failing():
        yield from synthetic.make_packets(4, seed=1)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(classifier.stream(failing(), batch_size=2))
    stream = classifier.stream(iter(synthetic.make_packets(40, seed=2)), batch_size=1)
    next(stream)
    stream.close()  # the decoding thread ends instead of waiting on its full queue
    assert not [t for t in threading.enumerate() if t.name == "applecider-decode" and t.is_alive()]
