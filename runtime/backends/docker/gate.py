"""Engine-wide bookkeeping of this process's container lifecycle calls: their load, and the rename gate.

Both are process-wide, like the engine they protect: several managers in one process
share it, its networks and its network controller's locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import docker.errors

T = TypeVar("T")


class EngineLoad:
    """Container creates and starts of this process in flight (waiting at the gate included).

    The warm pool's measure of whether the engine has spare capacity: on a saturated engine a
    spare made in the background is not free, it delays the task starts it competes with.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0

    @property
    def busy(self) -> int:
        return self._n

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            self._n += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._n -= 1


LOAD = EngineLoad()


class EndpointGate:
    """Keeps renames apart from container starts and removals (a readers-writer lock, writers first).

    Docker 20.10's libnetwork keeps a persisted endpoint count per network, and loses
    updates to it under concurrent endpoint churn; a rename adds a write-back of a stale
    count (`endpoint.rename` -> `endpointCnt.updateStore`). Once the count drifts the
    network cannot be removed ("has active endpoints") until the daemon restarts. Measured
    here with 16 concurrent tasks: removal failed 3 runs in 3 with ungated renames, 1 in 7
    with this gate, 1 in 4 with the pool off. Starts and removals share the gate; a rename
    (~3 ms) takes it alone. It covers the containers of this process only.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._writers = 0  # renames waiting or running: new starts and removals wait behind them
        self._writing = False

    def shared_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A start (counted as engine load) or, with `uncounted_call`, a removal, beside other such calls."""
        result: T = LOAD.call(self._shared_call, fn, *args, **kwargs)
        return result

    def uncounted_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like `shared_call`, but not engine load: the manager's own removals must not stop the pool
        from making the next task's spare (measured: back-to-back tasks then never found one)."""
        return self._shared_call(fn, *args, **kwargs)

    def _shared_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._cond:
            while self._writers:
                self._cond.wait()
            self._shared += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    def exclusive_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._cond:
            self._writers += 1
            while self._shared or self._writing:
                self._cond.wait()
            self._writing = True
        try:
            return fn(*args, **kwargs)
        finally:
            with self._cond:
                self._writing = False
                self._writers -= 1
                self._cond.notify_all()


GATE = EndpointGate()


def remove_container_sync(api: docker.APIClient, container_id: str, *, own_endpoint: bool = True) -> None:
    """Force-remove a container (volumes kept); gone already or being removed is fine. Without an
    endpoint of its own (in another container's network namespace) it has no endpoint count to race."""
    try:
        if own_endpoint:
            GATE.uncounted_call(api.remove_container, container_id, force=True, v=False)
        else:
            api.remove_container(container_id, force=True, v=False)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as err:
        if err.status_code != 409:  # 409: a removal is already in progress
            raise
        if not own_endpoint:  # its namespace goes to the project's next sandbox: only once it is gone
            _wait_gone(api, container_id)


def _wait_gone(api: docker.APIClient, container_id: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            api.inspect_container(container_id)
        except docker.errors.NotFound:
            return
        time.sleep(0.05)
    raise docker.errors.APIError(f"container {container_id[:12]} was still being removed after {seconds:.0f} s")
