"""Fused inference on alert packets: the Python API brokers call (``Classifier.from_dir(DIR).classify(packets)``).

Per batch of alerts: convert packets once (``applecider_data.packet_to_alert``), extend each object's light
curve with what earlier alerts of the same object showed (alerts are processed per object in time order, and a
bounded LRU cache keeps the histories), run photometry and images/metadata batched, attach the object's spectra
(probabilities averaged over its spectra, computed once per object), fuse, and return one record per alert.
A packet or modality that fails becomes an ``errors`` entry of that alert; the batch goes on. What is worth
knowing but failed nothing (a padded stamp, a position altered by the source repository, a packet without
cutouts) is a ``notes`` entry. Each record says the alert's ``survey`` and, under ``skipped``, the models not
run on it and why (a model trained on one survey is not given inputs of another, see
``ModalityRunner.skip_reason``). The trust fields (``prediction_set``, ``abstain``, ``ood``, ``ood_reasons``)
come from ``trust.json`` next to the models (``applecider_fusion.trust``); without it they are null and a note
says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any

import numpy as np

from applecider_core.engines import DEFAULT_THREADS
from applecider_core.pretrained import resolve_device
from applecider_core.records import METADATA_FEATURES, Alert, LightCurve, Spectrum
from applecider_data import AlertParseError, PacketError, merge_light_curves, packet_to_alert

from .fusion import MODALITIES, FusionError, ProbabilityFusion
from .runners import (
    RUNNER_TYPES,
    ModalityRunner,
    SpectralSystems,
    engine_choice,
    load_runner,
)
from .trust import NO_TRUST_NOTE, TrustSettings, read_trust_settings

FUSION_SETTINGS_NAME = "fusion.json"  # per-modality weights, temperatures and biases next to the model folders
FUSION_SETTINGS_KEYS = ("weights", "temperatures", "biases", "unvalidated", "fitted_on")
PREFETCH_BATCHES = 2  # batches read and decoded ahead of the models (Classifier.stream(overlap=True))


@dataclass
class Timings:
    """Seconds spent per stage, accumulated over calls."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    alerts: int = 0

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


class HistoryCache:
    """Per-object photometry seen so far in the stream (LRU, at most ``max_objects`` objects)."""

    def __init__(self, max_objects: int = 100_000) -> None:
        self.max_objects = max_objects
        self._curves: OrderedDict[str, LightCurve] = OrderedDict()

    def extend(self, light_curve: LightCurve) -> LightCurve:
        """Union of the cached and the new points (de-duplicated as within one packet), cached and returned."""
        previous = self._curves.pop(light_curve.object_id, None)
        merged = light_curve if previous is None else merge_light_curves(previous, light_curve)
        self._curves[light_curve.object_id] = merged
        while len(self._curves) > self.max_objects:
            self._curves.popitem(last=False)
        return merged


def _probabilities_dict(class_names: Sequence[str], probs: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(class_names, probs)}


