"""Class vocabularies and the normaliser from raw type strings (TNS, Fritz/SkyPortal, OSC, reference CSVs).

Two layers:

1. *Normalised labels* (``NORMALISED_LABELS``): what a raw string means astronomically ("Ia-91T" → "SN Ia").
   ``normalise_label`` maps one raw string, ``combine_claims`` several claims about one object.
   Unknown strings are reported as ``status="unmapped"``, uninformative or ambiguous ones ("SN", "IIn/Ibn")
   as ``status="ambiguous"``; neither is ever turned into a class silently.
2. *Taxonomies* (``FINE``, ``SPECTRA``, ``FUSION``): the ordered class lists a model predicts, with the
   normalised labels each class absorbs. ``projection_matrix`` sums fine-class probabilities into coarse
   classes for fusion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

NORMALISED_LABELS = (
    "SN Ia", "SN Ib", "SN Ibn", "SN Ic", "SN Ib/c", "SN II", "SN IIP", "SN IIn", "SN IIb",
    "SLSN-I", "SLSN-II", "TDE", "AGN", "CV", "Nova", "Other",
)  # fmt: skip

_KEYS_BY_LABEL: dict[str, tuple[str, ...]] = {
    "SN Ia": (".ia", ".iapec", "ia", "ia00cx", "ia02cx", "ia11kx", "ia91bg", "ia91bglike", "ia91t", "ia91tlike",
              "ia99aa", "iacarich", "iacsm", "iahv", "ianorm", "iapec", "iasc", "iax", "iax[02cxlike]",
              "lensedsnia"),
    "SN Ib": ("carich", "ib", "ibca", "ibcarich", "ibnorm", "ibp", "ibpec"),
    "SN Ibn": ("ibn", "ibn/icn"),
    "SN Ic": ("blic", "ic", "icbl", "icbroad", "iccarich", "ichyp", "icnorm", "icpec"),
    "SN Ib/c": ("ib/c", "ib/cpec", "ibc"),
    "SN II": ("ii", "ii/iib", "iil", "iinorm", "iipec"),
    "SN IIP": ("iip", "iip97d", "iippec"),
    "SN IIn": ("iin", "iinpec"),
    "SN IIb": ("iib", "iibh", "iibnoh"),
    "SLSN-I": ("slsni", "slsnic", "slsnir", "slsnr", "superluminousic"),
    "SLSN-II": ("slsnii",),
    "TDE": ("jettedtde", "tde", "tdefeatureless", "tdeh", "tdeh+he", "tdehe", "tdehhe", "tidaldisruptionevent"),
    "AGN": ("agn", "bl", "blazar", "bllac", "qso", "quasar", "seyfert", "seyfert1", "seyfert2"),
    "CV": ("amcvn", "cataclysmic", "cv", "dwarfnova"),
    "Nova": ("nova", "pnv"),
    "Other": ("afterglow", "fbot", "galaxy", "gap", "grb", "ib18cow", "icn", "ien", "ilrt", "impostor",
              "impostorsn", "kilonova", "kn", "lbv", "lfbot", "lrn", "mdwarf", "nt", "other", "star",
              "symbioticstar", "varstar", "xrb"),
}  # fmt: skip

# Strings that are recognised but carry no usable class (too generic, or spanning families).
AMBIGUOUS_KEYS = frozenset({
    "", "c", "candidate", "computedia", "i", "ib/iib", "ibiib", "iib/ib", "iib/ib/ic", "iin/ibn", "iin/ic",
    "iin/lbv", "irapid", "lgrb", "removed", "slsn", "sn",
})  # fmt: skip

RAW_TO_LABEL: dict[str, str] = {key: label for label, keys in _KEYS_BY_LABEL.items() for key in keys}

# Parent of each label in the type tree; used to combine compatible claims ("II" + "IIP" → "SN IIP").
PARENT: dict[str, str] = {
    "SN Ib": "SN Ib/c", "SN Ibn": "SN Ib", "SN Ic": "SN Ib/c", "SLSN-I": "SN Ic",
    "SN IIP": "SN II", "SN IIn": "SN II", "SN IIb": "SN II", "SLSN-II": "SN IIn",
}  # fmt: skip

_PAREN = re.compile(r"\([^)]*\)")
_ZHOST = re.compile(r"zhost=[^)]*\)?")
_LEADING_SN = re.compile(r"^(sn|type)\s*(?=[iv.])")
_DROPPED = re.compile(r"[\s\-_]")


class TaxonomyError(ValueError):
    """A class name or mapping that the requested taxonomy cannot represent."""


@dataclass(frozen=True)
class LabelResult:
    """Outcome of normalising one raw type string."""

    raw: str
    key: str
    label: str | None
    questioned: bool
    status: Literal["mapped", "ambiguous", "unmapped"]


def label_key(raw: str) -> tuple[str, bool]:
    """Lookup key of a raw type string and whether the claim is questioned (trailing '?')."""
    text = raw.strip().lower()
    text = _ZHOST.sub("", text)
    text = _PAREN.sub("", text).strip()
    questioned = text.endswith("?")
    text = text.rstrip("?").strip()
    text = _LEADING_SN.sub("", text)
    return _DROPPED.sub("", text), questioned


def normalise_label(raw: str | None) -> LabelResult:
    """Normalise one raw type string; never guesses (see module docstring)."""
    raw = "" if raw is None else str(raw)
    key, questioned = label_key(raw)
    if key in RAW_TO_LABEL:
        return LabelResult(raw, key, RAW_TO_LABEL[key], questioned, "mapped")
    status = "ambiguous" if key in AMBIGUOUS_KEYS else "unmapped"
    return LabelResult(raw, key, None, questioned, status)


def _ancestors(label: str) -> list[str]:
    chain = [label]
    while chain[-1] in PARENT:
        chain.append(PARENT[chain[-1]])
    return chain


def combine_claims(raws: Iterable[str]) -> str | None:
    """Combine several raw claims about one object into one normalised label, or None on conflict.

    Questioned claims count only when there is no unquestioned one; claims on one branch of the type
    tree resolve to the most specific; siblings under SN II or SN Ib/c (no SLSN involved) resolve to
    that parent; anything else is a conflict.
    """
    results = [normalise_label(r) for r in raws]
    mapped = [r for r in results if r.label is not None]
    firm = [r for r in mapped if not r.questioned]
    labels = sorted({r.label for r in (firm or mapped)})  # type: ignore[misc]
    if not labels:
        return None
    for candidate in labels:  # the most specific label whose ancestry contains all the others
        chain = _ancestors(candidate)
        if all(other in chain for other in labels):
            return candidate
    if any(label.startswith("SLSN") for label in labels):
        return None
    for parent in ("SN II", "SN Ib/c"):
        if all(parent in _ancestors(label) for label in labels):
            return parent
    return None


@dataclass(frozen=True)
class Taxonomy:
    """An ordered list of classes and the normalised labels each one absorbs."""

    name: str
    classes: tuple[str, ...]
    members: Mapping[str, str] = field(repr=False)  # normalised label → class

    def __post_init__(self) -> None:
        unknown = set(self.members.values()) - set(self.classes)
        if unknown:
            raise TaxonomyError(f"taxonomy {self.name!r} maps to classes it does not list: {sorted(unknown)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, class_name: str) -> int:
        try:
            return self.classes.index(class_name)
        except ValueError:
            raise TaxonomyError(
                f"{class_name!r} is not a class of taxonomy {self.name!r}; allowed: {list(self.classes)}"
            ) from None

    def class_of(self, label: str | None) -> str | None:
        """Class of a normalised label (or of a class name itself), None if outside this taxonomy."""
        if label is None:
            return None
        if label in self.classes:
            return label
        return self.members.get(label)

    def encode(self, labels: Sequence[str | None]) -> np.ndarray:
        """Class indices (int64) of normalised labels; -1 where the label is outside this taxonomy."""
        out = np.full(len(labels), -1, dtype=np.int64)
        for i, label in enumerate(labels):
            cls = self.class_of(label)
            if cls is not None:
                out[i] = self.classes.index(cls)
        return out


FINE_CLASSES = ("SN Ia", "SN Ib", "SN Ic", "SN II", "SN IIP", "SN IIn", "SN IIb", "CV", "AGN", "TDE")
SPECTRA_CLASSES = (*FINE_CLASSES, "SLSN-I")
FUSION_CLASSES = ("SN I", "SN II", "CV", "AGN", "TDE")

_FINE_EXTRA = {"SN Ibn": "SN Ib"}  # Ibn is a child of Ib in the tree; SN Ib/c is ambiguous and left out.

FINE = Taxonomy("fine", FINE_CLASSES, {c: c for c in FINE_CLASSES} | _FINE_EXTRA)
SPECTRA = Taxonomy("spectra", SPECTRA_CLASSES, {c: c for c in SPECTRA_CLASSES} | _FINE_EXTRA)
FUSION = Taxonomy(
    "fusion",
    FUSION_CLASSES,
    {
        **{c: "SN I" for c in ("SN Ia", "SN Ib", "SN Ibn", "SN Ic", "SN Ib/c", "SLSN-I")},
        **{c: "SN II" for c in ("SN II", "SN IIP", "SN IIn", "SN IIb")},
        "CV": "CV",
        "AGN": "AGN",
        "TDE": "TDE",
    },
)
# Paper I Table 6 (AstroMiNN vs BTSbot): four classes, the nuclear transients (AGN, TDE) as one.
NUCLEAR4 = Taxonomy(
    "nuclear4",
    ("SN I", "SN II", "CV", "Nuclear"),
    {**{c: FUSION.members[c] for c in FUSION.members if FUSION.members[c] in ("SN I", "SN II", "CV")},
     "AGN": "Nuclear", "TDE": "Nuclear"},
)
TAXONOMIES: dict[str, Taxonomy] = {t.name: t for t in (FINE, SPECTRA, FUSION, NUCLEAR4)}


def get_taxonomy(name: str) -> Taxonomy:
    try:
        return TAXONOMIES[name]
    except KeyError:
        raise TaxonomyError(f"unknown taxonomy {name!r}; allowed: {sorted(TAXONOMIES)}") from None


def projection_matrix(source_classes: Sequence[str], target: Taxonomy) -> np.ndarray:
    """(S, T) 0/1 matrix summing probabilities of ``source_classes`` into ``target`` classes.

    Raises TaxonomyError naming every source class that has no class in ``target``.
    """
    matrix = np.zeros((len(source_classes), target.num_classes), dtype=np.float32)
    unmapped = []
    for i, name in enumerate(source_classes):
        cls = target.class_of(name)
        if cls is None:
            unmapped.append(name)
        else:
            matrix[i, target.classes.index(cls)] = 1.0
    if unmapped:
        raise TaxonomyError(
            f"classes {unmapped} have no class in taxonomy {target.name!r} ({list(target.classes)}); "
            "retrain with a taxonomy that maps, or drop these classes"
        )
    return matrix


DEFAULT_MIN_CLASS_OBJECTS = 20


def covered_classes(class_names: Sequence[str], object_counts: Mapping[str, int], minimum: int) -> tuple[str, ...]:
    """The classes of ``class_names`` (order kept) with at least ``minimum`` training objects.

    A model gets an output only for these (its config lists them); fusion renormalises over the classes a
    model covers. Raises TaxonomyError when fewer than two classes are covered (nothing to classify).
    """
    covered = tuple(c for c in class_names if object_counts.get(c, 0) >= minimum)
    if len(covered) < 2:
        counts = {c: int(object_counts.get(c, 0)) for c in class_names}
        raise TaxonomyError(f"fewer than two classes have >= {minimum} training objects ({counts}); "
                            "lower the minimum (data.min_class_objects) or add data")
    return covered
