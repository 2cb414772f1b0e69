"""One runner per modality: records → the package's own preprocessing → an engine → batched logits.

Each runner uses exactly the preprocessing its package trains with (settings and fitted statistics from the
model's preprocessor.json), so inference and training see the same tensors. The model runs through an
engine (``applecider_core.engines``): ``torch`` (and ``torch-bf16``) runs the package's inference graph module,
``onnxruntime`` (and its int8 variants) the same graph exported by ``cider export onnx``; the runner prepares
the same inputs for every engine, so records never depend on the engine. Each modality may use its own engine
(``engine_choice``). ``predict`` returns (N, C) logits with NaN rows
for items that could not be used and a per-item error message (None when fine); it never raises for one
bad item.

A model declares the survey it was trained on (``survey`` in its config.json, ZTF when absent); ``skip_reason``
says why an input of another survey is not given to it (the classifier records that under ``skipped``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from applecider_core.config import from_dict
from applecider_core.engines import (
    DEFAULT_THREADS,
    TORCH_ENGINES,
    EngineError,
    GraphSpec,
    OnnxEngine,
    TorchEngine,
    check_engine,
    onnx_path,
    parse_engines,
)
from applecider_core.pretrained import CONFIG_NAME, PretrainedError
from applecider_core.records import CUTOUT_SIZE, Alert, LightCurve, Spectrum

Inputs = dict[str, np.ndarray]
Engine = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class ModalityRunner:
    """Base: subclasses set ``name``, list their model classes and implement ``graph`` and ``prepare``."""

    name: str = ""

    def __init__(self, config: Any, preprocessor: Mapping[str, Any], engine: Engine) -> None:
        self.config = config
        self.preprocessor: dict[str, Any] = dict(preprocessor or {})
        self.engine = engine
        self.class_names = tuple(config.class_names)
        self.temperature = float(self.preprocessor.get("temperature", 1.0))
        self.survey: str | None = getattr(config, "survey", None)  # None: inputs of any survey

    def skip_reason(self, item: Any) -> str | None:
        """Why ``item`` is outside what the model was trained on (None: run it). Spectra: never skipped."""
        return None

    @staticmethod
    def model_classes() -> tuple[type, ...]:
        """The torch model classes (imported only for the torch engine)."""
        raise NotImplementedError

    @staticmethod
    def config_classes() -> dict[str, type]:
        """model_type → config class (no torch import)."""
        raise NotImplementedError

    @staticmethod
    def graph(model: Any, for_export: bool = False) -> GraphSpec:
        """The package's inference graph of ``model`` (the module the torch engine runs and ONNX exports)."""
        raise NotImplementedError

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu", engine: str = "torch",
             threads: int | None = DEFAULT_THREADS) -> ModalityRunner:
        """The runner of the model in ``directory``: a ``save_pretrained`` folder (torch, torch-bf16) or one
        holding the ONNX files written by ``cider export onnx`` (onnxruntime…; their metadata carries the config)."""
        if check_engine(engine) not in TORCH_ENGINES:
            onnx = OnnxEngine(onnx_path(directory, engine), device, threads)
            meta = onnx.metadata
            if meta.get("modality") != cls.name:
                raise PretrainedError(f"{directory}: the ONNX model is a {meta.get('modality')!r} model, not {cls.name}")
            config = cls._config_class(directory, meta["model_type"])
            return cls(from_dict(config, meta["config"]), meta.get("preprocessor", {}), onnx)
        model = cls.load_model(directory)
        spec = cls.graph(model)
        torch_engine = TorchEngine(spec.module, spec.input_names, device, bf16=engine == "torch-bf16")
        return cls(model.config, model.preprocessor, torch_engine)

    @classmethod
    def load_model(cls, directory: str | Path) -> Any:
        """The torch model saved in ``directory`` (its class chosen by config.json's model_type)."""
        config_path = Path(directory) / CONFIG_NAME
        if not config_path.is_file():
            raise PretrainedError(f"{directory}: no {CONFIG_NAME}; expected a model directory written by training")
        model_type = json.loads(config_path.read_text()).get("model_type")
        cls._config_class(directory, model_type)
        model = next(m for m in cls.model_classes() if m.config_class.model_type == model_type)
        return model.from_pretrained(directory)

    @classmethod
    def _config_class(cls, directory: str | Path, model_type: str | None) -> type:
        known = cls.config_classes()
        if model_type not in known:
            raise PretrainedError(f"{directory}: model_type {model_type!r} is not a {cls.name} model (one of {list(known)})")
        return known[model_type]

    def prepare(self, items: Sequence[Any]) -> tuple[Inputs, list[int], list[str | None]]:
        """Engine inputs for the usable items, their indices, and a per-item error (None when usable)."""
        raise NotImplementedError

    def run(self, inputs: Inputs) -> np.ndarray:
        """(N, C) logits of prepared inputs (the engine on the whole batch; photometry groups by length)."""
        return self.engine(inputs)

    def predict(self, items: Sequence[Any], timings: Any = None) -> tuple[np.ndarray, list[str | None]]:
        start = time.perf_counter()
        logits = np.full((len(items), len(self.class_names)), np.nan)
        inputs, usable, errors = self.prepare(items) if items else ({}, [], [])
        if timings is not None:
            start = timings.add(f"{self.name}.preprocess", start)
        if usable:
            logits[usable] = self.run(inputs)
        if timings is not None:
            timings.add(f"{self.name}.model", start)
        return logits, errors


