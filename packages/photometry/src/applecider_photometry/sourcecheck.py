"""The source-only check: can the class be told from the *format* of a light curve alone?

Light-curve sources differ by class (SN Ia from ANTARES, SLSN-I from a literature catalogue, TDE from Fink
and TDECat), so a classifier could learn the source instead of the transient. This check trains a logistic
regression (balanced class weights) on five format features of each curve: number of events, span, median
gap between events, median σ_logf and the fraction of g-band events (the events of
:func:`applecider_photometry.features.build_events`). If it scores near a network, the task is (partly)
solvable from format; after the data build's alert-like stage it should stay near chance
(``tests/photometry/test_source_check.py`` documents the margin).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from applecider_core.metrics import classification_report

from .data import LabelledCurve
from .features import FeatureConfig, build_events

FORMAT_FEATURES = ("n_events", "span_days", "median_gap_days", "median_sigma_logf", "fraction_g")


def format_features(curve: LabelledCurve, config: FeatureConfig) -> np.ndarray:
    """(5,) float64 format features of one curve (``FORMAT_FEATURES``)."""
    seq = build_events(curve.light_curve, config)
    t = seq.times_days
    return np.array([len(t), t[-1] - t[0], np.median(np.diff(t)) if len(t) > 1 else 0.0,
                     np.median(seq.features[:, 3]), seq.features[:, 4].mean()])


def source_only_check(train: Sequence[LabelledCurve], test: Sequence[LabelledCurve], class_names: Sequence[str],
                      config: FeatureConfig | None = None) -> dict[str, float]:
    """Macro-AUPRC and balanced accuracy on ``test`` of a logistic regression on format features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = config or FeatureConfig(horizon_days=100.0, bands=("ztfg", "ztfr"))
    x_train = np.stack([format_features(c, config) for c in train])
    x_test = np.stack([format_features(c, config) for c in test])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
    clf.fit(x_train, [c.label for c in train])
    probs = np.zeros((len(test), len(class_names)))
    probs[:, clf.classes_] = clf.predict_proba(x_test)
    report = classification_report(probs, np.array([c.label for c in test]), class_names)
    return {"macro_auprc": report["macro_auprc"], "balanced_accuracy": report["balanced_accuracy"],
            "chance_balanced_accuracy": 1.0 / len({c.label for c in test})}
