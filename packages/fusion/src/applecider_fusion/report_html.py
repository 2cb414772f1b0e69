"""HTML of ``cider report``: summary, table and cards as static markup, plus a small inline sort/filter script.

Markup is kept terse (short class names, SVG paths of round-capped dots) because a night has thousands of
objects and the page must stay a few MB. Every value from a record is escaped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

import numpy as np

from applecider_core.records import LightCurve

if TYPE_CHECKING:
    from .report import ObjectView

BAND_COLOURS = {"ztfg": "#2a9d2a", "ztfr": "#d62728", "ztfi": "#e6a100"}  # CSS classes g, r, i
CLASS_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
                 "#9c755f", "#bab0ac")
CURVE_WIDTH, CURVE_HEIGHT, CURVE_PAD = 260, 110, 6
MAG_ZEROPOINT_UJY = 23.9

STYLE = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222}h1{font-size:20px}table{border-collapse:collapse}
#tw{max-height:45vh;overflow:auto;display:inline-block;border:1px solid #ccc}#t th{cursor:pointer;background:#eee;position:sticky;top:0}#t td,#t th{padding:2px 6px;border-bottom:1px solid #ddd}
#t td:nth-child(n+3){text-align:right}.sum td{padding:1px 8px}.w{color:#b00}
#cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.c{border:1px solid #ccc;border-radius:6px;padding:8px;width:560px;content-visibility:auto;contain-intrinsic-size:560px 260px}
.c h3{margin:0 0 4px;font-size:14px}.c img{width:378px;height:126px;display:block}
.lab{display:flex;width:378px;font-size:11px;color:#555}.lab span{flex:1;text-align:center}
.row{display:flex;gap:8px;align-items:flex-start}.b{display:flex;height:12px;width:250px;background:#f3f3f3;margin:1px 0}
.b i{display:block;height:12px}.bl{font-size:11px;color:#444}.e{color:#b00;font-size:12px}.n{color:#555;font-size:12px}
svg path{fill:none;stroke-linecap:round}.u{stroke-opacity:.3;stroke-width:3}.d{stroke-width:5}
.ep{stroke:#1f77b4;stroke-dasharray:3 2;stroke-width:1;stroke-linecap:butt!important}
""" + "".join(f".k{i}{{background:{colour}}}" for i, colour in enumerate(CLASS_COLOURS)) + "".join(
    f".{band[-1]}{{stroke:{colour}}}" for band, colour in BAND_COLOURS.items())

SCRIPT = """
const t=document.getElementById('t'),f=document.getElementById('f');
t.querySelectorAll('th').forEach((th,i)=>th.onclick=()=>{const b=t.tBodies[0],asc=th.dataset.s!=='a';
 t.querySelectorAll('th').forEach(h=>delete h.dataset.s);th.dataset.s=asc?'a':'d';
 const v=r=>{const c=r.cells[i],x=c.dataset.v??c.textContent;const n=parseFloat(x);return isNaN(n)?x:n};
 [...b.rows].sort((p,q)=>{const a=v(p),c=v(q);return (a<c?-1:a>c?1:0)*(asc?1:-1)}).forEach(r=>b.appendChild(r))});
f.oninput=()=>{const q=f.value.toLowerCase();let n=0;t.tBodies[0].querySelectorAll('tr').forEach(r=>{
 const hit=r.textContent.toLowerCase().includes(q);r.hidden=!hit;n+=hit;
 const c=document.getElementById('c-'+r.dataset.o);if(c)c.hidden=!hit});
 document.getElementById('nshown').textContent=n};
"""


def _share(records: Sequence[dict], key: str) -> str | None:
    """``"12 (3.4 %)"`` for records whose ``key`` is true, or None when no record was assessed (key absent or
    null: models without trust.json)."""
    having = [r for r in records if r.get(key) is not None]
    if not having:
        return None
    count = sum(bool(r[key]) for r in having)
    return f"{count} ({100 * count / len(having):.1f} %)"


