"""From records to training tensors: label encoding, preprocessing with error accounting, torch datasets,
object-level (group-aware) splits stratified by class or by redshift bin (paper II §2.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from applecider_core.records import Spectrum
from applecider_core.taxonomy import Taxonomy

from .preprocessing import EdgeMasking, PreprocessConfig, SpectrumError, preprocess_batch


@dataclass
class SpectraArrays:
    """Preprocessed spectra of one split: flux (N, L) float32, targets (N,), and what was dropped."""

    flux: np.ndarray
    targets: np.ndarray  # int64 class indices, or float32 redshifts
    object_ids: list[str]
    spectrum_ids: list[str]
    redshifts: np.ndarray  # (N,) float64 catalogue redshift (NaN if none)
    errors: list[SpectrumError] = field(default_factory=list)
    indices: np.ndarray | None = None  # (N,) position of every row in the input sequence of spectra
    dropped_labels: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.targets)


def build_arrays(spectra: Sequence[Spectrum], preprocess: PreprocessConfig, task: str = "classification",
                 taxonomy: Taxonomy | None = None, class_names: Sequence[str] | None = None,
                 redshifts: Sequence[float] | None = None) -> SpectraArrays:
    """Encode labels (classification: ``taxonomy.class_of`` then index in ``class_names``; outside → dropped
    and counted) or redshift targets (finite z only), and preprocess (bad spectra → ``errors``)."""
    candidates, targets, dropped = [], [], {}
    names = list(class_names or (taxonomy.classes if taxonomy else ()))
    for i, spectrum in enumerate(spectra):
        if task == "classification":
            cls = taxonomy.class_of(spectrum.label) if taxonomy else spectrum.label
            if cls not in names:
                dropped[str(spectrum.label)] = dropped.get(str(spectrum.label), 0) + 1
                continue
            targets.append(names.index(cls))
        else:
            if not np.isfinite(spectrum.redshift) or spectrum.redshift < 0:
                dropped["no redshift"] = dropped.get("no redshift", 0) + 1
                continue
            targets.append(spectrum.redshift)
        candidates.append(i)
    batch = preprocess_batch([spectra[i] for i in candidates], preprocess,
                             None if redshifts is None else [redshifts[i] for i in candidates])
    kept = [candidates[j] for j in batch.indices]
    dtype = np.int64 if task == "classification" else np.float32
    return SpectraArrays(
        batch.flux, np.asarray([targets[j] for j in batch.indices], dtype=dtype),
        [spectra[i].object_id for i in kept], batch.spectrum_ids, np.asarray([spectra[i].redshift for i in kept], float),
        batch.errors, np.asarray(kept, dtype=np.int64), dropped,
    )  # fmt: skip


class SpectraDataset(Dataset):
    """Items ``{"flux": (L,) float32, "labels": () int64 or float32}``; optional edge-masking augmentation."""

    def __init__(self, arrays: SpectraArrays, augment: EdgeMasking | None = None) -> None:
        self.flux = torch.from_numpy(np.ascontiguousarray(arrays.flux))
        self.labels = torch.from_numpy(arrays.targets)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        flux = self.flux[index]
        if self.augment is not None:
            flux = self.augment(flux)
        return {"flux": flux, "labels": self.labels[index]}


def group_split(groups: Sequence[str], strata: Sequence, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                seed: int = 0, names: Sequence[str] = ("train", "val", "test")) -> np.ndarray:
    """Object-level split: every group (object) lands in one split; groups are shuffled (seeded) within each
    stratum (class, or redshift bin) and cut by ``fractions`` (a stratum with ≥ 1 group per split gets one
    in each where possible). Returns the split name of every item (N,)."""
    groups = np.asarray(groups, dtype=object)
    strata = np.asarray(strata, dtype=object)
    fractions = np.asarray(fractions, dtype=float) / np.sum(fractions)
    unique_groups, first = np.unique(groups, return_index=True)
    group_stratum = strata[first]  # an object's stratum: that of its first spectrum
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for stratum in sorted(set(group_stratum.tolist()), key=str):
        members = unique_groups[group_stratum == stratum]
        members = members[rng.permutation(len(members))]
        counts = np.floor(fractions * len(members)).astype(int)
        for k in range(len(fractions)):  # give small strata a member in every split while possible
            if counts[k] == 0 and len(members) - counts.sum() > 0:
                counts[k] += 1
        counts[0] += len(members) - counts.sum()
        start = 0
        for name, count in zip(names, counts):
            for group in members[start:start + count]:
                assignment[group] = name
            start += count
    return np.array([assignment[g] for g in groups], dtype=object)


def redshift_bins(redshifts: Sequence[float], n_bins: int = 10) -> np.ndarray:
    """Index (0..n_bins-1) of ``n_bins`` equal-width bins between min and max z (paper II §2.2)."""
    z = np.asarray(redshifts, dtype=float)
    edges = np.linspace(z.min(), z.max(), n_bins + 1)
    return np.clip(np.searchsorted(edges, z, side="right") - 1, 0, n_bins - 1)


def select(arrays: SpectraArrays, mask: np.ndarray) -> SpectraArrays:
    """The rows of ``arrays`` where ``mask`` is true."""
    idx = np.flatnonzero(mask)
    return SpectraArrays(
        arrays.flux[idx], arrays.targets[idx], [arrays.object_ids[i] for i in idx],
        [arrays.spectrum_ids[i] for i in idx], arrays.redshifts[idx],
        indices=None if arrays.indices is None else arrays.indices[idx],
    )  # fmt: skip


def object_counts(arrays: SpectraArrays, class_names: Sequence[str]) -> dict[str, int]:
    """Distinct objects per class among classification ``arrays`` (class coverage counts objects, not spectra)."""
    pairs = set(zip(arrays.object_ids, arrays.targets.tolist()))
    return {name: sum(1 for _, t in pairs if t == i) for i, name in enumerate(class_names)}


def restrict_classes(arrays: SpectraArrays, class_names: Sequence[str], kept: Sequence[str]) -> SpectraArrays:
    """Rows of the ``kept`` classes, targets re-indexed from ``class_names`` to ``kept``."""
    new_index = np.array([list(kept).index(c) if c in kept else -1 for c in class_names], dtype=np.int64)
    out = select(arrays, new_index[arrays.targets] >= 0)
    out.targets = new_index[out.targets]
    out.errors, out.dropped_labels = arrays.errors, arrays.dropped_labels
    return out


__all__ = ["SpectraArrays", "SpectraDataset", "build_arrays", "group_split", "object_counts", "redshift_bins",
           "restrict_classes", "select"]