class PhotometryRunner(ModalityRunner):
    """Light curves → event tokens normalised with the training statistics → [CLS]-Transformer."""

    name = "photometry"

    def __init__(self, config: Any, preprocessor: Mapping[str, Any], engine: Engine) -> None:
        super().__init__(config, preprocessor, engine)
        from applecider_photometry.features import from_preprocessor

        self.feature_config, self.stats = from_preprocessor(self.preprocessor)

    @staticmethod
    def model_classes() -> tuple[type, ...]:
        from applecider_photometry import PhotometryClassifier

        return (PhotometryClassifier,)

    @staticmethod
    def config_classes() -> dict[str, type]:
        from applecider_photometry import PhotometryConfig

        return {PhotometryConfig.model_type: PhotometryConfig}

    @staticmethod
    def graph(model: Any, for_export: bool = False) -> GraphSpec:
        from applecider_photometry.export import inference_graph

        return inference_graph(model)

    def skip_reason(self, item: LightCurve) -> str | None:
        """Light curves of another survey are skipped: the ZTF model does not transfer to Rubin (measured in
        benchmarks/rubin_transfer.py: every Rubin curve comes out 'SN Ia' with more confidence than ZTF ones)."""
        survey = item.survey
        if survey is None or survey == self.survey:
            return None
        bands = sorted(set(item.band.tolist()))
        return (f"model trained on {self.survey} light curves (bands {list(self.config.bands)}); "
                f"this one is {survey} ({bands}): not run")

    def history_note(self, light_curve: LightCurve) -> str | None:
        """Why this curve's Δt does not count from the object's first detection (an earlier episode), or None."""
        from applecider_photometry.features import NEW_EPISODE_GAP_DAYS, history_restart_days

        gap = history_restart_days(light_curve, self.feature_config)
        if gap is None:
            return None
        return (f"photometry: first detection {gap:,.0f} d before this light curve's first point (more than "
                f"{NEW_EPISODE_GAP_DAYS:g} d: an earlier episode); Δt counted from the first point")

    def run(self, inputs: Inputs) -> np.ndarray:
        """The engine on groups of similar length, each cut to its own longest curve.

        Padded events cost as much as real ones, and real alerts' curves are short and uneven (median 1 event,
        batches of 256 padded to 28–58), so each curve is run with others of its power-of-two length bucket:
        at most 2× its own length of tokens. The padding mask keeps each curve's logits what they are in any
        batch (tests/fusion/test_runners.py compares).
        """
        lengths = inputs["mask"].sum(axis=1)
        logits = np.empty((len(lengths), len(self.class_names)))
        buckets = np.ceil(np.log2(np.maximum(lengths, 1))).astype(int)  # 1 | 2 | 3–4 | 5–8 | …
        for bucket in np.unique(buckets):
            rows = np.flatnonzero(buckets == bucket)
            length = max(int(lengths[rows].max()), 1)
            logits[rows] = self.engine({name: value[rows, :length] for name, value in inputs.items()})
        return logits

    def prepare(self, items: Sequence[LightCurve]) -> tuple[Inputs, list[int], list[str | None]]:
        from applecider_photometry import NoDetectionsError, build_events, pad_events

        prepared, usable, errors = [], [], [None] * len(items)
        for i, light_curve in enumerate(items):
            try:
                events = build_events(light_curve, self.feature_config)
            except NoDetectionsError as error:
                errors[i] = str(error)
                continue
            prepared.append({"events": self.stats.normalise(events.features), "times": events.times_days})
            usable.append(i)
        return (pad_events(prepared) if prepared else {}), usable, errors