class Classifier:
    """Runs the modality models on alerts and fuses their probabilities."""

    def __init__(self, runners: Mapping[str, ModalityRunner], fusion: ProbabilityFusion,
                 history_cache_size: int = 100_000, trust: TrustSettings | None = None,
                 spectral_systems: SpectralSystems | None = None) -> None:
        if not runners:
            raise FusionError("no modality model given")
        if trust is not None and tuple(trust.classes) != tuple(fusion.classes):
            raise FusionError(f"trust settings are for classes {trust.classes}, the fusion has {list(fusion.classes)}")
        self.runners = dict(runners)
        self.fusion = fusion
        self.trust = trust
        self.history = HistoryCache(history_cache_size)
        self.timings = Timings()
        self._spectra_cache: OrderedDict[tuple, tuple[np.ndarray | None, str | None]] = OrderedDict()
        self.spectral_systems = spectral_systems  # SNIascore / CCSNscore: extra record entries, not fused
        self._systems_cache: OrderedDict[tuple, tuple[dict, list[str]]] = OrderedDict()

    @classmethod
    def from_dir(cls, models_dir: str | Path, device: str = "cpu", weights: Mapping[str, float] | None = None,
                 modalities: Sequence[str] = MODALITIES, engine: str | Mapping[str, str] = "torch",
                 threads: int | None = DEFAULT_THREADS) -> Classifier:
        """Load ``models_dir/{photometry,images,spectra}`` (each written by save_pretrained); absent ones are skipped.
        ``models_dir/sniascore`` and ``models_dir/ccsnscore`` (seed spectral systems) add their own record entries.

        ``engine``: ``torch`` or ``torch-bf16`` (the saved weights), ``onnxruntime``, ``onnxruntime-int8`` or
        ``onnxruntime-int8-static`` (the ONNX files that ``cider export onnx`` wrote in each folder), for every
        modality, or per modality: ``"onnxruntime,images=onnxruntime-int8-static"`` or a mapping
        {modality: engine} (``runners.engine_choice``); ``threads``: ONNX Runtime intra-op threads per session
        (torch threads are the process's, see ``cider classify --threads``).

        Fusion settings: each model's own temperature (its preprocessor.json), replaced by the per-modality
        weights, temperatures and per-class biases of ``models_dir/fusion.json`` when present (written by
        ``cider evaluate``), then by ``weights`` given here; fusion.json's ``unvalidated`` classes are those a
        model does not speak for at fusion. Trust settings: ``models_dir/trust.json`` when present.
        """
        models_dir = Path(models_dir)
        if str(device) != "cpu":  # an unusable device fails before any model is read (cpu needs no torch)
            resolve_device(device)
        present = [m for m in modalities if (models_dir / m).is_dir()]
        engines = engine_choice(engine, present)
        runners = {m: load_runner(m, models_dir / m, device, engines[m], threads) for m in present}
        if not runners:
            raise FusionError(
                f"{models_dir}: no model directories; expected some of {[str(models_dir / m) for m in RUNNER_TYPES]}"
            )
        settings = read_fusion_settings(models_dir)
        temperatures = {m: r.temperature for m, r in runners.items()}
        temperatures.update({m: t for m, t in settings.get("temperatures", {}).items() if m in runners})
        chosen = {m: w for m, w in settings.get("weights", {}).items() if m in runners} | dict(weights or {})
        biases = {m: b for m, b in settings.get("biases", {}).items() if m in runners}
        unvalidated = {m: c for m, c in settings.get("unvalidated", {}).items() if m in runners}
        fusion = ProbabilityFusion({m: r.class_names for m, r in runners.items()}, weights=chosen,
                                   temperatures=temperatures, biases=biases, unvalidated=unvalidated)
        return cls(runners, fusion, trust=read_trust_settings(models_dir),
                   spectral_systems=SpectralSystems.load(models_dir))

    # ---- public API --------------------------------------------------------------------------------------
    def classify(self, packets: Iterable[Mapping[str, Any] | PacketError],
                 spectra: Mapping[str, Sequence[Spectrum]] | None = None, batch_size: int = 256,
                 overlap: bool = False) -> list[dict]:
        """Records for decoded packets held in memory (dicts as fastavro yields them)."""
        return list(self.stream(packets, spectra=spectra, batch_size=batch_size, overlap=overlap))

    def stream(self, items: Iterable[Mapping[str, Any] | Alert | PacketError],
               spectra: Mapping[str, Sequence[Spectrum]] | None = None, batch_size: int = 256,
               overlap: bool = False) -> Iterator[dict]:
        """One record per input item (a packet, or an Alert ``packet_to_alert`` made of one), batch by batch
        (bounded memory).

        ``overlap``: read and decode the next batches (at most ``PREFETCH_BATCHES``) in a background thread
        while the models run on this one (ONNX Runtime and torch release the GIL while they compute). The
        records are the same either way; inputs of one batch or less are decoded in this thread. Off by
        default: it won at batch 256 on a partly loaded box but lost beside a busy process and at batch 1
        (the threads contend for the GIL and the cores; benchmarks/classify_throughput.py --overlap on off,
        docs/BENCHMARKS.md).
        """
        decoded = (self._decode_timed(batch) for batch in _batches(items, batch_size))
        if overlap and not (isinstance(items, Sized) and len(items) <= batch_size):
            decoded = _prefetched(decoded, PREFETCH_BATCHES)
        for count, alerts, failures in decoded:
            yield from self._classify_decoded(count, alerts, failures, spectra or {})

    # ---- internals ---------------------------------------------------------------------------------------
    def _decode_timed(self, items: Sequence[Mapping[str, Any] | PacketError]) -> tuple[int, list[Alert], list[dict]]:
        start = time.perf_counter()
        alerts, failures = self._decode(items)
        self.timings.add("decode", start)
        return len(items), alerts, failures

    def _decode(self, items: Sequence[Mapping[str, Any] | PacketError]) -> tuple[list[Alert], list[dict]]:
        alerts, failures = [], []
        for item in items:
            if isinstance(item, PacketError):
                failures.append(_error_record(None, None, [str(item)]))
                continue
            if isinstance(item, Alert):  # converted already (cider stream converts on its decode process)
                alerts.append(item)
                continue
            try:
                alerts.append(packet_to_alert(item, with_cutouts="images" in self.runners))
            except AlertParseError as error:
                object_id, candid, survey = _packet_identity(item)
                failures.append(_error_record(object_id, candid, [f"packet: {error}"]) | {"survey": survey})
        return alerts, failures

    def object_spectra_logits(self, object_id: str, spectra: Sequence[Spectrum]) -> tuple[np.ndarray | None, str | None]:
        """log of the object's mean spectral probabilities (cached per object and set of spectra)."""
        key = (object_id, *((s.spectrum_id, s.wavelength_aa.size, float(s.redshift)) for s in spectra))
        if key in self._spectra_cache:
            self._spectra_cache.move_to_end(key)
            return self._spectra_cache[key]
        runner = self.runners["spectra"]
        logits, errors = runner.predict(list(spectra), self.timings)
        good = ~np.isnan(logits).any(axis=1)
        if good.any():
            probs = np.exp(logits[good] - logits[good].max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            result = (np.log(np.clip(probs.mean(axis=0), 1e-12, None)), None)
        else:
            result = (None, "; ".join(e for e in errors if e) or "no usable spectrum")
        self._spectra_cache[key] = result
        if len(self._spectra_cache) > self.history.max_objects:
            self._spectra_cache.popitem(last=False)
        return result

    def _classify_decoded(self, count: int, alerts: list[Alert], failures: list[dict],
                          spectra: Mapping[str, Sequence[Spectrum]]) -> list[dict]:
        """Records of one batch of ``count`` input items, decoded into ``alerts`` and ``failures``."""
        alerts.sort(key=lambda a: (a.object_id, a.mjd))
        if "photometry" in self.runners:
            for alert in alerts:
                alert.light_curve = _upto(self.history.extend(alert.light_curve), alert.mjd)
        n = len(alerts)
        logits: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        errors: list[list[str]] = [[] for _ in alerts]
        notes: list[list[str]] = [list(a.problems) for a in alerts]
        ood_inputs: list[list[str]] = [[] for _ in alerts]  # the runners' own OOD reasons (an earlier episode)
        skipped: list[dict[str, str]] = [{} for _ in alerts]
        for modality in ("photometry", "images"):
            if modality not in self.runners or not n:
                continue
            runner = self.runners[modality]
            inputs = [a.light_curve for a in alerts] if modality == "photometry" else alerts
            reasons = [runner.skip_reason(item) for item in inputs]
            run = [i for i, reason in enumerate(reasons) if reason is None]
            values = np.full((n, len(runner.class_names)), np.nan)
            if run:
                values[run], item_errors = runner.predict([inputs[i] for i in run], self.timings)
                for i, message in zip(run, item_errors):
                    note = runner.history_note(inputs[i]) if modality == "photometry" and not message else None
                    if note:
                        notes[i].append(note)
                        ood_inputs[i].append(note)
                    if message and modality == "images":
                        _file_stamp_problems(message, notes[i], errors[i])
                    elif message:
                        errors[i].append(f"{modality}: {message}")
            for i, reason in enumerate(reasons):
                if reason is not None:
                    skipped[i][modality] = reason
            logits[modality], present[modality] = values, ~np.isnan(values).any(axis=1)
        if "spectra" in self.runners and n:
            runner = self.runners["spectra"]
            values = np.full((n, len(runner.class_names)), np.nan)
            for i, alert in enumerate(alerts):
                object_spectra = spectra.get(alert.object_id)
                if not object_spectra:
                    continue
                object_logits, message = self.object_spectra_logits(alert.object_id, object_spectra)
                if object_logits is None:
                    errors[i].append(f"spectra: {message}")
                else:
                    values[i] = object_logits
            logits["spectra"], present["spectra"] = values, ~np.isnan(values).any(axis=1)
        systems = [self._systems_for(a, spectra.get(a.object_id), errors[i]) for i, a in enumerate(alerts)]
        start = time.perf_counter()
        fused = self.fusion.fuse({m: np.nan_to_num(v) for m, v in logits.items()}, present) if n else np.zeros((0, 0))
        self.timings.add("fusion", start)
        self.timings.alerts += count
        records = [self._record(a, i, logits, present, fused, errors[i], notes[i], skipped[i], ood_inputs[i])
                   | systems[i] for i, a in enumerate(alerts)]
        return records + failures

    def _systems_for(self, alert: Alert, object_spectra: Sequence[Spectrum] | None, errors: list[str]) -> dict:
        """SNIascore / CCSNscore entries of one alert's object (empty without systems or spectra)."""
        if self.spectral_systems is None or not object_spectra:
            return {}
        key = (alert.object_id, len(alert.light_curve), *(s.spectrum_id for s in object_spectra))
        if key not in self._systems_cache:  # MC dropout is costly: once per object, spectra and photometry
            start = time.perf_counter()
            self._systems_cache[key] = self.spectral_systems.predict(object_spectra, alert.light_curve)
            self.timings.add("spectral_systems", start)
            if len(self._systems_cache) > self.history.max_objects:
                self._systems_cache.popitem(last=False)
        entries, messages = self._systems_cache[key]
        errors.extend(messages)
        return entries

    def _record(self, alert: Alert, i: int, logits: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray],
                fused: np.ndarray, errors: list[str], notes: list[str], skipped: dict[str, str],
                ood_inputs: list[str]) -> dict:
        ran = [m for m in logits if present[m][i]]
        used = [m for m in ran if self.fusion.covered(m)]  # a model validated on no class does not enter the fusion
        per_modality = {}  # each model's calibrated probabilities (with its temperature and bias)
        for m in ran:
            probs = self.fusion.member_probabilities(m, logits[m][i : i + 1])[0]
            per_modality[m] = _probabilities_dict(self.runners[m].class_names, probs)
        record = _error_record(alert.object_id, alert.candid, errors)
        record.update(mjd=round(float(alert.mjd), 6), survey=alert.survey, modalities=used, probabilities=per_modality,
                      skipped=skipped, notes=notes)
        if used:
            record["fused"] = _probabilities_dict(self.fusion.classes, fused[i])
            best = int(np.argmax(fused[i]))
            record.update(top_class=self.fusion.classes[best], score=round(float(fused[i, best]), 6))
            record.update(self._trust_fields(alert, {m: logits[m][i] for m in ran}, fused[i], notes, ood_inputs))
        return record

    def _trust_fields(self, alert: Alert, logits: Mapping[str, np.ndarray], fused: np.ndarray,
                      notes: list[str], ood_inputs: list[str]) -> dict:
        """prediction_set, abstain, ood, ood_reasons of one record: the one place trust settings are applied."""
        if self.trust is None:
            notes.append(NO_TRUST_NOTE)
            return {}
        detections = int(alert.light_curve.is_detection.sum()) if "photometry" in logits else None
        metadata = dict(zip(METADATA_FEATURES, map(float, alert.metadata))) if "images" in logits else None
        fields = self.trust.assess(fused, logits, self.fusion.temperatures, detections, metadata, _age_days(alert),
                                   ood_inputs)
        notes += fields.pop("notes")
        return fields


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prefetched(source: Iterator[Any], depth: int) -> Iterator[Any]:
    """``source``'s values in order, computed up to ``depth`` ahead in a daemon thread; its exceptions are
    raised here, and closing this generator stops the thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for value in source:
                while not stop.is_set():
                    try:
                        queue.put((value, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((done, None))
        except BaseException as error:  # handed to the consumer, raised there
            queue.put((done, error))

    thread = threading.Thread(target=produce, name="applecider-decode", daemon=True)
    thread.start()
    try:
        while True:
            value, error = queue.get()
            if error is not None:
                raise error
            if value is done:
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                queue.get(timeout=0.1)
            except Empty:
                pass


def read_fusion_settings(models_dir: Path) -> dict[str, Any]:
    """``models_dir/fusion.json`` ({"weights": {...}, "temperatures": {...}, "biases": {...}, "unvalidated":
    {modality: [fusion classes]}}) or {} when absent."""
    path = Path(models_dir) / FUSION_SETTINGS_NAME
    if not path.is_file():
        return {}
    settings = json.loads(path.read_text())
    unknown = sorted(set(settings) - set(FUSION_SETTINGS_KEYS))
    if unknown:
        raise FusionError(f"{path}: unknown keys {unknown}; allowed: {', '.join(FUSION_SETTINGS_KEYS)}")
    return settings


def _upto(light_curve: LightCurve, mjd: float) -> LightCurve:
    """Points up to the alert's epoch: later alerts of the object must not leak into an earlier one."""
    return light_curve.select(light_curve.mjd <= mjd + 1e-6)


