"""Message decoders: Kafka message value → alert packets (dicts) or PacketErrors, one step the stream plugs in.

- ``ztf``: one Avro container per message, as IPAC publishes ZTF alerts (``applecider_data.iter_avro_bytes``).
- ``lsst``: Rubin alerts in Confluent wire format (magic byte 0, 4-byte schema id, schemaless Avro), decoded by
  ``applecider_data.decode_wire_message`` with the writer schemas of ``applecider_data.WireSchemas``.
- ``auto``: by the first bytes (``Obj\\x01`` = Avro container, ``\\x00`` = wire format).

A decoder never raises for a bad message: it returns a PacketError naming the message, which the stream turns
into an error record (and, if configured, a dead-letter message with the raw bytes).

:class:`DecodeProcess` runs the decoder and the packet → ``Alert`` conversion (``packet_to_alert``) of a whole
batch on a separate process: both are pure Python and hold the GIL (~5 ms per ZTF alert, more than the
models), so in their own process they run on the second core while the stream process classifies the
previous batch.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.connection import wait
from typing import Any

from applecider_data import (
    AlertParseError,
    PacketError,
    WireSchemas,
    decode_wire_message,
    iter_avro_bytes,
    packet_to_alert,
)

Decoded = list  # list[dict | PacketError]
Decoder = Callable[[bytes, str], Decoded]
AVRO_CONTAINER_MAGIC = b"Obj\x01"
WIRE_FORMAT_MAGIC = b"\x00"


def decode_ztf(value: bytes, where: str) -> Decoded:
    if not value:
        return [PacketError(where, "", "empty message")]
    packets = [packet for _source, _item, packet in iter_avro_bytes(value, where)]
    return packets or [PacketError(where, "", "Avro container holds no alert")]


class RubinDecoder:
    """Wire-format messages through ``applecider_data.decode_wire_message(data, WireSchemas(dirs, registry))``;
    the schemas (and their cache of ids) are made on the first message."""

    def __init__(self, schema_dirs: tuple[str, ...] = (), registry_url: str | None = None) -> None:
        self.schema_dirs, self.registry_url = schema_dirs, registry_url
        self._schemas: WireSchemas | None = None

    def __call__(self, value: bytes, where: str) -> Decoded:
        if self._schemas is None:
            self._schemas = WireSchemas(self.schema_dirs, registry_url=self.registry_url)
        try:
            return [decode_wire_message(value, self._schemas)]
        except AlertParseError as error:
            return [PacketError(where, "", f"undecodable wire-format message: {error}")]


decode_lsst = RubinDecoder()


def decode_auto(value: bytes, where: str) -> Decoded:
    if value[:4] == AVRO_CONTAINER_MAGIC:
        return decode_ztf(value, where)
    if value[:1] == WIRE_FORMAT_MAGIC:
        return decode_lsst(value, where)
    return [PacketError(where, "", f"neither an Avro container nor wire format (first bytes {value[:4]!r})")]


DECODERS: dict[str, Decoder] = {"ztf": decode_ztf, "lsst": decode_lsst, "auto": decode_auto}


def get_decoder(name: str, lsst_schema_dirs: tuple[str, ...] = (), schema_registry_url: str | None = None) -> Decoder:
    """The decoder called ``name``; the Rubin one reads writer schemas from the directories / registry given."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; allowed: {sorted(DECODERS)}")
    if name == "ztf" or not (lsst_schema_dirs or schema_registry_url):
        return DECODERS[name]
    rubin = RubinDecoder(tuple(lsst_schema_dirs), schema_registry_url)
    if name == "lsst":
        return rubin
    return lambda value, where: (rubin if value[:1] == WIRE_FORMAT_MAGIC else decode_auto)(value, where)


_worker: dict[str, Any] = {}  # the decode process's decoder and conversion setting


def _start_worker(name: str, lsst_schema_dirs: tuple[str, ...], schema_registry_url: str | None,
                  with_cutouts: bool) -> None:  # fmt: skip
    for stop in (signal.SIGINT, signal.SIGTERM):  # the stream process decides when to stop (it finishes the batch)
        signal.signal(stop, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:  # never outlive the stream process (e.g. after its kill -9)
        threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(0)), daemon=True).start()
    _worker.update(decoder=get_decoder(name, lsst_schema_dirs, schema_registry_url), with_cutouts=with_cutouts)


def _convert(item: Any) -> Any:
    if isinstance(item, PacketError):
        return item
    try:
        return packet_to_alert(item, with_cutouts=_worker["with_cutouts"])
    except AlertParseError:
        return item  # the classifier converts it again and makes the error record naming the problem


def decode_batch(values: Sequence[tuple[bytes, str]]) -> list[list]:
    """Per message (value, where): its Alerts, packets that did not convert, and PacketErrors (in the worker)."""
    return [[_convert(item) for item in _worker["decoder"](value, where)] for value, where in values]


class DecodeProcess:
    """Decodes batches on one spawned process (never forked: the stream process runs librdkafka and torch
    threads); ``submit`` returns a Future of :func:`decode_batch`'s result. The process ignores SIGINT/SIGTERM
    (the stream process finishes its batches, then closes it) and exits when the stream process dies."""

    def __init__(self, name: str = "auto", lsst_schema_dirs: Sequence[str] = (), schema_registry_url: str | None = None,
                 with_cutouts: bool = True) -> None:  # fmt: skip
        if name not in DECODERS:
            raise ValueError(f"unknown decoder {name!r}; allowed: {sorted(DECODERS)}")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_worker,
                                         initargs=(name, tuple(lsst_schema_dirs), schema_registry_url, with_cutouts))
        self._pool.submit(len, ())  # start it now: its imports overlap the consumer joining its group

    def submit(self, values: Sequence[tuple[bytes, str]]) -> Future:
        return self._pool.submit(decode_batch, list(values))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
