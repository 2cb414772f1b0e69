"""Streaming readers of ZTF and Rubin alert packets: Avro files, folders, nightly ``.tar.gz`` tarballs, parquet.

Everything streams: tarball members are read one at a time (``tarfile`` stream mode, nothing extracted to
disk), parquet tables in record batches, Avro containers record by record. A file, member or row that cannot
be decoded becomes a :class:`~applecider_data.errors.PacketError` in the stream (naming the file) and the
rest goes on. Packets are plain dicts in their survey's Avro shape (ZTF schema 3.2–4.02, ``fp_hists``
optional; Rubin lsst.v9_0–v11_x); for ZTF alert parquet rows the JSON columns are decoded and cutouts
wrapped as ``{"stampData": bytes}``; Rubin parquet rows (Fink's struct columns) are taken as they are.

An ``.avro`` file is recognised by its first bytes, never trusted by its name: ``Obj\\x01`` is an Avro
container (the writer schema is embedded), byte 0 = 0 is one Kafka wire-format message (decoded with the
schema of its id, :mod:`applecider_data.wire`), anything else is one error. Reads are bounded by the file's
size, so a damaged length field cannot make fastavro allocate more than the file holds.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Union

import fastavro

from .errors import AlertParseError, PacketError
from .wire import WIRE_MAGIC, WireSchemas, decode_wire_message

logger = logging.getLogger(__name__)

PacketOrError = Union[dict, PacketError]
CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
PARQUET_EXTRA_FIELDS = ("source", "source_path", "cutout_format", "candidate_altered")
CONTAINER_MAGIC = b"Obj\x01"
MAX_WIRE_MESSAGE_BYTES = 64 * 2**20  # a Rubin alert is ~0.1–1 MB; Kafka's own default limit is 1 MB
# What a damaged Avro container can raise inside fastavro (bad sync marker, short read, bad varint, schema).
AVRO_ERRORS = (ValueError, EOFError, OSError, TypeError, KeyError, IndexError, AttributeError, zlib.error,
               fastavro.schema.SchemaParseException)  # fmt: skip


class _BoundedReader(io.RawIOBase):
    """A binary file whose ``read(n)`` never asks for more than what is left (fastavro trusts length fields)."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream, self._size = stream, size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def read(self, size: int = -1) -> bytes:
        left = max(self._size - self._stream.tell(), 0)
        return self._stream.read(left if size is None or size < 0 else min(size, left))

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _iter_avro_stream(stream: BinaryIO, source: str, item: str) -> Iterator[tuple[str, str, PacketOrError]]:
    decoded = 0  # records decoded and yielded before a failure
    try:
        reader = fastavro.reader(stream)
        for index, record in enumerate(reader):
            yield source, f"{item}#{index}" if item else f"#{index}", record
            decoded = index + 1
    except AVRO_ERRORS as err:
        where = f"{item} " if item else ""
        reason = f"corrupt or truncated Avro {where}after {decoded} record(s): {type(err).__name__}: {err}"
        logger.warning("%s: %s", source, reason)
        yield source, item, PacketError(source, item, reason)


def _wire_message(data: bytes, source: str, item: str, schemas: WireSchemas) -> tuple[str, str, PacketOrError]:
    try:
        return source, item, decode_wire_message(data, schemas)
    except AlertParseError as err:
        logger.warning("%s: %s", f"{source}::{item}" if item else source, err)
        return source, item, PacketError(source, item, f"Kafka wire-format message: {err}")


def _not_avro(head: bytes, size: int) -> str:
    return (f"not an Avro container (starts {head[:4]!r}, expected {CONTAINER_MAGIC!r}) nor a Kafka wire-format "
            f"message (byte 0 = 0); {size} bytes")


