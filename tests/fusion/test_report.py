"""``cider report`` / ``cider classify --report``: the page's structure, and the page as a real browser draws it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from applecider_core.cli import main as cider
from applecider_data import synthetic

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


class Outline(HTMLParser):
    """Tags with their attributes, and the text, of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def having(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


@pytest.fixture(scope="module")
def night(tmp_path_factory, models_dir) -> tuple[Path, Path, Path]:
    """A classify run with --report on 10 synthetic packets of 4 objects; (alerts, predictions, report)."""
    folder = tmp_path_factory.mktemp("night")
    packets = synthetic.make_packets(10, seed=3, n_objects=4)
    for packet in packets:
        synthetic.write_avro(folder / "alerts" / f"{packet['candid']}.avro", [packet])
    predictions, report = folder / "out" / "predictions.jsonl", folder / "out" / "report.html"
    assert cider(["classify", str(folder / "alerts"), "--models", str(models_dir), "--out", str(predictions),
                  "--report", str(report), "--no-progress"]) == 0
    return folder / "alerts", predictions, report


def test_report_structure(night):
    _, predictions, report = night
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    objects = {r["objectId"] for r in records}
    page = report.read_text()
    outline = Outline()
    outline.feed(page)
    rows = outline.having("tr")
    assert len([r for r in rows if "data-o" in r]) == len(objects)  # one table row per object
    cards = [a for t, a in outline.tags if t == "div" and a.get("class") == "c"]
    assert sorted(c["id"] for c in cards) == sorted(f"c-{o}" for o in objects)  # one card per object
    images = outline.having("img")
    assert len(images) == len(objects) and all(i["src"].startswith("data:image/webp;base64,") for i in images)
    assert len(outline.having("svg")) == len(objects)  # a light curve per card
    assert page.count('class="ep"') == len(objects)  # with the alert epochs marked
    assert page.count('<div class="bl">fused:') == len(objects)
    for modality in ("photometry", "images"):
        assert page.count(f'<div class="bl">{modality}:') == len(objects)
    text = " ".join(outline.text)
    assert f"alerts {len(records)}" in " ".join(text.split()) and "objects by top class" in text
    assert "not assessed in these records" in text  # models without trust.json: said so, not invented
    # self-contained: nothing fetched from anywhere
    assert not outline.having("link") and all("src" not in a for t, a in outline.tags if t == "script")
    assert "http://" not in page and "https://" not in page


def test_report_shows_abstention_ood_errors_and_notes(night, tmp_path):
    alerts, predictions, _ = night
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    for i, record in enumerate(records):
        record.update(abstain=i % 2 == 0, ood=i == 0, notes=["calibrated <T>"], ood_reasons=["far from training"])
    records[0]["errors"] = ["spectra: no usable points"]
    records.append({"objectId": None, "candid": None, "mjd": None, "modalities": [], "probabilities": {},
                    "fused": None, "top_class": None, "score": None, "errors": ["bad.avro: truncated file"]})
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert cider(["report", str(tmp_path / "p.jsonl"), "--alerts", str(alerts), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    n = len(records)
    assert f"<td>abstained</td><td>{(n) // 2} ({100 * (n // 2) / (n - 1):.1f} %)</td>" in page
    assert "<td>out of distribution</td><td>1 (" in page
    assert "error: spectra: no usable points" in page and "bad.avro: truncated file" in page
    assert "note: calibrated &lt;T&gt;" in page and "note: far from training" in page  # escaped


def test_report_without_packets_still_has_cards(night, tmp_path):
    _, predictions, _ = night
    assert cider(["report", str(predictions), "--out", str(tmp_path / "bare.html")]) == 0
    page = (tmp_path / "bare.html").read_text()
    assert "no cutouts" in page and "no light curve" in page and '<div class="bl">fused:' in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(night, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("APPLECIDER_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (APPLECIDER_REQUIRE_BROWSER) but not installed")
        pytest.skip("chromium not installed (make install installs it with apt-get where it can)")
    from PIL import Image

    _, _, report = night
    screenshot = tmp_path / "report.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1400",
                    f"--screenshot={screenshot}", report.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    assert (pixels.sum(-1) < 3 * 240).mean() > 0.03, "the page is (nearly) blank"

    def rows_with(colour: str) -> np.ndarray:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        return np.nonzero((np.abs(pixels - rgb).sum(-1) == 0).sum(1) > 20)[0]

    header = rows_with("#eeeeee")  # the table's header background
    bars = rows_with("#4e79a7")  # a card's probability bar (top class colour)
    assert header.size, "the table is not visible"
    assert bars.size, "no card is visible"
    assert header.min() < bars.min(), "the table should come before the cards"
    dark = (pixels.sum(-1) < 3 * 60).sum(1)
    assert (dark[bars.min() - 200 : bars.min()] > 0).any(), "the card's cutouts are not drawn"
