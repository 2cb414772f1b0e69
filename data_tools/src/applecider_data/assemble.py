"""Assembly: stage outputs → the final dataset files (format of ``applecider_core.dataset``).

Object labels, in priority order: the label table (keyed by ZTF id), SkyPortal classifications, the combined
labels of the object's spectra (``taxonomy.combine_claims``; a conflict gives no label), the light-curve
table's label. ``first_detection_mjd`` per object: the earliest of its alerts' jdstarthist and its alert-like
detections (the longest history known), from which the photometry features measure Δt. A spectrum without a label of its own (SkyPortal/Fritz) takes its object's label. Redshift: label table, then the first finite spectrum redshift, then the light-curve table.
Light curves: alert-history points (``source = "alerts"``, merged over all alerts of an object,
de-duplicated on candid, else (mjd, band)) plus the light-curve table's points; a table point at the same
(object, mjd to 1e-5 d, band, detection flag) as an alert point is a duplicate and dropped. The merged
curve of every object then goes through the alert-like stage (:mod:`applecider_data.alertlike`); objects it
empties are listed in skipped.csv and have no light curve.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from applecider_core.records import METADATA_FEATURES, METADATA_FEATURES_BY_SURVEY, survey_of_metadata_columns
from applecider_core.taxonomy import combine_claims

from .alertlike import LC_COLUMNS, AlertLikeConfig, alert_like_table
from .split import SPLIT_NAMES, NameGroups, normalise_name, stratified_split
from .stages import SKIPPED_COLUMNS, link_or_copy, write_csv, write_json, write_parquet

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ALERT_COLUMNS = ["object_id", "candid", "mjd", "band", "ra_deg", "dec_deg", "cutout_index"]  # + the survey's metadata
SPECTRA_COLUMNS = ["spectrum_id", "object_id", "redshift", "mjd", "label", "flux_unit", "instrument", "source",
                   "wavelength_aa", "flux"]  # fmt: skip


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=columns or [])


def _alert_light_curves(points: pd.DataFrame) -> pd.DataFrame:
    """Merge the per-alert histories of each object, de-duplicated (see module docstring)."""
    if points.empty:
        return pd.DataFrame(columns=[*LC_COLUMNS, "candid"])
    points = points.assign(mjd_key=points["mjd"].round(5))
    points = points.sort_values(["object_id", "mjd", "band", "is_detection", "candid"], ascending=[True, True, True, False, True])
    with_candid = points[points["candid"] >= 0].drop_duplicates(["object_id", "candid"])
    without = points[points["candid"] < 0].drop_duplicates(["object_id", "mjd_key", "band"])
    taken = set(zip(with_candid["object_id"], with_candid["mjd_key"], with_candid["band"]))
    keep = [k not in taken for k in zip(without["object_id"], without["mjd_key"], without["band"])]
    merged = pd.concat([with_candid, without[keep]], ignore_index=True)
    return merged.assign(source="alerts").sort_values(["object_id", "mjd", "band"]).reset_index(drop=True)


def assemble(out: Path, build_config: dict, split_config: dict, stage_results: dict,
             alert_like: AlertLikeConfig | None = None) -> dict:
    """Write objects/alerts/cutouts/light_curves/spectra/skipped and, last, the manifest into ``out``."""
    (out / "manifest.json").unlink(missing_ok=True)  # the directory is incomplete until the manifest is back
    sdir = out / "_stages"
    alerts = _read(sdir / "alerts" / "alerts.parquet", [*ALERT_COLUMNS, *METADATA_FEATURES])
    alert_columns = [*ALERT_COLUMNS, *METADATA_FEATURES_BY_SURVEY[survey_of_metadata_columns(alerts.columns)]]
    points = _read(sdir / "alerts" / "alert_points.parquet")
    spectra = _read(sdir / "spectra" / "spectra.parquet")
    lc_table = _read(sdir / "light_curves" / "points.parquet")
    labels = _read(sdir / "labels" / "labels.parquet", ["object_id", "label", "redshift"])
    sp_labels = _read(sdir / "skyportal_labels" / "labels.parquet", ["object_id", "label"])

    groups = NameGroups()
    for oid in pd.concat([alerts.get("object_id", pd.Series(dtype=str)), labels["object_id"]]).unique():
        groups.add([oid])
    for names in spectra.get("names", []):
        groups.add(list(names))
    if not lc_table.empty:
        for name, ztf in lc_table[["name", "ztf_id"]].drop_duplicates().itertuples(index=False):
            groups.add([name, ztf])
    ids = groups.object_ids()

    def resolve(name: str) -> str:
        return ids.get(normalise_name(name), str(name))

    alerts["object_id"] = alerts["object_id"].map(resolve) if not alerts.empty else alerts.get("object_id")
    points["object_id"] = points["object_id"].map(resolve) if not points.empty else points.get("object_id")
    if not spectra.empty:
        spectra["object_id"] = [resolve(names[0]) for names in spectra["names"]]
    if not lc_table.empty:
        lc_table["object_id"] = lc_table["name"].map(resolve)
    labels["object_id"] = labels["object_id"].map(resolve)
    sp_labels["object_id"] = sp_labels["object_id"].map(resolve)

    # ---- light curves ----
    alert_lc = _alert_light_curves(points)
    if not lc_table.empty:
        keys = set(zip(alert_lc["object_id"], alert_lc["mjd"].round(5), alert_lc["band"], alert_lc["is_detection"]))
        dup = np.array([k in keys for k in zip(lc_table["object_id"], lc_table["mjd"].round(5), lc_table["band"],
                                                lc_table["is_detection"])], dtype=bool)  # fmt: skip
        lc_table = lc_table[~dup]
    light_curves = pd.concat([alert_lc[LC_COLUMNS], lc_table[LC_COLUMNS] if not lc_table.empty else None],
                             ignore_index=True)  # fmt: skip
    light_curves = light_curves.astype({"mjd": "float64", "flux_ujy": "float64", "flux_err_ujy": "float64",
                                        "is_detection": bool, "object_id": str, "band": str, "source": str})
    light_curves = light_curves.sort_values(["object_id", "mjd", "band", "source"], kind="stable").reset_index(drop=True)
    before = set(light_curves["object_id"])
    light_curves, stage_results["alert_like"] = alert_like_table(light_curves, alert_like or AlertLikeConfig(enabled=False))
    emptied = sorted(before - set(light_curves["object_id"]))

    # ---- objects, labels, redshifts ----
    object_ids = sorted(set(alerts["object_id"]) | set(spectra.get("object_id", [])) | before)
    label_of: dict[str, str] = {}
    redshift_of: dict[str, float] = {}
    if not lc_table.empty:
        for oid, rows in lc_table.groupby("object_id"):
            lab = rows["label"].dropna()
            if len(lab):
                label_of[oid] = lab.iloc[0]
            z = rows["redshift"].dropna()
            if len(z):
                redshift_of[oid] = float(z.iloc[0])
    if not spectra.empty:
        for oid, rows in spectra.sort_values("spectrum_id").groupby("object_id"):
            claims = [lab for lab in rows["label"] if isinstance(lab, str)]
            combined = combine_claims(claims) if claims else None
            if combined:
                label_of[oid] = combined
            z = rows["redshift"].dropna()
            if len(z):
                redshift_of[oid] = float(z.iloc[0])
    label_of.update(dict(zip(sp_labels["object_id"], sp_labels["label"])))
    label_of.update(dict(zip(labels["object_id"], labels["label"])))
    redshift_of.update({k: v for k, v in zip(labels["object_id"], labels["redshift"]) if v == v})

    skipped = [pd.read_csv(p) for p in sorted(sdir.glob("*/skipped.csv"))]
    present = set(object_ids)
    unused = sorted(set(labels["object_id"]) - present)
    skipped.append(pd.DataFrame([(f"label {oid}", "labels", "labelled object has no alert, light curve or spectrum")
                                 for oid in unused], columns=SKIPPED_COLUMNS))  # fmt: skip
    skipped.append(pd.DataFrame([(f"light curve {oid}", "alert_like", "no alert-like detection (g/r, event window)")
                                 for oid in emptied], columns=SKIPPED_COLUMNS))  # fmt: skip

    detected = set(light_curves.loc[light_curves["is_detection"], "object_id"])
    objects = pd.DataFrame({"object_id": object_ids})
    objects["label"] = objects["object_id"].map(label_of).astype(object)
    objects["label"] = objects["label"].where(objects["label"].notna(), None)
    objects["redshift"] = objects["object_id"].map(redshift_of).astype("float64")
    strata = {oid: (lab if isinstance(lab, str) else "unlabelled") for oid, lab in zip(objects["object_id"], objects["label"])}
    fractions = (split_config["train"], split_config["val"], split_config["test"])
    split_of, rare = stratified_split(strata, fractions, split_config["seed"], split_config["min_objects"])
    objects["split"] = objects["object_id"].map(split_of)
    objects["has_alerts"] = objects["object_id"].isin(set(alerts["object_id"]))
    objects["has_light_curve"] = objects["object_id"].isin(detected)
    objects["has_spectrum"] = objects["object_id"].isin(set(spectra.get("object_id", [])))
    objects["first_detection_mjd"] = _first_detections(objects["object_id"], alerts, light_curves)

    # ---- write ----
    write_parquet(objects, out / "objects.parquet")
    write_parquet(alerts[alert_columns].reset_index(drop=True), out / "alerts.parquet")
    cutouts = sdir / "alerts" / "cutouts.npy"
    if cutouts.is_file():
        link_or_copy(cutouts, out / "cutouts.npy")
    else:
        (out / "cutouts.npy").unlink(missing_ok=True)  # no alerts this build: no stale stamps
    write_parquet(light_curves[LC_COLUMNS], out / "light_curves.parquet")
    spectra_out = spectra.reindex(columns=SPECTRA_COLUMNS) if not spectra.empty else pd.DataFrame(columns=SPECTRA_COLUMNS)
    if not spectra.empty:
        # Spectra without a label of their own (SkyPortal/Fritz spectra carry none) take their object's label.
        unlabelled = spectra_out["label"].isna()
        spectra_out.loc[unlabelled, "label"] = spectra_out.loc[unlabelled, "object_id"].map(label_of)
        z_obj = spectra_out["object_id"].map(redshift_of)
        spectra_out["redshift"] = spectra_out["redshift"].where(spectra_out["redshift"].notna(), z_obj).astype("float64")
    write_parquet(spectra_out, out / "spectra.parquet")
    skipped_frame = pd.concat([s for s in skipped if not s.empty] or [pd.DataFrame(columns=SKIPPED_COLUMNS)],
                              ignore_index=True)  # fmt: skip
    write_csv(skipped_frame[SKIPPED_COLUMNS], out / "skipped.csv")

    manifest = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_config": build_config,
        "counts": _counts(objects, alerts, spectra_out, light_curves, skipped_frame, rare),
        "stages": stage_results,
    }
    write_json(manifest, out / "manifest.json")
    return manifest


def _first_detections(object_ids: pd.Series, alerts: pd.DataFrame, light_curves: pd.DataFrame) -> np.ndarray:
    """Per object: the earliest of its alerts' first detections (jdstarthist) and its alert-like detections."""
    firsts = [light_curves.loc[light_curves["is_detection"]].groupby("object_id")["mjd"].min()]
    if "first_detection_mjd" in alerts.columns:
        firsts.append(alerts.groupby("object_id")["first_detection_mjd"].min())
    earliest = pd.concat(firsts, axis=1).min(axis=1)
    return object_ids.map(earliest).astype("float64").to_numpy()