def iter_avro_bytes(data: bytes, source: str, item: str = "", schemas: WireSchemas | None = None
                    ) -> Iterator[tuple[str, str, PacketOrError]]:
    """Packets of one in-memory Avro file: a container, or one Kafka wire-format message (module docstring).

    A stream (or a nightly tarball) repeats the same writer schema in every one-alert container, and parsing
    it costs more than decoding the alert, so containers are read with the parsed schema cached by its bytes
    (:func:`read_container_cached`); a container that path cannot read goes through ``fastavro.reader``, which
    names the problem.
    """
    if data.startswith(CONTAINER_MAGIC):
        try:
            records = read_container_cached(data)
        except AVRO_ERRORS:
            records = None
        if records is not None:
            for index, record in enumerate(records):
                yield source, f"{item}#{index}" if item else f"#{index}", record
            return
        yield from _iter_avro_stream(io.BytesIO(data), source, item)
    elif data[:1] == bytes([WIRE_MAGIC]):
        yield _wire_message(data, source, item, schemas or WireSchemas())
    else:
        yield source, item, PacketError(source, item, _not_avro(data, len(data)))


_HEADER_SCHEMA = fastavro.parse_schema({"type": "map", "values": "bytes"})
_LONG_SCHEMA = fastavro.parse_schema("long")
MAX_CACHED_SCHEMAS = 32
_writer_schemas: OrderedDict[bytes, dict] = OrderedDict()  # writer schema JSON bytes → parsed (LRU)


def _parsed_writer_schema(schema_bytes: bytes) -> dict:
    schema = _writer_schemas.get(schema_bytes)
    if schema is None:
        schema = fastavro.parse_schema(json.loads(schema_bytes))
        _writer_schemas[schema_bytes] = schema
        if len(_writer_schemas) > MAX_CACHED_SCHEMAS:
            _writer_schemas.popitem(last=False)
    else:
        _writer_schemas.move_to_end(schema_bytes)
    return schema


def read_container_cached(data: bytes) -> list[dict] | None:
    """The records of one Avro container held in memory, read block by block with the writer schema parsed
    once per distinct schema (the same records as ``fastavro.reader``). None for a container this reader does
    not handle (a codec other than null/deflate, no schema); a damaged one raises one of ``AVRO_ERRORS``."""
    stream = io.BytesIO(data)
    if stream.read(len(CONTAINER_MAGIC)) != CONTAINER_MAGIC:
        return None
    header = fastavro.schemaless_reader(stream, _HEADER_SCHEMA)
    codec = header.get("avro.codec", b"null")
    if codec not in (b"null", b"deflate") or "avro.schema" not in header:
        return None
    schema = _parsed_writer_schema(header["avro.schema"])
    sync = stream.read(16)
    records: list[dict] = []
    while stream.tell() < len(data):
        count = fastavro.schemaless_reader(stream, _LONG_SCHEMA)
        size = fastavro.schemaless_reader(stream, _LONG_SCHEMA)
        block = stream.read(size)
        if size < 0 or len(block) != size or stream.read(16) != sync:
            raise EOFError(f"truncated block or bad sync marker after {len(records)} record(s)")
        body = io.BytesIO(zlib.decompress(block, -15) if codec == b"deflate" else block)
        records.extend(fastavro.schemaless_reader(body, schema) for _ in range(count))
        if body.tell() != len(body.getbuffer()):
            raise ValueError(f"block of {count} record(s) not read to its end")
    return records


