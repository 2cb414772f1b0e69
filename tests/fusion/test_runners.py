"""Runner behaviour that is not preprocessing: photometry's length buckets."""

from __future__ import annotations

import numpy as np

from applecider_fusion.runners import load_runner


def padded_curves(lengths: list[int], n_features: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random normalised events padded to the longest curve, as ``pad_events`` lays them out."""
    rng = np.random.default_rng(seed)
    longest = max(lengths)
    mask = np.arange(longest)[None, :] < np.array(lengths)[:, None]  # (B, L)
    events = np.where(mask[..., None], rng.normal(size=(len(lengths), longest, n_features)), 0).astype(np.float32)
    times = np.where(mask, np.cumsum(rng.uniform(0, 3, mask.shape), axis=1), 0).astype(np.float32)
    return {"events": events, "mask": mask, "times": times}


def test_photometry_runs_each_length_bucket_cut_to_its_longest_curve(models_dir):
    runner = load_runner("photometry", models_dir / "photometry")
    lengths = [1, 9, 1, 2, 17, 3, 4, 1, 5, 16]
    inputs = padded_curves(lengths, runner.config.n_features)
    whole_batch = runner.engine(inputs)  # every curve padded to 17 events
    calls = []
    engine = runner.engine
    runner.engine = lambda part: calls.append(part["mask"].shape) or engine(part)
    bucketed = runner.run(inputs)
    # buckets 1 | 2 | 3–4 | 5–8 | 9–16 | 17–32, each cut to its own longest curve
    assert sorted(calls) == sorted([(3, 1), (1, 2), (2, 4), (1, 5), (2, 16), (1, 17)])
    np.testing.assert_allclose(bucketed, whole_batch, atol=1e-5)
    assert (bucketed.argmax(1) == whole_batch.argmax(1)).all()
