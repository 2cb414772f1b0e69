"""``--engine ray``: the Ray Data backfill gives the sequential ``cider classify`` records (shared parquet,
a local Ray with two actors)."""

from __future__ import annotations

import pytest

from applecider_data import iter_packets
from applecider_fusion.classifier import Classifier

pytestmark = pytest.mark.slow
MODELS = __import__("pathlib").Path(__file__).resolve().parents[2] / "models"


def test_ray_backfill_equals_sequential_classify(shared_data):
    pytest.importorskip("ray")
    from applecider_fusion.backfill import classify_on_ray

    table = shared_data / "alerts" / "ztf_public_alerts.parquet"
    on_ray = {r["candid"]: r for r in classify_on_ray([str(table)], str(MODELS), workers=2)}
    sequential = {r["candid"]: r for r in Classifier.from_dir(MODELS).stream(iter_packets(table))}
    assert len(on_ray) == len(sequential) == 2095 and set(on_ray) == set(sequential)
    for candid, record in sequential.items():
        other = on_ray[candid]
        for key in ("objectId", "mjd", "modalities", "top_class", "errors"):
            assert other[key] == record[key], (candid, key)
        # batch composition changes float32 sums in the last bit; records are rounded to 6 decimals
        for modality, probs in record["probabilities"].items():
            assert other["probabilities"][modality] == pytest.approx(probs, abs=2e-6)
        assert other["fused"] == pytest.approx(record["fused"], abs=2e-6)


def test_ray_engine_refuses_non_parquet_inputs(tmp_path):
    from applecider_fusion.backfill import parquet_inputs

    (tmp_path / "a.avro").write_bytes(b"")
    with pytest.raises(ValueError, match="parquet"):
        parquet_inputs([str(tmp_path / "a.avro")])