def _age_days(alert: Alert) -> float:
    """Days since the first detection known: the packet's ``age_days`` or the history's earliest detection."""
    epochs = [alert.mjd - alert.metadata[METADATA_FEATURES.index("age_days")]]
    epochs += list(alert.light_curve.mjd[alert.light_curve.is_detection])
    finite = [e for e in epochs if np.isfinite(e)]
    return float(alert.mjd - min(finite)) if finite else float("nan")


def _file_stamp_problems(message: str, notes: list[str], errors: list[str]) -> None:
    """An images failure: a packet without stamps is a note (nothing failed); unusable stamps are an error."""
    stamps = [n for n in notes if n.startswith("cutout")]
    if stamps and all(n.endswith(": missing") for n in stamps):
        notes[:] = [n for n in notes if n not in stamps] + ["images: the packet has no cutouts"]
        return
    notes[:] = [n for n in notes if n not in stamps]
    errors.append(f"images: {message}" + (f" ({'; '.join(stamps)})" if stamps else ""))


def _packet_identity(packet: Mapping[str, Any]) -> tuple[Any, Any, str | None]:
    """(objectId, candid, survey) of a packet that failed to convert, as far as it says them."""
    source = packet.get("diaSource")
    if isinstance(source, Mapping):
        object_id = source.get("diaObjectId")
        return (str(object_id) if object_id else None), packet.get("diaSourceId", source.get("diaSourceId")), "lsst"
    return packet.get("objectId"), packet.get("candid"), "ztf" if "candidate" in packet else None


def _error_record(object_id: Any, candid: Any, errors: list[str]) -> dict:
    """A record with every key of the output contract; trust fields are null until assessed."""
    integer = isinstance(candid, (int, np.integer)) and not isinstance(candid, bool)
    return {
        "objectId": None if object_id is None else str(object_id), "candid": int(candid) if integer else None, "mjd": None, "survey": None,
        "modalities": [], "probabilities": {}, "fused": None, "top_class": None, "score": None, "errors": errors,
        "skipped": {}, "prediction_set": None, "abstain": None, "ood": None, "ood_reasons": [], "notes": [],
    }