class ImagesRunner(ModalityRunner):
    """Alerts → the BOOM inputs (normalised NHWC triplet + raw metadata) → AstroMiNN or the BTSbot baseline."""

    name = "images"

    @staticmethod
    def model_classes() -> tuple[type, ...]:
        from applecider_images import MODEL_CLASSES

        return tuple(MODEL_CLASSES.values())

    @staticmethod
    def config_classes() -> dict[str, type]:
        from applecider_images.configuration import MODEL_CONFIGS

        return dict(MODEL_CONFIGS)

    @staticmethod
    def graph(model: Any, for_export: bool = False) -> GraphSpec:
        from applecider_images.export import inference_graph

        return inference_graph(model)

    def skip_reason(self, item: Alert) -> str | None:
        """Alerts of another survey are skipped: other pixel scale, stamp size and metadata fields."""
        if item.survey == self.survey:
            return None
        config = self.config
        stamps = "no stamps" if item.cutouts is None else (
            "{}×{} stamps at {}″/pixel".format(*item.cutouts.shape, item.cutouts.pixel_scale_arcsec))
        return (f"model trained on {self.survey} alerts ({CUTOUT_SIZE}×{CUTOUT_SIZE} stamps at "
                f"{config.pixel_scale_arcsec}″/pixel, {self.survey} metadata); this {item.survey} alert has "
                f"{stamps} and {item.survey} metadata: not run")

    def prepare(self, items: Sequence[Alert]) -> tuple[Inputs, list[int], list[str | None]]:
        from applecider_images.preprocessing import boom_inputs

        usable = [i for i, alert in enumerate(items) if alert.cutouts is not None]
        errors = [None if alert.cutouts is not None else "no usable cutouts" for alert in items]
        if not usable:
            return {}, [], errors
        return boom_inputs([items[i] for i in usable], self.config), usable, errors


class SpectraRunner(ModalityRunner):
    """Spectra → rest-frame resampling and normalisation as in training → SpectraNet (or a baseline)."""

    name = "spectra"

    def __init__(self, config: Any, preprocessor: Mapping[str, Any], engine: Engine) -> None:
        if getattr(config, "task", "classification") != "classification":
            raise PretrainedError(f"spectra model has task {config.task!r}; fusion needs a classifier")
        super().__init__(config, preprocessor, engine)
        from applecider_spectra import PreprocessConfig

        self.preprocess = PreprocessConfig.from_json(self.preprocessor.get("preprocess", {}))

    @staticmethod
    def model_classes() -> tuple[type, ...]:
        from applecider_spectra import ARCHITECTURES

        return tuple(model_class for model_class, _ in ARCHITECTURES.values())

    @staticmethod
    def config_classes() -> dict[str, type]:
        from applecider_spectra import CONFIGS

        return {config.model_type: config for config in CONFIGS.values()}

    @staticmethod
    def graph(model: Any, for_export: bool = False) -> GraphSpec:
        from applecider_spectra.export import inference_graph

        return inference_graph(model, for_export)

    def prepare(self, items: Sequence[Spectrum]) -> tuple[Inputs, list[int], list[str | None]]:
        from applecider_spectra import preprocess_batch

        batch = preprocess_batch(items, self.preprocess)
        errors: list[str | None] = [None] * len(items)
        rejected = sorted(set(range(len(items))) - set(batch.indices))  # batch.errors follow the input order
        for i, error in zip(rejected, batch.errors):
            errors[i] = str(error)
        return ({"flux": batch.flux} if batch.indices else {}), batch.indices, errors


