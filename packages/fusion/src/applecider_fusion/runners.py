"""One runner per modality: records → the package's own preprocessing → batched model logits.

Each runner uses exactly the preprocessing its package trains with (settings and fitted statistics from the
model's preprocessor.json), so inference and training see the same tensors. ``predict`` returns (N, C) logits
with NaN rows for items that could not be used and a per-item error message (None when fine); it never raises
for one bad item.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from applecider_core.pretrained import CONFIG_NAME, PretrainedError, resolve_device
from applecider_core.records import Alert, LightCurve, Spectrum

Batch = dict[str, torch.Tensor]


class ModalityRunner:
    """Base: subclasses set ``name``, list their model classes and implement ``prepare``."""

    name: str = ""

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.class_names = tuple(model.config.class_names)
        self.preprocessor: dict[str, Any] = getattr(model, "preprocessor", {}) or {}
        self.temperature = float(self.preprocessor.get("temperature", 1.0))

    @staticmethod
    def model_classes() -> tuple[type, ...]:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> ModalityRunner:
        """The runner with the model saved in ``directory`` (its class chosen by config.json's model_type)."""
        config_path = Path(directory) / CONFIG_NAME
        if not config_path.is_file():
            raise PretrainedError(f"{directory}: no {CONFIG_NAME}; expected a model directory written by training")
        model_type = json.loads(config_path.read_text()).get("model_type")
        for model_class in cls.model_classes():
            if model_class.config_class.model_type == model_type:
                return cls(model_class.from_pretrained(directory), device)
        known = [m.config_class.model_type for m in cls.model_classes()]
        raise PretrainedError(f"{directory}: model_type {model_type!r} is not a {cls.name} model (one of {known})")

    def prepare(self, items: Sequence[Any]) -> tuple[Batch, list[int], list[str | None]]:
        """Batch for the usable items, their indices, and a per-item error (None when usable)."""
        raise NotImplementedError

    @torch.inference_mode()
    def predict(self, items: Sequence[Any], timings: Any = None) -> tuple[np.ndarray, list[str | None]]:
        start = time.perf_counter()
        logits = np.full((len(items), len(self.class_names)), np.nan)
        batch, usable, errors = self.prepare(items) if items else ({}, [], [])
        if timings is not None:
            start = timings.add(f"{self.name}.preprocess", start)
        if usable:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            logits[usable] = self.model(**batch).logits.float().cpu().numpy()
        if timings is not None:
            timings.add(f"{self.name}.model", start)
        return logits, errors


class PhotometryRunner(ModalityRunner):
    """Light curves → event tokens normalised with the training statistics → [CLS]-Transformer."""

    name = "photometry"

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        super().__init__(model, device)
        from applecider_photometry.features import from_preprocessor

        from_preprocessor(self.preprocessor)  # a model saved without its feature statistics fails at load


    @staticmethod
    def model_classes() -> tuple[type, ...]:
        from applecider_photometry import PhotometryClassifier

        return (PhotometryClassifier,)

    def prepare(self, items: Sequence[LightCurve]) -> tuple[Batch, list[int], list[str | None]]:
        from applecider_photometry import prepare_light_curves

        return prepare_light_curves(self.model, items)


class ImagesRunner(ModalityRunner):
    """Alerts (cutout triplet + metadata vector) → AstroMiNN or the BTSbot baseline, NHWC on CPU."""

    name = "images"

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        from applecider_images.inference import prepare_for_inference

        super().__init__(prepare_for_inference(model, channels_last=True), device)

    @staticmethod
    def model_classes() -> tuple[type, ...]:
        from applecider_images import MODEL_CLASSES

        return tuple(MODEL_CLASSES.values())

    def prepare(self, items: Sequence[Alert]) -> tuple[Batch, list[int], list[str | None]]:
        from applecider_images.inference import alert_inputs

        usable = [i for i, alert in enumerate(items) if alert.cutouts is not None]
        errors = [None if alert.cutouts is not None else "no usable cutouts" for alert in items]
        if not usable:
            return {}, [], errors
        batch = alert_inputs([items[i] for i in usable], self.model.config, self.preprocessor)
        batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        return batch, usable, errors


class SpectraRunner(ModalityRunner):
    """Spectra → rest-frame resampling and normalisation as in training → SpectraNet (or a baseline)."""

    name = "spectra"

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        if getattr(model.config, "task", "classification") != "classification":
            raise PretrainedError(f"spectra model has task {model.config.task!r}; fusion needs a classifier")
        super().__init__(model, device)
        from applecider_spectra import model_preprocess_config

        self.preprocess = model_preprocess_config(model)

    @staticmethod
    def model_classes() -> tuple[type, ...]:
        from applecider_spectra import ARCHITECTURES

        return tuple(model_class for model_class, _ in ARCHITECTURES.values())

    def prepare(self, items: Sequence[Spectrum]) -> tuple[Batch, list[int], list[str | None]]:
        from applecider_spectra import preprocess_batch

        batch = preprocess_batch(items, self.preprocess)
        errors: list[str | None] = [None] * len(items)
        rejected = sorted(set(range(len(items))) - set(batch.indices))  # batch.errors follow the input order
        for i, error in zip(rejected, batch.errors):
            errors[i] = str(error)
        return ({"flux": batch.flux} if batch.indices else {}), batch.indices, errors


RUNNER_TYPES: dict[str, type[ModalityRunner]] = {
    runner.name: runner for runner in (PhotometryRunner, ImagesRunner, SpectraRunner)
}


def load_runner(modality: str, directory: str | Path, device: str = "cpu") -> ModalityRunner:
    """The runner of ``modality`` with the model saved in ``directory``."""
    if modality not in RUNNER_TYPES:
        raise PretrainedError(f"unknown modality {modality!r}; one of {sorted(RUNNER_TYPES)}")
    return RUNNER_TYPES[modality].load(directory, device)


__all__ = ["RUNNER_TYPES", "ImagesRunner", "ModalityRunner", "PhotometryRunner", "SpectraRunner", "load_runner"]