def iter_avro_file(path: str | Path, schemas: WireSchemas | None = None) -> Iterator[tuple[str, str, PacketOrError]]:
    """Packets of one ``.avro`` file (container or wire-format message, told apart by its first bytes)."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            size = path.stat().st_size
            head = stream.read(len(CONTAINER_MAGIC))
            stream.seek(0)
            if head == CONTAINER_MAGIC:
                yield from _iter_avro_stream(_BoundedReader(stream, size), str(path), "")  # type: ignore[arg-type]
            elif head[:1] == bytes([WIRE_MAGIC]) and size <= MAX_WIRE_MESSAGE_BYTES:
                yield _wire_message(stream.read(), str(path), "", schemas or WireSchemas())
            elif head[:1] == bytes([WIRE_MAGIC]):
                reason = f"Kafka wire-format message of {size} bytes exceeds {MAX_WIRE_MESSAGE_BYTES} bytes"
                yield str(path), "", PacketError(str(path), "", reason)
            else:
                yield str(path), "", PacketError(str(path), "", _not_avro(head, size))
    except OSError as err:
        yield str(path), "", PacketError(str(path), "", f"cannot open: {err}")


def iter_tarball(path: str | Path, schemas: WireSchemas | None = None) -> Iterator[tuple[str, str, PacketOrError]]:
    """Stream the ``.avro`` members of a (gzip) tarball; a ZTF night has 1e5 members, none is extracted."""
    path = Path(path)
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".avro"):
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                data = handle.read()  # one alert file (~60 kB), bounded by the member's size
                yield from iter_avro_bytes(data, str(path), member.name, schemas)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        yield str(path), "", PacketError(str(path), "", f"corrupt or truncated tarball: {type(err).__name__}: {err}")


def _json_field(value: object, name: str) -> object:
    if value is None or not isinstance(value, str):
        return value
    return json.loads(value)


def _rubin_row(record: dict) -> dict:
    """A Rubin parquet row as a packet: struct columns as they are, JSON-string columns (if any) decoded."""
    for name in ("diaSource", "diaObject", "prvDiaSources", "prvDiaForcedSources"):
        record[name] = _json_field(record.get(name), name)
    return record


def _ztf_row(record: dict) -> dict:
    record["candidate"] = _json_field(record.get("candidate"), "candidate")
    record["prv_candidates"] = _json_field(record.get("prv_candidates"), "prv_candidates")
    for name in CUTOUT_FIELDS:
        value = record.get(name)
        record[name] = None if value is None or isinstance(value, dict) else {"fileName": "", "stampData": value}
    return record


def iter_alert_parquet(path: str | Path, batch_size: int = 64) -> Iterator[tuple[str, str, PacketOrError]]:
    """Rows of an alert parquet table: ZTF (``candidate``/``prv_candidates`` JSON strings, gzip-FITS cutouts)
    or Rubin as Fink/ALeRCE write it (``diaSource``/``diaObject``/… struct or JSON columns, FITS cutouts)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as err:
        yield str(path), "", PacketError(str(path), "", f"unreadable parquet: {err}")
        return
    rubin = "diaSource" in parquet.schema_arrow.names
    row = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for record in batch.to_pylist():
            item = f"row {row} " + (f"diaSourceId {record.get('diaSourceId')}" if rubin else f"candid {record.get('candid')}")
            row += 1
            yield str(path), item, parquet_row_to_packet(record, str(path), item, rubin)


def parquet_row_to_packet(record: dict, source: str = "parquet", item: str = "", rubin: bool | None = None
                          ) -> PacketOrError:
    """One alert parquet row (dict) → packet dict, in place: Rubin (``diaSource`` column) or ZTF (JSON columns
    decoded, cutouts wrapped); a PacketError when a JSON column is invalid."""
    try:
        return _rubin_row(record) if (rubin if rubin is not None else "diaSource" in record) else _ztf_row(record)
    except json.JSONDecodeError as err:
        return PacketError(source, item, f"invalid JSON in a packet column: {err}")


def _expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
        else:
            yield path


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".avro"):
        return "avro"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def iter_packets_with_source(paths: Iterable[str | Path] | str | Path, schemas: WireSchemas | None = None
                             ) -> Iterator[tuple[str, str, PacketOrError]]:
    """Like :func:`iter_packets` but yields ``(source file, item within it, packet or PacketError)``."""
    schemas = schemas or WireSchemas()
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for path in _expand(paths):
        kind = _kind(path)
        if not path.exists():
            yield str(path), "", PacketError(str(path), "", "no such file or directory")
        elif kind == "avro":
            yield from iter_avro_file(path, schemas)
        elif kind == "tar":
            yield from iter_tarball(path, schemas)
        elif kind == "parquet":
            yield from iter_alert_parquet(path)
        else:
            yield str(path), "", PacketError(str(path), "", "unknown file type (expected .avro, .tar.gz, .parquet)")


def iter_packets(paths: Iterable[str | Path] | str | Path, schemas: WireSchemas | None = None
                 ) -> Iterator[PacketOrError]:
    """Decoded alert packets (dicts) from files, folders, tarballs and parquet tables, or PacketErrors.

    ``schemas`` resolves the schema ids of Kafka wire-format files (default: only the optional lsst package).
    """
    for _source, _item, packet in iter_packets_with_source(paths, schemas):
        yield packet
