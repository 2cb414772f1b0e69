"""Object identity across sources and the object-level stratified, seeded train/val/test split.

Identity: every name an object is known by (ZTF id, OSC event name, aliases, TNS names such as
``SN 2018bgv`` / ``AT2018bgv`` / ``2018bgv``) is normalised (:func:`normalise_name`) and names that occur
together (a spectrum's object + aliases; a light curve's name + ``ztf_id``) are joined with union–find. A group
is one object; its ``object_id`` is the (alphabetically first) ZTF id in the group, else a prefixed IAU name
(``SN 2018bgv``, ``AT2019xyz``), else the alphabetically first name. Alerts and labels are keyed by ZTF id and fall into the group holding that id.

Split: one stratum per normalised label (``unlabelled`` for objects without one). Inside each stratum the
sorted ids are permuted by a generator seeded with ``(seed, crc32(stratum))`` (so a stratum's split does not
depend on the other strata) and cut exactly: ``n_val = max(1, round(n * val))``, ``n_test = max(1, round(n *
test))``, the rest train. Strata with fewer than ``min_objects`` objects cannot be represented in all three
splits and go entirely to train; they are listed in the manifest (``rare_strata``). Objects, not spectra or
alerts, are split, so all spectra/alerts of an object land in one split.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping

import numpy as np

SPLIT_NAMES = ("train", "val", "test")
_ZTF = re.compile(r"^ztf\d{2}[a-z]{7}$")
_IAU = re.compile(r"^(?:sn|at|tde)\s*(?=\d{4}[a-z]{1,3}$)")


def normalise_name(name: str) -> str:
    """Matching key of an object name: lower case, no spaces/underscores, ``SN``/``AT`` prefix of IAU names dropped."""
    key = re.sub(r"[\s_]", "", str(name).strip().lower())
    return _IAU.sub("", key)


def is_ztf_id(name: str) -> bool:
    return bool(_ZTF.match(str(name).strip().lower()))


def _name_rank(name: str) -> int:
    """Preference for the object id of a group: ZTF id, then a prefixed IAU name (SN/AT 2018abc), then others."""
    if is_ztf_id(name):
        return 0
    lowered = re.sub(r"\s", "", name.lower())
    return 1 if _IAU.match(lowered) else 2


class NameGroups:
    """Union–find over normalised names; each connected group is one astronomical object."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._originals: dict[str, set[str]] = {}

    def _find(self, key: str) -> str:
        self._parent.setdefault(key, key)
        root = key
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[key] != root:  # path compression
            self._parent[key], key = root, self._parent[key]
        return root

    def add(self, names: Iterable[str]) -> None:
        """Declare that all ``names`` denote one object."""
        keys = []
        for name in names:
            if name is None or not str(name).strip():
                continue
            key = normalise_name(name)
            self._originals.setdefault(key, set()).add(str(name).strip())
            keys.append(key)
        for key in keys[1:]:
            a, b = self._find(keys[0]), self._find(key)
            if a != b:
                self._parent[max(a, b)] = min(a, b)
        if keys:
            self._find(keys[0])

    def object_ids(self) -> dict[str, str]:
        """Normalised name → object id of its group (a ZTF id when the group has one)."""
        members: dict[str, list[str]] = {}
        for key in self._parent:
            members.setdefault(self._find(key), []).append(key)
        out: dict[str, str] = {}
        for keys in members.values():
            originals = sorted(name for key in keys for name in self._originals.get(key, ()))
            chosen = min(originals, key=lambda name: (_name_rank(name), name))
            out.update({key: chosen for key in keys})
        return out

    def resolve(self, name: str, mapping: Mapping[str, str]) -> str:
        return mapping.get(normalise_name(name), str(name).strip())


def stratified_split(
    strata: Mapping[str, str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 42,
    min_objects: int = 3,
) -> tuple[dict[str, str], list[str]]:  # fmt: skip
    """Object id → split name, and the strata too small to split (sent to train). See module docstring."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    by_stratum: dict[str, list[str]] = {}
    for object_id, stratum in strata.items():
        by_stratum.setdefault(stratum, []).append(object_id)
    assignment: dict[str, str] = {}
    rare: list[str] = []
    for stratum in sorted(by_stratum):
        ids = sorted(by_stratum[stratum])
        n = len(ids)
        if n < min_objects:
            rare.append(stratum)
            assignment.update({i: "train" for i in ids})
            continue
        rng = np.random.default_rng([seed, zlib.crc32(stratum.encode())])
        order = [ids[k] for k in rng.permutation(n)]
        n_val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
        n_test = max(1, round(n * fractions[2])) if fractions[2] > 0 else 0
        n_train = n - n_val - n_test
        for k, object_id in enumerate(order):
            assignment[object_id] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return assignment, rare
