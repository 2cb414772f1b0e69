"""ZTF packets → Avro bytes: one Avro container per alert, as IPAC publishes them on Kafka.

Packets of every schema version (e.g. alert parquet rows, whose JSON columns turn some integers into floats
and lack fields of later versions) are written with a relaxed copy of the shipped 4.01 schema: every field
nullable, integer fields also accepting doubles, so each value the packet holds goes through unchanged and a
missing one stays missing. Fields the 4.01 schema does not know are dropped (``packet_to_alert`` reads none
of them). Readers need nothing special: the schema travels in the container.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources

import fastavro

SYNC_MARKER = b"applecider-ztf!!"  # fixed, so the bytes are a pure function of the packet
_WIDER = {"int": ["long", "double"], "long": ["long", "double"], "float": ["double"], "double": ["double"]}


def _relax(avro_type: object) -> object:
    """Nullable, numerically widened version of a field type (records and arrays relaxed inside)."""
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    out: list = ["null"]
    for branch in branches:
        if isinstance(branch, dict) and branch.get("type") == "record":
            branch = {**branch, "fields": [{**f, "type": _relax(f["type"]), "default": None} for f in branch["fields"]]}
        elif isinstance(branch, dict) and branch.get("type") == "array":
            branch = {**branch, "items": _relax(branch["items"])[1]}  # array items: the (single) relaxed type
        for wider in _WIDER.get(branch, [branch]) if isinstance(branch, str) else [branch]:
            if wider not in out:
                out.append(wider)
    return out


@lru_cache(maxsize=1)
def relaxed_alert_schema() -> dict:
    raw = json.loads(resources.files("applecider_data").joinpath("schemas/ztf_alert_4.01.avsc").read_text())
    relaxed = copy.deepcopy(raw)
    relaxed["fields"] = [{**f, "type": _relax(f["type"]), "default": None} for f in raw["fields"]]
    return fastavro.parse_schema(relaxed)


def packet_to_avro(packet: Mapping) -> bytes:
    """One Avro container holding ``packet`` (values unchanged; see the module docstring)."""
    buffer = io.BytesIO()
    fastavro.writer(buffer, relaxed_alert_schema(), [dict(packet)], codec="null", sync_marker=SYNC_MARKER)
    return buffer.getvalue()