class SpectralSystems:
    """The seed spectral systems next to the modality models (``DIR/sniascore``, ``DIR/ccsnscore``): per object,
    the latest spectrum each system can use gives the record's ``sniascore`` {score, score_error,
    is_ia_confident, redshift, …} and ``ccsnscore`` {case, layers, scores, type} entries."""

    FOLDERS = ("sniascore", "ccsnscore")

    def __init__(self, systems: dict[str, Any]) -> None:
        self.systems = systems

    @classmethod
    def load(cls, models_dir: str | Path) -> SpectralSystems | None:
        present = [name for name in cls.FOLDERS if (Path(models_dir) / name).is_dir()]
        if not present:  # the systems import torch: only when there are some (the ONNX start-up stays torch-free)
            return None
        from applecider_spectra import CCSNscoreSystem, SNIascoreSystem

        loaders = {"sniascore": SNIascoreSystem.from_dir, "ccsnscore": CCSNscoreSystem.from_dir}
        return cls({name: loaders[name](Path(models_dir) / name) for name in present})

    def predict(self, spectra: Sequence[Spectrum], light_curve: LightCurve | None) -> tuple[dict[str, Any], list[str]]:
        """({system: result of the object's latest usable spectrum, with its spectrum_id}, error messages)."""
        order = sorted(range(len(spectra)), key=lambda i: -np.nan_to_num(spectra[i].mjd, nan=-np.inf))
        ordered = [spectra[i] for i in order]
        out, errors = {}, []
        for name, system in self.systems.items():
            results = system.predict(ordered) if name == "sniascore" else system.predict(ordered, light_curve)
            usable = [(s, r) for s, r in zip(ordered, results) if isinstance(r, dict)]
            if usable:
                out[name] = {**usable[0][1], "spectrum_id": usable[0][0].spectrum_id}
            else:
                errors.append(f"{name}: " + ("; ".join(r for r in results if r) or "no usable spectrum"))
        return out, errors


RUNNER_TYPES: dict[str, type[ModalityRunner]] = {
    runner.name: runner for runner in (PhotometryRunner, ImagesRunner, SpectraRunner)
}


def engine_choice(engine: str | Mapping[str, str], modalities: Sequence[str]) -> dict[str, str]:
    """The engine of each of ``modalities``: ``engine`` is one name for all, ``"NAME,images=NAME2"`` or a mapping
    (``applecider_core.engines.parse_engines``); EngineError names an unknown engine or modality."""
    default, overrides = parse_engines(engine)
    unknown = sorted(set(overrides) - set(RUNNER_TYPES))
    if unknown:
        raise EngineError(f"engine choice names unknown modalities {unknown}; modalities: {sorted(RUNNER_TYPES)}")
    return {modality: overrides.get(modality, default) for modality in modalities}


def load_runner(modality: str, directory: str | Path, device: str = "cpu", engine: str = "torch",
                threads: int | None = DEFAULT_THREADS) -> ModalityRunner:
    """The runner of ``modality`` with the model saved (or exported) in ``directory``."""
    if modality not in RUNNER_TYPES:
        raise PretrainedError(f"unknown modality {modality!r}; one of {sorted(RUNNER_TYPES)}")
    return RUNNER_TYPES[modality].load(directory, device, engine, threads)


__all__ = [
    "RUNNER_TYPES", "ImagesRunner", "ModalityRunner", "PhotometryRunner", "SpectraRunner", "SpectralSystems",
    "engine_choice", "load_runner",
]  # fmt: skip
