"""The output topic's format: one Avro container per record, schema ``schemas/applecider_record_v1.avsc``.

The schema is versioned (``schema_version`` field and the file name) and documented field by field in the
file itself and in docs/STREAM.md. Optional fields that other parts of the classifier add (prediction_set,
abstain, ood, ood_reasons, survey, skipped, sniascore, ccsnscore) are nullable with defaults and filled when
the record has them; keys the schema does not name go JSON-encoded into ``extra``, so nothing is dropped.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import fastavro

RECORD_SCHEMA_VERSION = "1"
SCHEMA_FILE = f"schemas/applecider_record_v{RECORD_SCHEMA_VERSION}.avsc"
SYNC_MARKER = b"applecider-rec!!"  # fixed: the bytes of a record are a pure function of it


@lru_cache(maxsize=1)
def schema_json() -> dict:
    return json.loads(resources.files("applecider_stream").joinpath(SCHEMA_FILE).read_text())


@lru_cache(maxsize=1)
def record_schema() -> dict:
    """The parsed output schema (fastavro)."""
    return fastavro.parse_schema(schema_json())


def _nested_fields(field_type: Any) -> set[str] | None:
    """Field names of a (nullable) record type, else None."""
    for branch in field_type if isinstance(field_type, list) else [field_type]:
        if isinstance(branch, dict) and branch.get("type") == "record":
            return {f["name"] for f in branch["fields"]}
    return None


def to_avro_record(record: Mapping[str, Any], model_versions: Mapping[str, str] | None = None) -> dict:
    """A classification record (dict from ``Classifier.stream``) → a dict of the output schema."""
    out: dict[str, Any] = {"schema_version": RECORD_SCHEMA_VERSION, "model_versions": dict(model_versions or {})}
    extra: dict[str, str] = {}
    fields = {f["name"]: f for f in schema_json()["fields"]}
    for key, value in record.items():
        field = fields.get(key)
        if field is None or key in out:
            extra[key] = json.dumps(value, default=str)
            continue
        nested = _nested_fields(field["type"])
        if nested is not None and isinstance(value, Mapping) and set(value) - nested:
            extra[key] = json.dumps(value, default=str)  # keys the schema's record lacks: keep the whole value
            value = {k: v for k, v in value.items() if k in nested}
        out[key] = value
    for key, field in fields.items():
        out.setdefault(key, field.get("default"))
    out["extra"] = extra
    return out


@lru_cache(maxsize=1)
def _container_header() -> bytes:
    """The container header (magic, schema, codec, sync marker) every output message starts with."""
    buffer = io.BytesIO()
    fastavro.writer(buffer, record_schema(), [], codec="null", sync_marker=SYNC_MARKER)
    return buffer.getvalue()


_LONG = fastavro.parse_schema("long")


def encode_record(record: Mapping[str, Any], model_versions: Mapping[str, str] | None = None) -> bytes:
    """One Avro container holding the record (what the output topic carries): the cached header, then one
    block (count 1, size, the record, sync marker) — the bytes ``fastavro.writer`` writes, without
    re-serialising the schema for every record."""
    buffer = io.BytesIO()
    buffer.write(_container_header())
    body = io.BytesIO()
    fastavro.schemaless_writer(body, record_schema(), to_avro_record(record, model_versions))
    fastavro.schemaless_writer(buffer, _LONG, 1)
    fastavro.schemaless_writer(buffer, _LONG, body.tell())
    buffer.write(body.getbuffer())
    buffer.write(SYNC_MARKER)
    return buffer.getvalue()


def decode_records(data: bytes) -> list[dict]:
    """The records of one output message (with any reader of Avro containers; this is fastavro's)."""
    return list(fastavro.reader(io.BytesIO(data)))
