"""AppleCiDEr data tools: ZTF and Rubin alert readers, Kowalski/SkyPortal sources, public importers, dataset builder.

Raw packets and tables are converted once, here, into ``applecider_core.records``; ``cider data build``
writes the shared dataset that ``open_dataset`` (re-exported from ``applecider_core.dataset``) reads.
"""

from applecider_core.dataset import SharedDataset, open_dataset

from .convert import merge_light_curves, packet_survey, packet_to_alert
from .errors import AlertParseError, PacketError, SourceError
from .readers import iter_avro_bytes, iter_packets, iter_packets_with_source, parquet_row_to_packet
from .wire import WireSchemas, decode_wire_message, wire_header

__version__ = "0.1.0"
__all__ = [
    "AlertParseError", "PacketError", "SharedDataset", "SourceError", "WireSchemas", "decode_wire_message",
    "iter_avro_bytes", "iter_packets", "iter_packets_with_source", "merge_light_curves", "open_dataset",
    "packet_survey", "packet_to_alert", "parquet_row_to_packet", "wire_header",
]  # fmt: skip