def summary_rows(records: Sequence[dict], views: Sequence[ObjectView], orphans: Sequence[dict]) -> list[tuple[str, str]]:
    """(label, value) lines of the run summary."""
    classified = [r for r in records if r.get("top_class") is not None]
    classes = Counter(v.records[-1].get("top_class") or "unclassified" for v in views)
    modalities = Counter(m for r in records for m in r.get("modalities") or [])
    rows = [("alerts", str(len(records))), ("objects", str(len(views))),
            ("classified alerts", str(len(classified))),
            ("objects by top class (latest alert)", ", ".join(f"{c} {n}" for c, n in classes.most_common())),
            ("alerts per modality", ", ".join(f"{m} {n}" for m, n in sorted(modalities.items())) or "none")]
    for label, key in (("abstained", "abstain"), ("out of distribution", "ood")):
        share = _share(records, key)
        rows.append((label, share if share is not None else "not assessed in these records (no trust.json next to the models)"))
    with_errors = sum(bool(r.get("errors")) for r in records)
    rows.append(("alerts with errors", str(with_errors)))
    if orphans:
        rows.append(("inputs that could not be read", "; ".join(e for r in orphans for e in r.get("errors", []))[:2000]))
    return rows


def _dots(points: Sequence[tuple[float, float]]) -> str:
    """An SVG path drawing one round dot per pixel hit by (x, y) points (``M x y h0``; round caps make dots)."""
    return "".join(dict.fromkeys(f"M{x:.0f} {y:.0f}h0" for x, y in points))


def light_curve_svg(curve: LightCurve | None, alert_mjds: Sequence[float]) -> str:
    """Magnitude vs MJD per band (detections as dots, upper limits faint), alert epochs as dashed lines."""
    if curve is None or len(curve) == 0:
        return '<p class="n">no light curve (packets not given or without photometry)</p>'
    positive = curve.flux_ujy > 0
    mag = np.where(positive, -2.5 * np.log10(np.where(positive, curve.flux_ujy, 1.0)) + MAG_ZEROPOINT_UJY, np.nan)
    mjds = np.concatenate([curve.mjd, np.asarray(alert_mjds, dtype=float)])
    lo_t, hi_t = float(np.nanmin(mjds)), float(np.nanmax(mjds))
    finite = mag[np.isfinite(mag)]
    if finite.size == 0:
        return '<p class="n">no positive fluxes to plot</p>'
    bright, faint = float(finite.min()), float(finite.max())
    span_t, span_m = max(hi_t - lo_t, 1e-3), max(faint - bright, 0.1)
    width, height = CURVE_WIDTH - 2 * CURVE_PAD, CURVE_HEIGHT - 2 * CURVE_PAD - 12

    def xy(t: float, m: float) -> tuple[float, float]:
        return CURVE_PAD + width * (t - lo_t) / span_t, CURVE_PAD + height * (m - bright) / span_m

    parts = [f'<svg width="{CURVE_WIDTH}" height="{CURVE_HEIGHT}" role="img" aria-label="light curve">',
             '<rect width="100%" height="100%" fill="#fafafa"/>']
    epochs = "".join(f"M{xy(t, bright)[0]:.0f} 0V{CURVE_HEIGHT - 12}" for t in alert_mjds if math.isfinite(t))
    if epochs:
        parts.append(f'<path class="ep" d="{epochs}"/>')
    for band in BAND_COLOURS:
        for detected, kind in ((False, "u"), (True, "d")):  # upper limits faint, detections bold
            keep = (curve.band == band) & (curve.is_detection == detected) & np.isfinite(mag)
            if keep.any():
                path = _dots([xy(t, m) for t, m in zip(curve.mjd[keep], mag[keep])])
                parts.append(f'<path class="{band[-1]} {kind}" d="{path}"/>')
    parts.append(f'<text x="2" y="{CURVE_HEIGHT - 2}" font-size="10">MJD {lo_t:.1f}–{hi_t:.1f}; '
                 f'mag {bright:.1f}–{faint:.1f}</text></svg>')
    return "".join(parts)


