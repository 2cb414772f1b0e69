"""AppleCiDEr stream: ``cider stream`` runs ``Classifier.stream`` on a Kafka consumer group.

A source (Kafka consumer group, pluggable packet decoders), sinks idempotent on ``candid`` (Kafka topic with
the versioned Avro schema shipped here, JSON lines, SkyPortal/Fritz annotations and classifications, Kowalski
Mongo ``$set`` updates) and at-least-once offsets: a batch's offsets are committed only after every sink
accepted it. See docs/STREAM.md.
"""

from .avro_output import RECORD_SCHEMA_VERSION, decode_records, encode_record, record_schema
from .decoders import DECODERS, get_decoder
from .runner import StreamRunner, StreamStats
from .settings import StreamSettings

__version__ = "0.1.0"
__all__ = [
    "DECODERS", "RECORD_SCHEMA_VERSION", "StreamRunner", "StreamSettings", "StreamStats", "decode_records",
    "encode_record", "get_decoder", "record_schema",
]  # fmt: skip