def _counts(objects, alerts, spectra, light_curves, skipped, rare) -> dict:
    label = objects.set_index("object_id")["label"].fillna("unlabelled")
    split = objects.set_index("object_id")["split"]
    per_class: dict[str, dict] = {}
    for cls in sorted(label.unique()):
        ids = label.index[label == cls]
        entry = {}
        for name in SPLIT_NAMES:
            sid = set(ids[split[ids] == name])
            entry[name] = {
                "objects": len(sid),
                "alerts": int(alerts["object_id"].isin(sid).sum()),
                "spectra": int(spectra["object_id"].isin(sid).sum()),
                "light_curves": int(objects["object_id"].isin(sid).mul(objects["has_light_curve"]).sum()),
            }
        per_class[cls] = entry
    return {
        "objects": len(objects), "alerts": len(alerts), "cutouts": int((alerts["cutout_index"] >= 0).sum()),
        "spectra": len(spectra), "light_curve_points": len(light_curves),
        "objects_with": {k: int(objects[f"has_{k}"].sum()) for k in ("alerts", "light_curve", "spectrum")},
        "common_objects": int((objects["has_alerts"] & objects["has_light_curve"] & objects["has_spectrum"]).sum()),
        "per_split": {s: int((objects["split"] == s).sum()) for s in SPLIT_NAMES},
        "per_class": per_class, "rare_strata_in_train_only": rare, "skipped": len(skipped),
        "skipped_by_reason": skipped["reason"].map(_reason_kind).value_counts().to_dict(),
    }  # fmt: skip