def probability_bar(label: str, probabilities: dict[str, float] | None) -> str:
    """One stacked bar (a segment per class, widths = probabilities) with the top class named."""
    if not probabilities:
        return ""
    ordered = sorted(probabilities.items(), key=lambda item: -item[1])
    segments = "".join(f"<i class=k{i % len(CLASS_COLOURS)} style=width:{100 * p:.0f}%></i>"
                       for i, (_, p) in enumerate(ordered) if p >= 0.02)  # ranked colours: k0 is the top class
    top = ", ".join(f"{escape(c)} {p:.2f}" for c, p in ordered[:2])
    return f'<div class="bl">{escape(label)}: {top}</div><div class="b">{segments}</div>'


def _notes(view: ObjectView) -> str:
    errors = dict.fromkeys([*(e for r in view.records for e in r.get("errors") or []), *view.packet_problems])
    notes = dict.fromkeys(n for r in view.records for n in [*(r.get("notes") or []), *(r.get("ood_reasons") or [])])
    return ("".join(f'<div class="e">error: {escape(str(e))}</div>' for e in errors)
            + "".join(f'<div class="n">note: {escape(str(n))}</div>' for n in notes))


def card(view: ObjectView) -> str:
    latest = view.records[-1]
    flags = [f for f, key in (("abstained", "abstain"), ("OOD", "ood")) if latest.get(key)]
    head = (f'<h3>{escape(view.object_id)} — {escape(str(latest.get("top_class") or "unclassified"))}'
            + (f' {latest["score"]:.2f}' if latest.get("score") is not None else "")
            + (f' <span class="w">{" ".join(flags)}</span>' if flags else "")
            + f' <small>({len(view.records)} alert{"s" * (len(view.records) != 1)})</small></h3>')
    images = (f'<div><img src="{view.cutout_strip_uri}" alt="cutouts of {escape(view.object_id)}">'
              '<div class="lab"><span>science</span><span>reference</span><span>difference</span></div></div>'
              if view.cutout_strip_uri else '<p class="n">no cutouts</p>')
    bars = probability_bar("fused", latest.get("fused")) + "".join(
        probability_bar(m, p) for m, p in sorted((latest.get("probabilities") or {}).items()))
    curve = light_curve_svg(view.light_curve, [r["mjd"] for r in view.records if r.get("mjd") is not None])
    return (f'<div class="c" id="c-{escape(view.object_id)}">{head}<div class="row">{images}</div>'
            f'<div class="row">{curve}<div>{bars}</div></div>{_notes(view)}</div>')


def table_row(view: ObjectView) -> str:
    latest = view.records[-1]
    score = latest.get("score")
    flags = " ".join(f for f, key in (("abstain", "abstain"), ("ood", "ood")) if latest.get(key))
    n_errors = sum(len(r.get("errors") or []) for r in view.records) + len(view.packet_problems)
    oid = escape(view.object_id)
    return (f'<tr data-o="{oid}"><td><a href="#c-{oid}">{oid}</a></td>'
            f'<td>{escape(str(latest.get("top_class") or "—"))}</td>'
            f'<td data-v="{score if score is not None else -1}">{"" if score is None else f"{score:.2f}"}</td>'
            f'<td>{len(view.records)}</td><td>{latest.get("mjd") or 0:.3f}</td>'
            f'<td>{escape("+".join(latest.get("modalities") or []))}</td><td>{flags}</td><td>{n_errors}</td></tr>')


def render_report(records: Sequence[dict], views: Sequence[ObjectView], orphans: Sequence[dict], title: str) -> str:
    summary = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in summary_rows(records, views, orphans))
    header = "".join(f"<th>{h}</th>" for h in ("object", "top class", "score", "alerts", "latest MJD",
                                               "modalities", "flags", "errors"))
    rows = "".join(table_row(v) for v in views)
    cards = "".join(card(v) for v in views)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<table class="sum" id="summary">{summary}</table>'
            f'<p><input id="f" placeholder="filter: object, class, modality, flag…" size="40"> '
            f'<span id="nshown">{len(views)}</span> objects shown (click a column to sort)</p>'
            f'<div id="tw"><table id="t"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div>'
            f'<div id="cards">{cards}</div><script>{SCRIPT}</script></body></html>')
