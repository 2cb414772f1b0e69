"""Torch datasets over the shared dataset's alert view, augmentation, label encoding and class balancing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from applecider_core.dataset import AlertTable
from applecider_core.losses import class_balanced_weights
from applecider_core.records import CUTOUT_SIZE
from applecider_core.taxonomy import FINE, FUSION, TAXONOMIES, TaxonomyError

from .preprocessing import MetadataPreprocessor, preprocess_cutouts

logger = logging.getLogger(__name__)

BALANCING = ("weights", "oversample", "none")


def encode_labels(labels: Sequence[str | None], class_names: Sequence[str]) -> np.ndarray:
    """Class indices (int64, -1 outside) of normalised labels for a model predicting ``class_names``.

    The labels are mapped by the first core taxonomy (fine, spectra, fusion, nuclear4) that lists every class
    name, so "SN Ibn" counts as "SN Ib" for a fine model and as "SN I" for a fusion-5 model.
    """
    class_names = tuple(class_names)
    for taxonomy in TAXONOMIES.values():
        if set(class_names) <= set(taxonomy.classes):
            out = np.full(len(labels), -1, dtype=np.int64)
            for i, label in enumerate(labels):
                cls = taxonomy.class_of(label) if isinstance(label, str) else None
                if cls in class_names:
                    out[i] = class_names.index(cls)
            return out
    raise TaxonomyError(
        f"class_names {list(class_names)} are not all classes of one core taxonomy (fine: {list(FINE.classes)}, "
        f"fusion: {list(FUSION.classes)})"
    )


def augment_image(image: torch.Tensor) -> torch.Tensor:
    """Random horizontal/vertical flips (p = 0.5 each) and a rotation by k·90° (k uniform in 0..3).

    image (C, S, S); the radial and constant sky channels are invariant under these maps. Uses the global
    torch RNG, which the training loop seeds per epoch.
    """
    flips = torch.randint(0, 2, (2,))
    if flips[0]:
        image = image.flip(-1)
    if flips[1]:
        image = image.flip(-2)
    k = int(torch.randint(0, 4, (1,)))
    return torch.rot90(image, k, dims=(-2, -1)) if k else image


class AlertImageDataset(Dataset):
    """Items ``{"images" (C, S, S), "metadata" (M,), "coords" (2,), "labels" ()}`` of one alert table.

    Rows whose label is outside ``config.class_names`` are dropped; so are rows without cutouts when
    ``require_cutouts`` (otherwise their stamps are all-masked and become zero images). Metadata are
    transformed once; images are preprocessed per item (lazily read from the memory-mapped cutouts).
    """

    def __init__(self, table: AlertTable, config: Any, metadata_prep: MetadataPreprocessor, augment: bool = False,
                 require_cutouts: bool = True) -> None:
        self.table, self.config, self.augment = table, config, augment
        self.spec = config.image_input
        labels = encode_labels(table.frame["label"].tolist(), config.class_names)
        keep = labels >= 0
        if require_cutouts:
            keep &= table.frame["cutout_index"].to_numpy() >= 0
        self.rows = np.flatnonzero(keep)
        logger.info("alert dataset: %d of %d alerts kept (%d outside the classes, %d without cutouts dropped)",
                    len(self.rows), len(labels), int((labels < 0).sum()), int((~keep & (labels >= 0)).sum()))
        self.labels = labels[self.rows]
        self.metadata = metadata_prep.transform(table.metadata[self.rows]) if len(self.rows) else np.zeros(
            (0, metadata_prep.output_dim), np.float32)
        frame = table.frame.iloc[self.rows]
        self.coords = np.array(frame[["ra_deg", "dec_deg"]].to_numpy(dtype=np.float64))  # degrees
        self.object_ids = frame["object_id"].to_numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def stamps(self, i: int) -> np.ndarray:
        cutouts = self.table.cutouts(int(self.rows[i]))
        return np.full((3, CUTOUT_SIZE, CUTOUT_SIZE), np.nan, np.float32) if cutouts is None else cutouts

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ra, dec = self.coords[i]
        image = torch.from_numpy(preprocess_cutouts(self.stamps(i), ra, dec, self.spec))
        if self.augment:
            image = augment_image(image).contiguous()
        return {
            "images": image, "metadata": torch.from_numpy(self.metadata[i]),
            "coords": torch.tensor(self.coords[i], dtype=torch.float32), "labels": torch.tensor(self.labels[i], dtype=torch.long),
        }  # fmt: skip

    def object_counts(self) -> dict[str, int]:
        """Distinct objects per class name among the kept alerts (class coverage counts objects)."""
        pairs = set(zip(self.object_ids.tolist(), self.labels.tolist()))
        names = self.config.class_names
        return {name: sum(1 for _, label in pairs if label == i) for i, name in enumerate(names)}

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.config.class_names))


def balancing(dataset: AlertImageDataset, method: str, beta: float = 0.999,
              seed: int = 0) -> tuple[np.ndarray | None, WeightedRandomSampler | None]:
    """Class weights for the loss (``weights``: class-balanced, Cui et al. 2019) or an oversampling sampler.

    ``oversample`` draws len(dataset) items per epoch with probability ∝ 1 / count(class), with replacement.
    """
    if method not in BALANCING:
        raise ValueError(f"balance must be one of {BALANCING}, got {method!r}")
    counts = dataset.class_counts()
    if method == "weights":
        return class_balanced_weights(counts, beta), None
    if method == "oversample":
        per_item = 1.0 / np.maximum(counts[dataset.labels], 1)
        generator = torch.Generator().manual_seed(seed)
        return None, WeightedRandomSampler(per_item.tolist(), len(dataset), replacement=True, generator=generator)
    return None, None
