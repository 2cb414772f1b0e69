"""``cider classify ALERTS... --models DIR [--spectra FILE]``: fused classification of alert packets.

Inputs: Avro files, directories of them, nightly tarballs (.tar.gz) and alert parquet tables, streamed; ZTF
and Rubin packets alike (the survey is read from each packet). Rubin's Kafka wire-format files need the schema
of their id: ``--schema-dir`` / ``--schema-registry`` (or the optional lsst-alert-packet package).
Output: one JSON line (or CSV row) per alert with per-modality and fused probabilities, the top class, the
modalities used, the trust fields (``prediction_set``, ``abstain``, ``ood``, ``ood_reasons``; from trust.json
next to the models), ``errors`` (failures) and ``notes``; a corrupt file or packet becomes an error record and
the run goes on. The summary on stderr gives the shares abstained and out of distribution.
A missing input path is one more error record. Exit code: 0 when every alert was classified, 1 when any
input item could not be classified, 2 on usage errors (bad options, unusable --models or --spectra).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from applecider_core.engines import DEFAULT_THREADS, ENGINES, EngineError, set_torch_threads
from applecider_core.pretrained import PretrainedError
from applecider_data import WireSchemas, iter_packets

from .classifier import Classifier
from .fusion import FusionError
from .inputs import read_spectra_table
from .report import format_size, write_report

logger = logging.getLogger(__name__)


class _Writer:
    """JSON lines or CSV (flattened probability columns) to a file or stdout."""

    def __init__(self, path: str | None, fmt: str, fused_classes: Sequence[str]) -> None:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.stream = open(path, "w", newline="") if path else sys.stdout
        self.fmt = fmt
        self.fused_classes = list(fused_classes)
        self._csv: csv.DictWriter | None = None

    def write(self, record: dict) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(record) + "\n")
            return
        row = {k: record[k] for k in ("objectId", "candid", "mjd", "survey", "top_class", "score")}
        row["modalities"] = ";".join(record["modalities"])
        row.update({f"fused_{c}": (record["fused"] or {}).get(c) for c in self.fused_classes})
        for modality, probs in record["probabilities"].items():
            row.update({f"{modality}_{c}": p for c, p in probs.items()})
        row["prediction_set"] = None if record["prediction_set"] is None else ";".join(record["prediction_set"])
        row.update(abstain=record["abstain"], ood=record["ood"], ood_reasons=" | ".join(record["ood_reasons"]))
        row["errors"] = " | ".join(record["errors"])
        row["notes"] = " | ".join(record["notes"])
        row["skipped"] = " | ".join(f"{m}: {reason}" for m, reason in record["skipped"].items())
        if self._csv is None:
            self._csv = csv.DictWriter(self.stream, fieldnames=list(row), extrasaction="ignore")
            self._csv.writeheader()
        self._csv.writerow(row)

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()


def _table(records: Sequence[dict], total: int) -> str:
    lines = [f"{'object':14} {'candid':>20} {'top class':9} {'prob':>5}  modalities", "-" * 66]
    for record in records:
        if record["top_class"] is None:
            why = (f"error: {'; '.join(record['errors'])}" if record["errors"] else
                   f"skipped ({record['survey']}): {', '.join(record['skipped'])}")
            lines.append(f"{record['objectId']!s:14} {record['candid']!s:>20} {'—':9} {'':>5}  {why[:60]}")
        else:
            lines.append(f"{record['objectId']:14} {record['candid']:>20} {record['top_class']:9} "
                         f"{record['score']:5.2f}  {'+'.join(record['modalities'])}")
    if total > len(records):
        lines.append(f"... {total - len(records)} more (see the output)")
    return "\n".join(lines)


class Tally:
    """Counts over the records written: total, unclassified, abstained, out of distribution, per modality."""

    def __init__(self) -> None:
        self.written = self.failed = self.abstained = self.ood = self.assessed = 0
        self.used: Counter = Counter()  # records each modality contributed to

    def add(self, record: dict) -> None:
        self.written += 1
        self.failed += record["top_class"] is None
        self.used.update(record["modalities"])
        if record["abstain"] is not None:
            self.assessed += 1
            self.abstained += record["abstain"]
            self.ood += record["ood"]

    def trust_line(self) -> str:
        if not self.assessed:
            return "trust not assessed (no trust.json next to the models)"
        return (f"abstained {self.abstained / self.assessed:.1%}, out of distribution {self.ood / self.assessed:.1%} "
                f"of {self.assessed} classified")


def run(paths: Iterable[str], classifier: Classifier, sinks: Sequence[Callable[[dict], object]], spectra: dict,
        batch_size: int, show: int = 20, progress: bool = True, schemas: WireSchemas | None = None,
        records: Iterable[dict] | None = None, overlap: bool = False) -> Tally:
    """Classify everything under ``paths`` (or take ``records`` computed elsewhere, e.g. on Ray), handing each
    record to every sink; returns the tally."""
    shown: list[dict] = []
    tally = Tally()
    bar = tqdm(desc="alerts", unit="alert", disable=not progress, file=sys.stderr)
    if records is None:
        records = classifier.stream(iter_packets(list(paths), schemas), spectra=spectra, batch_size=batch_size,
                                    overlap=overlap)
    for record in records:
        for sink in sinks:
            sink(record)
        tally.add(record)
        if len(shown) < show:
            shown.append(record)
        bar.update(1)
    bar.close()
    print(_table(shown, tally.written), file=sys.stderr)
    return tally


def modality_summary(classifier: Classifier, used: Counter, written: int, spectra: dict) -> str:
    """What entered the fusion: ``photometry 24/24, images 24/24, spectra 3/24 (spectra given for 3 objects)``."""
    parts = []
    for modality in classifier.runners:
        note = ""
        if modality == "spectra":
            note = f" (spectra given for {len(spectra)} objects)" if spectra else " (no --spectra given)"
        if not classifier.fusion.covered(modality):
            note = " (not fused: validated on no class, fusion.json unvalidated)"
        parts.append(f"{modality} {used[modality]}/{written}{note}")
    return "alerts classified with: " + ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider classify", description=__doc__.splitlines()[0])
    parser.add_argument("alerts", nargs="+", help="avro files, directories, .tar.gz nightly tarballs or alert parquet")
    parser.add_argument("--models", default="models", help="directory with photometry/, images/, spectra/ models")
    parser.add_argument("--spectra", help="spectra keyed by objectId (parquet like osc_spectra, or long CSV)")
    parser.add_argument("--out", help="output file (default: stdout)")
    parser.add_argument("--format", choices=("jsonl", "csv"), help="default: from --out's suffix, else jsonl")
    parser.add_argument("--weight", action="append", default=[], metavar="MODALITY=W",
                        help="fusion weight of a modality (default 1, or models/fusion.json), e.g. spectra=2")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--schema-dir", action="append", default=[], metavar="DIR",
                        help="Avro schemas of wire-format messages: <id>.avsc or lsst.v<M>_<m>.alert.avsc files")
    parser.add_argument("--schema-registry", metavar="URL", help="Confluent-compatible schema registry URL")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--engine", default="torch", metavar="ENGINE[,MODALITY=ENGINE...]",
                        help=f"one of {', '.join(ENGINES)} (torch*: saved weights; onnxruntime*: the files of `cider "
                             "export onnx`), optionally per modality (onnxruntime,images=onnxruntime-int8-static); or "
                             "ray: torch on Ray Data actors over alert parquet tables (the [ray] extra)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="CPU threads per engine (default 1: fastest under load; 0 = the library's choice)")
    parser.add_argument("--overlap", action="store_true",
                        help="read and decode the next batches in a thread while the models run (faster on an idle "
                             "multi-core machine, slower under load: see docs/BENCHMARKS.md)")
    parser.add_argument("--report", metavar="HTML", help="also write a self-contained HTML report (see cider report)")
    parser.add_argument("--show", type=int, default=20, help="rows of the summary table printed to stderr")
    parser.add_argument("--ray-address", help="existing Ray cluster (auto, ray://HEAD:10001); default: a local Ray")
    parser.add_argument("--ray-workers", type=int, default=2, help="Ray actors (each loads the models once)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    try:
        set_torch_threads("torch" if args.engine == "ray" else args.engine, args.threads)
    except EngineError as error:
        parser.error(str(error))
    fmt = args.format or ("csv" if args.out and args.out.endswith(".csv") else "jsonl")
    try:
        weights = {k: float(v) for k, v in (item.split("=", 1) for item in args.weight)}
    except ValueError:
        parser.error(f"--weight takes MODALITY=NUMBER, got {args.weight}")
    try:
        local_engine = "torch" if args.engine == "ray" else args.engine
        classifier = Classifier.from_dir(args.models, device=args.device, weights=weights, engine=local_engine,
                                         threads=args.threads)
        spectra = read_spectra_table(args.spectra) if args.spectra else {}
    except (FusionError, PretrainedError, EngineError, OSError, ValueError) as error:
        parser.exit(2, f"cider classify: error: {error}\n")
    writer = _Writer(args.out, fmt, classifier.fusion.classes)
    collected: list[dict] = []  # for --report (a night's records are small next to its packets)
    sinks = [writer.write, *([collected.append] if args.report else [])]
    records = None
    if args.engine == "ray":
        from .backfill import classify_on_ray, parquet_inputs

        try:
            parquet_inputs(args.alerts)
        except ValueError as error:
            parser.exit(2, f"cider classify: error: {error}\n")
        records = classify_on_ray(args.alerts, args.models, spectra, args.batch_size, args.ray_workers,
                                  args.ray_address, args.device, weights, args.threads or 1)  # fmt: skip
    start = time.perf_counter()
    try:
        schemas = WireSchemas(args.schema_dir, args.schema_registry)
        tally = run(args.alerts, classifier, sinks, spectra, args.batch_size, args.show,
                    progress=not args.no_progress, schemas=schemas, records=records, overlap=args.overlap)
    finally:
        writer.close()
    elapsed = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in sorted(classifier.timings.seconds.items()))
    print(f"{tally.written} records ({tally.failed} without a classification) in {elapsed:.1f}s "
          f"[{stages or 'engine ' + args.engine}]"
          + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    print(modality_summary(classifier, tally.used, tally.written, spectra), file=sys.stderr)
    print(tally.trust_line(), file=sys.stderr)
    if args.report:
        size = write_report(collected, args.alerts, args.report)
        print(f"report: {args.report} ({format_size(size)})", file=sys.stderr)
    return 1 if tally.failed else 0