def _reason_kind(reason: object) -> str:
    text = str(reason)
    for kind in ("duplicate candid", "cutout", "alert parse error", "corrupt", "excluded", "no alert, light curve"):
        if kind in text:
            return kind
    return text[:40]


def summary_table(manifest: dict) -> str:
    """Objects / alerts / spectra / light curves per class as train/val/test."""
    counts = manifest["counts"]
    header = f"{'class':<12} {'objects':>16} {'alerts':>16} {'spectra':>16} {'light_curves':>16}"
    lines = ["counts as train/val/test", header, "-" * len(header)]
    totals = {k: [0, 0, 0] for k in ("objects", "alerts", "spectra", "light_curves")}
    for cls, entry in counts["per_class"].items():
        cells = []
        for key in totals:
            values = [entry[s][key] for s in SPLIT_NAMES]
            totals[key] = [a + b for a, b in zip(totals[key], values)]
            cells.append("/".join(map(str, values)))
        lines.append(f"{cls:<12} " + " ".join(f"{c:>16}" for c in cells))
    lines.append("-" * len(header))
    lines.append(f"{'total':<12} " + " ".join(f"{'/'.join(map(str, v)):>16}" for v in totals.values()))
    lines.append(f"common set (alerts+light curve+spectrum): {counts['common_objects']} objects; "
                 f"skipped items: {counts['skipped']} (see skipped.csv)")  # fmt: skip
    return "\n".join(lines)
