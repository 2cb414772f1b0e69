"""Kafka wire-format Avro messages and the schemas their ids name (Rubin's alert stream).

A wire-format message (Confluent framing, what Rubin's Kafka topics carry) is byte 0 = 0, bytes 1–4 = the
schema id (unsigned, big-endian), then the Avro body *without* a schema: decoding needs the writer schema of
that id. Rubin numbers its alert schemas ``major * 100 + minor`` (900 = lsst.v9_0, 1001 = lsst.v10_1).

:class:`WireSchemas` resolves an id, once (results are cached, failures too), from, in order:

1. schema directories: ``<id>.avsc`` / ``<id>.json`` (e.g. a registry dump), or Rubin's layout
   ``<major>/<minor>/lsst.v<major>_<minor>.alert.avsc`` or ``lsst.v<major>_<minor>.alert.avsc`` (named types
   in sibling files ``lsst.v9_0.diaSource.avsc`` … are resolved by fastavro);
2. a Confluent-compatible schema registry: ``GET <url>/schemas/ids/<id>``;
3. the schemas bundled with the optional ``lsst-alert-packet`` package (``pip install applecider-data[lsst]``;
   it is GPL-3.0, so it is never a hard dependency and none of its schema files is copied here).

:func:`decode_wire_message` is what a Kafka consumer calls per message (``cider stream``); readers call it
for ``.avro`` files that hold one wire-format message. A message that is short, not framed, names an unknown
id, or whose body does not decode exactly to its end with that schema raises :class:`AlertParseError`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import struct
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import fastavro

from .errors import AlertParseError

logger = logging.getLogger(__name__)

WIRE_MAGIC = 0
HEADER_SIZE = 5
LSST_PACKAGE = "lsst.alert.packet"
# What a schemaless body that does not match its schema can raise inside fastavro.
BODY_ERRORS = (ValueError, EOFError, TypeError, KeyError, IndexError, AttributeError, UnicodeDecodeError,
               OverflowError, struct.error, zlib.error)  # fmt: skip


def wire_header(data: bytes) -> int:
    """The schema id of a wire-format message; AlertParseError when the 5-byte header is absent or wrong."""
    if len(data) < HEADER_SIZE:
        raise AlertParseError("wire header", f"message of {len(data)} bytes is shorter than the 5-byte header")
    if data[0] != WIRE_MAGIC:
        raise AlertParseError("wire header", f"magic byte is {data[0]}, expected 0 (Confluent wire format)")
    return int.from_bytes(data[1:HEADER_SIZE], "big")


def lsst_schema_name(schema_id: int) -> str:
    """Rubin's schema name of a registry id: 900 → ``lsst.v9_0``, 1101 → ``lsst.v11_1``."""
    return f"lsst.v{schema_id // 100}_{schema_id % 100}"


def _lsst_candidates(root: Path, schema_id: int) -> list[Path]:
    major, minor = schema_id // 100, schema_id % 100
    name = f"{lsst_schema_name(schema_id)}.alert.avsc"
    return [root / f"{schema_id}.avsc", root / f"{schema_id}.json", root / str(major) / str(minor) / name, root / name]


