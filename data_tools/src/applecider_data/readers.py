"""Streaming readers of ZTF alert packets: Avro files, folders, nightly ``.tar.gz`` tarballs, alert parquet.

Everything streams: tarball members are read one at a time (``tarfile`` stream mode, nothing extracted to
disk), parquet tables in record batches, Avro containers record by record. A file, member or row that cannot
be decoded becomes a :class:`~applecider_data.errors.PacketError` in the stream (naming the file) and the
rest goes on. Packets are plain dicts in the ZTF Avro shape (schema 3.2–4.02; ``fp_hists`` optional); for
alert parquet rows the JSON columns are decoded and cutouts wrapped as ``{"stampData": bytes}``.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Union

import fastavro

from .errors import PacketError

logger = logging.getLogger(__name__)

PacketOrError = Union[dict, PacketError]
CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
PARQUET_EXTRA_FIELDS = ("source", "source_path", "cutout_format", "candidate_altered")
# What a damaged Avro container can raise inside fastavro (bad sync marker, short read, bad varint, schema).
AVRO_ERRORS = (ValueError, EOFError, OSError, TypeError, KeyError, IndexError, AttributeError, zlib.error,
               fastavro.schema.SchemaParseException)  # fmt: skip


def _iter_avro_stream(stream: BinaryIO, source: str, item: str) -> Iterator[tuple[str, str, PacketOrError]]:
    index = 0
    try:
        reader = fastavro.reader(stream)
        for index, record in enumerate(reader):
            yield source, f"{item}#{index}" if item else f"#{index}", record
    except AVRO_ERRORS as err:
        where = f"{item} " if item else ""
        reason = f"corrupt or truncated Avro {where}after {index} record(s): {type(err).__name__}: {err}"
        logger.warning("%s: %s", source, reason)
        yield source, item, PacketError(source, item, reason)


def iter_avro_bytes(data: bytes, source: str, item: str = "") -> Iterator[PacketOrError]:
    """The packets of one Avro container held in memory (a ZTF Kafka message), or a PacketError.

    A stream sends the same writer schema in every message; parsing it costs ~10 ms, more than decoding the
    alert, so containers with the null or deflate codec are read with the parsed schema cached by its bytes
    (same records as ``fastavro.reader``, tested); anything else goes through ``fastavro.reader``.
    """
    try:
        packets = _read_container_cached(data)
    except AVRO_ERRORS:
        packets = None  # let fastavro.reader name the problem
    if packets is not None:
        yield from packets
        return
    for _source, _item, packet in _iter_avro_stream(io.BytesIO(data), source, item):
        yield packet


_SCHEMA_CACHE: dict[bytes, dict] = {}


def _read_container_cached(data: bytes) -> list[dict] | None:
    from fastavro import schemaless_reader
    from fastavro._read_py import read_long

    if data[:4] != b"Obj\x01":
        return None
    stream = io.BytesIO(data)
    stream.seek(4)
    header = schemaless_reader(stream, {"type": "map", "values": "bytes"}, None)
    codec = header.get("avro.codec", b"null")
    if codec not in (b"null", b"deflate") or "avro.schema" not in header:
        return None
    schema_bytes = header["avro.schema"]
    schema = _SCHEMA_CACHE.get(schema_bytes)
    if schema is None:
        schema = fastavro.parse_schema(json.loads(schema_bytes))
        if len(_SCHEMA_CACHE) > 64:
            _SCHEMA_CACHE.clear()
        _SCHEMA_CACHE[schema_bytes] = schema
    sync = stream.read(16)
    records: list[dict] = []
    while stream.tell() < len(data):
        count, size = read_long(stream), read_long(stream)
        block = stream.read(size)
        if len(block) != size or stream.read(16) != sync:
            raise EOFError("truncated block or bad sync marker")
        body = io.BytesIO(zlib.decompress(block, -15) if codec == b"deflate" else block)
        records.extend(schemaless_reader(body, schema, None) for _ in range(count))
    return records


def iter_avro_file(path: str | Path) -> Iterator[tuple[str, str, PacketOrError]]:
    path = Path(path)
    try:
        with path.open("rb") as stream:
            yield from _iter_avro_stream(stream, str(path), "")
    except OSError as err:
        yield str(path), "", PacketError(str(path), "", f"cannot open: {err}")


def iter_tarball(path: str | Path) -> Iterator[tuple[str, str, PacketOrError]]:
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
                data = handle.read()  # one alert file (~60 kB); Avro needs a seekable stream
                yield from _iter_avro_stream(io.BytesIO(data), str(path), member.name)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        yield str(path), "", PacketError(str(path), "", f"corrupt or truncated tarball: {type(err).__name__}: {err}")


def _json_field(value: object, name: str) -> object:
    if value is None or not isinstance(value, str):
        return value
    return json.loads(value)


def iter_alert_parquet(path: str | Path, batch_size: int = 64) -> Iterator[tuple[str, str, PacketOrError]]:
    """Rows of an alert parquet table (``candidate``/``prv_candidates`` JSON strings, gzip-FITS cutouts)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as err:
        yield str(path), "", PacketError(str(path), "", f"unreadable parquet: {err}")
        return
    row = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for record in batch.to_pylist():
            item = f"row {row} candid {record.get('candid')}"
            row += 1
            yield str(path), item, parquet_row_to_packet(record, str(path), item)


def parquet_row_to_packet(record: dict, source: str = "parquet", item: str = "") -> PacketOrError:
    """One alert parquet row (dict) → ZTF packet dict (JSON columns decoded, cutouts wrapped), in place."""
    try:
        record["candidate"] = _json_field(record.get("candidate"), "candidate")
        record["prv_candidates"] = _json_field(record.get("prv_candidates"), "prv_candidates")
    except json.JSONDecodeError as err:
        return PacketError(source, item, f"invalid JSON in candidate/prv_candidates: {err}")
    for name in CUTOUT_FIELDS:
        value = record.get(name)
        record[name] = None if value is None or isinstance(value, dict) else {"fileName": "", "stampData": value}
    return record


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


def iter_packets_with_source(paths: Iterable[str | Path] | str | Path) -> Iterator[tuple[str, str, PacketOrError]]:
    """Like :func:`iter_packets` but yields ``(source file, item within it, packet or PacketError)``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for path in _expand(paths):
        kind = _kind(path)
        if not path.exists():
            yield str(path), "", PacketError(str(path), "", "no such file or directory")
        elif kind == "avro":
            yield from iter_avro_file(path)
        elif kind == "tar":
            yield from iter_tarball(path)
        elif kind == "parquet":
            yield from iter_alert_parquet(path)
        else:
            yield str(path), "", PacketError(str(path), "", "unknown file type (expected .avro, .tar.gz, .parquet)")


def iter_packets(paths: Iterable[str | Path] | str | Path) -> Iterator[PacketOrError]:
    """Decoded alert packets (dicts) from files, folders, tarballs and parquet tables, or PacketErrors."""
    for _source, _item, packet in iter_packets_with_source(paths):
        yield packet
