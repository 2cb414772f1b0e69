"""``cider report PREDICTIONS.jsonl --alerts INPUTS... --out report.html``: a night's results in one page.

One self-contained HTML file (no server, no network: styles, script and images inline) with the run summary
(alerts, objects, classes, share abstained / out-of-distribution when the records say so, errors), a sortable,
filterable table with one row per object, and one card per object: the science / reference / difference
cutouts of its latest alert (WebP thumbnails), the light curve with the alert epochs marked, per-modality and
fused probability bars, and the records' errors and notes. ``cider classify ... --report report.html`` writes
the same page for the run it just made. The packets (``--alerts``, the classify inputs) are read once more
for the cutouts and light curves; without them the cards show the probabilities only.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from applecider_core.records import CutoutTriplet, LightCurve
from applecider_data import AlertParseError, iter_packets, merge_light_curves, packet_to_alert

from .report_html import render_report

# Cutout thumbnails: stamps resampled to 48 px (bilinear) as one lossy WebP strip, quality 40 (~0.8 kB; JPEG
# costs ~15 % more and a header per image): the page of the 2,095 shared alerts (1,823 objects) is 5.0 MB.
THUMBNAIL_PIXELS, THUMBNAIL_QUALITY = 48, 40


@dataclass
class ObjectView:
    """Everything one card shows: the object's records in time order, its latest cutouts, its light curve."""

    object_id: str
    records: list[dict]
    cutout_strip_uri: str | None = None  # data URI of the science | reference | difference strip
    light_curve: LightCurve | None = None
    packet_problems: list[str] = field(default_factory=list)


def read_predictions(path: str | Path) -> list[dict]:
    """The records of a ``cider classify`` JSON-lines file; ValueError naming the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "predictions file not found", str(path))
    records = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not JSON ({error.msg}); expected the JSON lines "
                                 "written by `cider classify --out FILE.jsonl`") from error
            if not isinstance(record, dict) or "objectId" not in record or "fused" not in record:
                raise ValueError(f"{path}: line {number} is not a classification record (no objectId/fused); "
                                 "expected the JSON lines written by `cider classify --out FILE.jsonl`")
            records.append(record)
    return records


def _scaled(image: np.ndarray, symmetric: bool) -> np.ndarray:
    """(H, W) float with NaN → uint8 for display: percentile stretch (symmetric around 0 for differences)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    if symmetric:
        high = float(np.percentile(np.abs(finite), 99.5)) or 1.0
        low = -high
    else:
        low, high = (float(v) for v in np.percentile(finite, (0.5, 99.5)))
        high = high if high > low else low + 1.0
    scaled = np.clip((np.nan_to_num(image, nan=low) - low) / (high - low), 0.0, 1.0)
    return (scaled * 255).astype(np.uint8)


def cutout_strip(cutouts: CutoutTriplet) -> str:
    """The three stamps side by side as one WebP data URI (one image header instead of three)."""
    from PIL import Image

    stamps = [Image.fromarray(_scaled(image, symmetric), mode="L").resize((THUMBNAIL_PIXELS,) * 2, Image.BILINEAR)
              for image, symmetric in ((cutouts.science, False), (cutouts.template, False), (cutouts.difference, True))]
    strip = Image.new("L", (3 * THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    for i, stamp in enumerate(stamps):
        strip.paste(stamp, (i * THUMBNAIL_PIXELS, 0))
    buffer = io.BytesIO()
    strip.save(buffer, format="WEBP", quality=THUMBNAIL_QUALITY, method=6)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def collect_views(records: Sequence[dict], alert_paths: Iterable[str]) -> tuple[list[ObjectView], list[dict]]:
    """Group records per object (time order) and attach the packets' cutouts and light curves.

    Returns (object views, records without an object id, e.g. unreadable files)."""
    by_object: dict[str, ObjectView] = {}
    orphans = []
    for record in records:
        if not record.get("objectId"):
            orphans.append(record)
            continue
        by_object.setdefault(record["objectId"], ObjectView(record["objectId"], [])).records.append(record)
    for view in by_object.values():
        view.records.sort(key=lambda r: (r.get("mjd") is None, r.get("mjd") or 0.0))
    latest_mjd: dict[str, float] = {}
    for packet in iter_packets(list(alert_paths)):
        view = by_object.get(packet.get("objectId")) if isinstance(packet, dict) else None
        if view is None:
            continue
        try:
            alert = packet_to_alert(packet)
        except AlertParseError as error:
            view.packet_problems.append(f"packet {packet.get('candid')}: {error}")
            continue
        curve = alert.light_curve
        view.light_curve = curve if view.light_curve is None else merge_light_curves(view.light_curve, curve)
        if alert.cutouts is not None and alert.mjd >= latest_mjd.get(view.object_id, -np.inf):
            latest_mjd[view.object_id] = alert.mjd
            view.cutout_strip_uri = cutout_strip(alert.cutouts)
    return list(by_object.values()), orphans


def format_size(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.1f} MB" if size_bytes >= 100_000 else f"{size_bytes / 1e3:.0f} kB"


def write_report(records: Sequence[dict], alert_paths: Iterable[str], out: str | Path,
                 title: str = "AppleCiDEr report") -> int:
    """Write the HTML report of ``records`` to ``out`` (folders created); returns its size in bytes."""
    views, orphans = collect_views(records, alert_paths)
    html = render_report(records, views, orphans, title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out.stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider report", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("predictions", help="JSON lines written by `cider classify --out FILE.jsonl`")
    parser.add_argument("--alerts", nargs="+", default=[], metavar="INPUT",
                        help="the packets that were classified (avro files, folders, tarballs, parquet), "
                             "for cutouts and light curves")
    parser.add_argument("--out", required=True, help="the HTML file to write (folders are created)")
    parser.add_argument("--title", default="AppleCiDEr report")
    args = parser.parse_args(argv)
    records = read_predictions(args.predictions)
    size = write_report(records, args.alerts, args.out, args.title)
    print(f"{args.out}: {len(records)} records, {format_size(size)}")
    return 0
