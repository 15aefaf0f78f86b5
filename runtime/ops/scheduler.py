"""`CleanupScheduler`: the orphan cleanup job, in-process, on the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runtime.backends import open_backend
from runtime.config import RuntimeConfig
from runtime.errors import InvalidRequest
from runtime.ops.cleanup import CleanupReport, cleanup

log = logging.getLogger(__name__)


class CleanupScheduler:
    """Runs `cleanup` every `interval` seconds on the running event loop until `stop()`.

    Errors are logged and the next round still runs. The engine calls run in the backend's
    threads, so the loop is never blocked.

        scheduler = CleanupScheduler()   # hourly, this installation
        scheduler.start()                # inside the orchestrator's event loop
        ...
        await scheduler.stop()
    """

    def __init__(
        self, config: RuntimeConfig | None = None, *, interval: float = 3600.0, run_first: bool = True
    ) -> None:
        if interval <= 0:
            raise InvalidRequest("the cleanup interval must be positive")
        self.config = config or RuntimeConfig.load()
        self.interval = interval
        self.run_first = run_first  # one round at start(), then every interval
        self.last_report: CleanupReport | None = None
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="theappapp-cleanup")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def trigger(self) -> None:
        """Run a round now instead of waiting for the interval."""
        if self._wake is not None:
            self._wake.set()

    async def run_once(self) -> CleanupReport:
        backend = open_backend(self.config)
        try:
            report = await cleanup(backend, self.config.installation_id)
        finally:
            backend.close()
        self.last_report, self.rounds = report, self.rounds + 1
        if report.orphans or report.failed:
            log.info("cleanup removed %d orphan(s), %d failed", len(report.removed), len(report.failed))
        return report

    async def _loop(self) -> None:
        assert self._wake is not None
        first = self.run_first
        while True:
            if not first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                self._wake.clear()
            first = False
            try:
                await self.run_once()
            except Exception:
                log.exception("orphan cleanup failed; retrying in %.0fs", self.interval)
