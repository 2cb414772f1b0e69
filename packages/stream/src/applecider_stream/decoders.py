"""Message decoders: Kafka message value → alert packets (dicts) or PacketErrors, one step the stream plugs in.

- ``ztf``: one Avro container per message, as IPAC publishes ZTF alerts (``applecider_data.iter_avro_bytes``).
- ``lsst``: Rubin alerts in Confluent wire format (magic byte 0, 4-byte schema id, schemaless Avro), decoded by
  ``applecider_data.decode_wire_message`` when that applecider-data provides it.
- ``auto``: by the first bytes (``Obj\\x01`` = Avro container, ``\\x00`` = wire format).

A decoder never raises for a bad message: it returns a PacketError naming the message, which the stream turns
into an error record (and, if configured, a dead-letter message with the raw bytes).
"""

from __future__ import annotations

from collections.abc import Callable

from applecider_data import PacketError, iter_avro_bytes

Decoded = list  # list[dict | PacketError]
Decoder = Callable[[bytes, str], Decoded]
AVRO_CONTAINER_MAGIC = b"Obj\x01"
WIRE_FORMAT_MAGIC = b"\x00"


def decode_ztf(value: bytes, where: str) -> Decoded:
    if not value:
        return [PacketError(where, "", "empty message")]
    packets = list(iter_avro_bytes(value, where))
    return packets or [PacketError(where, "", "Avro container holds no alert")]


def decode_lsst(value: bytes, where: str) -> Decoded:
    try:
        from applecider_data import decode_wire_message
    except ImportError:
        return [PacketError(where, "", "Rubin wire-format decoding needs applecider_data.decode_wire_message, "
                                       "which this applecider-data does not provide")]  # fmt: skip
    try:
        return [decode_wire_message(value)]
    except (ValueError, KeyError, EOFError, TypeError) as error:
        return [PacketError(where, "", f"undecodable wire-format message: {type(error).__name__}: {error}")]


def decode_auto(value: bytes, where: str) -> Decoded:
    if value[:4] == AVRO_CONTAINER_MAGIC:
        return decode_ztf(value, where)
    if value[:1] == WIRE_FORMAT_MAGIC:
        return decode_lsst(value, where)
    return [PacketError(where, "", f"neither an Avro container nor wire format (first bytes {value[:4]!r})")]


DECODERS: dict[str, Decoder] = {"ztf": decode_ztf, "lsst": decode_lsst, "auto": decode_auto}


def get_decoder(name: str) -> Decoder:
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; allowed: {sorted(DECODERS)}")
    return DECODERS[name]
