"""The URL policy of a running worker, with a blocklist reloaded live.

The operator's blocklist file (`HYPERLINKR_BLOCKLIST_FILE`) is read again
when its modification time changes, checked at most once a second on the
request path, so editing the file takes effect on every worker within a
second, without a restart. A file that fails to parse keeps the previous
list in force and says so in the log.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError
from hyperlinkr.urlpolicy import UrlPolicy, load_blocklist

__all__ = ["LivePolicy"]

logger = logging.getLogger(__name__)

_CHECK_EVERY_S = 1.0


class LivePolicy:
    """Hands out the current `UrlPolicy`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path: Path | None = settings.blocklist_file
        self._mtime_ns: int | None = None
        self._checked_s = 0.0
        self._policy = UrlPolicy.from_settings(settings)
        self._reload()

    def current(self) -> UrlPolicy:
        now_s = time.monotonic()
        if self._path is not None and now_s - self._checked_s >= _CHECK_EVERY_S:
            self._checked_s = now_s
            self._reload()
        return self._policy

    def _reload(self) -> None:
        if self._path is None:
            return
        try:
            mtime_ns: int | None = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime_ns = None
        if mtime_ns == self._mtime_ns:
            return
        self._mtime_ns = mtime_ns
        try:
            blocked = (
                load_blocklist(self._path) if mtime_ns is not None else frozenset()
            )
        except ConfigError as exc:
            logger.error("%s; keeping the blocklist loaded before", exc)
            return
        self._policy = UrlPolicy.from_settings(self._settings, blocked)
        logger.info("blocklist %s: %d hosts", self._path, len(blocked))
