"""Message decoders: Kafka message value → alert packets (dicts) or PacketErrors, one step the stream plugs in.

- ``ztf``: one Avro container per message, as IPAC publishes ZTF alerts (``applecider_data.iter_avro_bytes``).
- ``lsst``: Rubin alerts in Confluent wire format (magic byte 0, 4-byte schema id, schemaless Avro), decoded by
  ``applecider_data.decode_wire_message`` with the writer schemas of ``applecider_data.WireSchemas``.
- ``auto``: by the first bytes (``Obj\\x01`` = Avro container, ``\\x00`` = wire format).

A decoder never raises for a bad message: it returns a PacketError naming the message, which the stream turns
into an error record (and, if configured, a dead-letter message with the raw bytes).
"""

from __future__ import annotations

from collections.abc import Callable

from applecider_data import AlertParseError, PacketError, WireSchemas, decode_wire_message, iter_avro_bytes

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
