"""The project's base for errors a user can fix (bad input, config, paths, missing builds).

The ``cider`` command prints such an error as one line on stderr (what is wrong and what to do) and exits
with 2; so do ``ValueError`` and ``OSError``. Library code raises the specific subclass (ConfigError,
DatasetError, PretrainedError, ...) and never prints or exits itself.
"""

from __future__ import annotations


class CiderError(Exception):
    """An error caused by the user's input or environment, reported without a traceback by ``cider``."""
