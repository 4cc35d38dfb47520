"""Logging for the long-running commands: one line per event on stderr."""

from __future__ import annotations

import logging
import os


def configure_logging() -> None:
    """Log INFO and above to stderr unless the host program configured logging already.

    ``ODDWATCH_LOG_LEVEL`` (e.g. ``DEBUG``) changes the level.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(
        level=os.environ.get("ODDWATCH_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
