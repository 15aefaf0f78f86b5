"""The Docker engine connection: docker-py's blocking calls, run off the event loop with a deadline.

This is the one client factory of the runtime: the Docker backend, and through it the
manager, the pool, cleanup, `ls` and `doctor`, all connect here.

docker-py has no per-call cancellation and some calls (an exec under gVisor) can hang
forever, so every call runs in a dedicated thread pool and the caller stops waiting at
the deadline; the socket timeout eventually frees the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlparse

import docker
import docker.errors
import requests.exceptions

from runtime.backends.docker.transport import share_one_pool
from runtime.errors import ENGINE_START_HINT, EngineError, EngineUnavailable

T = TypeVar("T")

# Transport failures mean "the engine is not there"; API errors (404, 409, …) are answers.
_TRANSPORT_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)


class Engine:
    """A lazily connected docker-py client plus the thread pool its calls run in."""

    def __init__(self, docker_host: str | None, api_timeout: float, max_workers: int = 32) -> None:
        self.docker_host = docker_host
        self.api_timeout = api_timeout
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="theappapp-engine")
        self._client: docker.DockerClient | None = None
        self._closed = False
        self._connect_lock = threading.Lock()  # not asyncio's: a process-wide manager outlives loops

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise EngineUnavailable("not connected to the Docker engine; call startup() first")
        return self._client

    async def connect(self) -> docker.DockerClient:
        if self._client is None:
            await self._run(self._make_client, self.api_timeout)
        return self.client

    def _make_client(self) -> None:
        with self._connect_lock:
            if self._client is None:
                self._client = self._new_client()

    def _new_client(self) -> docker.DockerClient:
        environment = dict(os.environ)
        if self.docker_host:
            environment["DOCKER_HOST"] = self.docker_host
        try:
            # Version detection pings the engine: a dead socket fails here, clearly.
            client = docker.DockerClient.from_env(
                environment=environment, timeout=int(self.api_timeout) + 1, max_pool_size=64
            )
        except docker.errors.DockerException as err:
            raise EngineUnavailable(f"Docker engine unreachable at {self.where}: {err}; {ENGINE_START_HINT}") from err
        share_one_pool(client.api)
        return client

    @property
    def base_url(self) -> str:
        """Where to reach the engine, for a client made on the spot (at interpreter exit)."""
        return self.where

    @property
    def where(self) -> str:
        return self.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def endpoint(self) -> tuple[str, str | int]:
        """("unix", path) or ("tcp", "host:port") for raw exec streams; TLS and ssh are not supported."""
        url = urlparse(self.where)
        if url.scheme == "unix":
            return "unix", url.path
        if url.scheme in ("tcp", "http") and not os.environ.get("DOCKER_TLS_VERIFY"):
            return "tcp", f"{url.hostname}:{url.port or 2375}"
        raise EngineUnavailable(f"exec streaming supports unix:// and plain tcp:// engines, not {self.where}")

    @property
    def api_version(self) -> str:
        return str(self.client.api.api_version)

    async def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        deadline: float | None = None,
        on_abandon: Callable[[T], object] | None = None,
        on_finish: Callable[[], object] | None = None,
        **kwargs: Any,
    ) -> T:
        """`fn(*args, **kwargs)` in the pool, or `EngineUnavailable` past the deadline or on transport failure.

        `on_abandon(result)` runs if the caller stops waiting (deadline, cancellation) and the call
        succeeds anyway — e.g. to remove a container whose creation nobody is waiting for any more.
        `on_finish()` runs once the call itself has ended, however (in the pool's thread, or here if
        it never started), whether or not anyone still waits for it.
        """
        return await self._run(functools.partial(fn, *args, **kwargs), deadline or self.api_timeout, on_abandon,
                               on_finish)

    async def _run(
        self, job: Callable[[], T], deadline: float, on_abandon: Callable[[T], object] | None = None,
        on_finish: Callable[[], object] | None = None,
    ) -> T:
        try:
            future = self._executor.submit(job)
        except BaseException:  # (the pool is shut down: the call never starts, and has ended)
            if on_finish is not None:
                on_finish()
            raise
        if on_finish is not None:
            future.add_done_callback(lambda _: on_finish())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), deadline)
        except TimeoutError as err:
            self._abandon(future, on_abandon)
            name = getattr(job, "func", job)
            raise EngineUnavailable(
                f"Docker engine did not answer {getattr(name, '__name__', 'a call')} within {deadline:.0f}s"
            ) from err
        except asyncio.CancelledError:
            self._abandon(future, on_abandon)
            raise
        except _TRANSPORT_ERRORS as err:
            raise EngineUnavailable(f"lost the Docker engine at {self.where}: {err}") from err
        except docker.errors.DockerException as err:
            # An answer, not a lost engine: a refusal the backend did not handle itself.
            name = getattr(getattr(job, "func", job), "__name__", "a call")
            detail = getattr(err, "explanation", None) or str(err)
            raise EngineError(f"the Docker engine refused {name}: {detail}") from err

    @staticmethod
    def _abandon(future: Future[T], on_abandon: Callable[[T], object] | None) -> None:
        if on_abandon is None:
            return

        def finished(done: Future[T]) -> None:
            if not done.cancelled() and done.exception() is None:
                with contextlib.suppress(Exception):
                    on_abandon(done.result())

        future.add_done_callback(finished)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run `fn` in the pool without waiting for it (background removal); the future says when it is done."""
        return self._executor.submit(fn, *args, **kwargs)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        if self._client is not None:
            self._client.close()
            self._client = None
        self._executor.shutdown(wait=False, cancel_futures=True)
