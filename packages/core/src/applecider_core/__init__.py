"""Shared machinery of AppleCiDEr: taxonomy, records, save/load, losses, metrics, EMA, training loop, plots."""

__version__ = "0.1.0"