class WireSchemas:
    """Writer schemas by wire-format id, from directories, a registry URL and the optional lsst package."""

    def __init__(self, directories: Iterable[str | Path] = (), registry_url: str | None = None,
                 use_lsst_package: bool = True, timeout_s: float = 10.0) -> None:
        self.directories = [Path(d) for d in directories]
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.use_lsst_package = use_lsst_package
        self.timeout_s = timeout_s
        self._cache: dict[int, Any] = {}
        self._failures: dict[int, str] = {}
        self.registry_fetches = 0  # registry requests made (each id at most once)

    def describe(self) -> str:
        """Where schemas are looked up, and how to add a source (for error messages)."""
        places = [f"directory {d}" for d in self.directories]
        places += [f"registry {self.registry_url}"] if self.registry_url else []
        places += ["lsst-alert-packet package"] if self.use_lsst_package and _lsst_package_root() else []
        how = ("give a schema directory (--schema-dir: <id>.avsc or lsst.v<M>_<m>.alert.avsc files), a registry "
               "URL (--schema-registry), or pip install 'applecider-data[lsst]'")
        return f"looked in {', '.join(places) or 'no schema source'}; {how}"

    def get(self, schema_id: int) -> Any:
        """The parsed writer schema of ``schema_id``; AlertParseError naming the id when none is found."""
        if schema_id in self._cache:
            return self._cache[schema_id]
        if schema_id in self._failures:
            raise AlertParseError("schema id", self._failures[schema_id])
        try:
            schema = self._find(schema_id)
        except (OSError, ValueError, KeyError, fastavro.schema.SchemaParseException) as err:
            reason = f"schema id {schema_id}: unusable schema ({type(err).__name__}: {err})"
            self._failures[schema_id] = reason
            raise AlertParseError("schema id", reason) from None
        if schema is None:
            reason = f"unknown schema id {schema_id} ({lsst_schema_name(schema_id)}?): {self.describe()}"
            self._failures[schema_id] = reason
            raise AlertParseError("schema id", reason)
        self._cache[schema_id] = schema
        return schema

    def _find(self, schema_id: int) -> Any | None:
        for root in self.directories:
            for path in _lsst_candidates(root, schema_id):
                if path.is_file():
                    logger.info("schema id %d from %s", schema_id, path)
                    return fastavro.schema.load_schema(str(path))
        if self.registry_url:
            schema = self._fetch(schema_id)
            if schema is not None:
                return schema
        package_root = _lsst_package_root() if self.use_lsst_package else None
        if package_root is not None:
            for path in _lsst_candidates(package_root, schema_id)[2:]:
                if path.is_file():
                    logger.info("schema id %d from the lsst-alert-packet package (%s)", schema_id, path)
                    return fastavro.schema.load_schema(str(path))
        return None

    def _fetch(self, schema_id: int) -> Any | None:
        import requests

        self.registry_fetches += 1
        url = f"{self.registry_url}/schemas/ids/{schema_id}"
        try:
            response = requests.get(url, timeout=self.timeout_s)
        except requests.RequestException as err:
            raise OSError(f"schema registry {url} unreachable: {err}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise OSError(f"schema registry {url} answered HTTP {response.status_code}")
        return fastavro.parse_schema(json.loads(response.json()["schema"]))


def _lsst_package_root() -> Path | None:
    """The schema folder of the installed lsst-alert-packet package, or None (it is an optional extra).

    Found without importing the package (only its schema files are read).
    """
    try:
        spec = importlib.util.find_spec(LSST_PACKAGE)
    except ModuleNotFoundError:
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "schema"
        if path.is_dir():
            return path
    return None


def decode_wire_message(data: bytes, schemas: WireSchemas | Mapping[int, Any]) -> dict:
    """One Kafka wire-format message → the decoded alert dict (Rubin packet shape).

    ``schemas``: a :class:`WireSchemas`, or a mapping id → parsed schema. The packet gains
    ``lsst_schema_version`` (e.g. ``"lsst.v9_0"``, as Fink records it) when the schema is a Rubin one and the
    body does not carry it. Raises AlertParseError (short message, bad magic, unknown id, body that does not
    decode with the schema or leaves bytes over).
    """
    schema_id = wire_header(data)
    if isinstance(schemas, WireSchemas):
        schema = schemas.get(schema_id)
    elif schema_id in schemas:
        schema = schemas[schema_id]
    else:
        raise AlertParseError("schema id", f"unknown schema id {schema_id}; known: {sorted(schemas)}")
    body = io.BytesIO(memoryview(data)[HEADER_SIZE:])
    try:
        packet = fastavro.schemaless_reader(body, schema)
    except BODY_ERRORS as err:
        raise AlertParseError("wire body", f"does not decode with schema id {schema_id}: "
                              f"{type(err).__name__}: {err}") from None
    left = len(data) - HEADER_SIZE - body.tell()
    if left:
        raise AlertParseError("wire body", f"{left} bytes left after decoding with schema id {schema_id}: "
                              "wrong schema for this message, or a corrupted message")
    if not isinstance(packet, dict):
        raise AlertParseError("wire body", f"decodes to a {type(packet).__name__}, not a record")
    name = schema.get("name", "") if isinstance(schema, dict) else ""
    if name.startswith("lsst.v") and not packet.get("lsst_schema_version"):
        packet["lsst_schema_version"] = name.rsplit(".", 1)[0]
    return packet
