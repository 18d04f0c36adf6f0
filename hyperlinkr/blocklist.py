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

from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError
from hyperlinkr.filewatch import FileWatch
from hyperlinkr.urlpolicy import UrlPolicy, load_blocklist

__all__ = ["LivePolicy"]

logger = logging.getLogger(__name__)

_CHECK_EVERY_S = 1.0


class LivePolicy:
    """Hands out the current `UrlPolicy`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        path = settings.blocklist_file
        self._watch = FileWatch(path) if path is not None else None
        self._checked_s = 0.0
        self._policy = UrlPolicy.from_settings(settings)
        self._reload()

    def current(self) -> UrlPolicy:
        now_s = time.monotonic()
        if self._watch is not None and now_s - self._checked_s >= _CHECK_EVERY_S:
            self._checked_s = now_s
            self._reload()
        return self._policy

    def _reload(self) -> None:
        if self._watch is None or not self._watch.changed():
            return
        path = self._watch.path
        try:
            blocked = load_blocklist(path) if self._watch.exists else frozenset()
        except ConfigError as exc:
            logger.error("%s; keeping the blocklist loaded before", exc)
            return
        if blocked != self._policy.blocked_hosts:
            self._policy = UrlPolicy.from_settings(self._settings, blocked)
            logger.info("blocklist %s: %d hosts", path, len(blocked))
