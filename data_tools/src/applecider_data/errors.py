"""Errors and per-item problem records of the data boundary.

A bad item never crashes a batch: readers yield :class:`PacketError` in place of the packet, converters raise
:class:`AlertParseError` naming the field, and the dataset builder records both in ``skipped.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

from applecider_core.errors import CiderError


class AlertParseError(ValueError):
    """A fatal problem in one alert packet: ``field`` is the packet field at fault, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SourceError(CiderError, RuntimeError):
    """A remote source (Kowalski, SkyPortal) answered with an error or could not be reached."""


@dataclass(frozen=True)
class PacketError:
    """One item a reader could not decode.

    ``source``: the file (or tarball / parquet file) read; ``item``: the member, row or record inside it
    (``""`` when the whole file failed); ``reason``: what went wrong, specific enough to fix the input.
    """

    source: str
    item: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}::{self.item}" if self.item else self.source
        return f"{where}: {self.reason}"
