"""A thread that reads the egress proxy's access log as it is written, and keeps the proxy up.

When the log stream ends, the proxy has stopped: the follower starts it again (a dead proxy
fails closed meanwhile: allowlisted sandboxes have no other way out) and goes on reading from
where it was, so no connection is reported twice or lost across the restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.backends.docker.egress.audit import parse_line
from runtime.backends.egress import EgressRecord

log = logging.getLogger(__name__)
_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class LogFollower:
    """`start()` once; records go to `on_record` from this thread."""

    def __init__(self, connect: Callable[[], Any], keep_running: Callable[[Any], tuple[str, bool]],
                 on_record: Callable[[EgressRecord], None]) -> None:
        self._connect = connect  # -> a docker APIClient whose reads may wait as long as the proxy is quiet
        self._keep_running = keep_running  # (api) -> (the proxy's container id, whether it had to be started)
        self._on_record = on_record
        self._stop = threading.Event()
        self._stream: Any = None
        self._last_at = time.time()
        self._thread = threading.Thread(target=self._run, name="theappapp-egress-audit", daemon=True)
        self.restarts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a stream another thread reads may race; the thread ends anyway
                log.debug("closing the egress log stream", exc_info=True)

    def _run(self) -> None:
        failures = 0
        api = None
        while not self._stop.is_set():
            try:
                api = api or self._connect()
                container, started = self._keep_running(api)
                self.restarts += started
                self._follow(api, container)
                failures = 0
            except Exception as err:
                if self._stop.is_set():
                    return
                api = None  # a fresh connection next time
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("egress audit: %s; trying again in %.1f s", err, delay)
                self._stop.wait(delay)

    def _follow(self, api: Any, container: str) -> None:
        since = int(self._last_at)  # whole seconds: lines of that second are read again and skipped below
        self._stream = api.logs(container, stdout=True, stderr=False, stream=True, follow=True, since=since)
        pending = b""
        try:
            for chunk in self._stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._line(line.decode("utf-8", "replace"))
        finally:
            self._stream = None

    def _line(self, text: str) -> None:
        record = parse_line(text)
        if record is None or record.at < self._last_at:  # read before a reconnect, or before we started
            return
        self._last_at = max(self._last_at, record.at)
        try:
            self._on_record(record)
        except Exception:
            log.exception("an egress listener failed")
