"""The Docker backend's HTTP side without an engine: one connection pool for a Unix socket (transport.py),
and the image cache that the engine's image events clear (images.py)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker

from runtime.backends.base import ImageRecord
from runtime.backends.docker.images import ImageCache
from runtime.backends.docker.transport import OnePoolUnixAdapter, share_one_pool


def test_a_unix_socket_client_shares_one_pool_for_every_url_and_reads_no_environment() -> None:
    api = docker.APIClient(base_url="unix:///nowhere.sock", version="1.41")  # (a version given: no ping)
    per_url = api.get_adapter(api.base_url)
    assert per_url.get_connection(api._url("/containers/a/json")) is not per_url.get_connection(
        api._url("/containers/b/json"))  # docker-py's own: a pool (and a connection) per container id
    share_one_pool(api)
    adapter = api.get_adapter(api.base_url)
    assert isinstance(adapter, OnePoolUnixAdapter) and adapter.socket_path == "/nowhere.sock"
    pools = {id(adapter.get_connection(api._url(f"/containers/{c}/json"))) for c in "abcdefgh"}
    assert len(pools) == 1 and api.trust_env is False
    share_one_pool(api)  # again: nothing changes
    assert api.get_adapter(api.base_url) is adapter


def test_a_tcp_client_is_left_as_docker_py_made_it() -> None:
    api = docker.APIClient(base_url="tcp://127.0.0.1:2375", version="1.41")
    before = api.get_adapter(api.base_url)
    share_one_pool(api)
    assert api.get_adapter(api.base_url) is before and api.trust_env is True


class Events:
    """A fake engine whose image event stream the test feeds."""

    def __init__(self) -> None:
        self.feed: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def events(self, **_: Any) -> Iterator[dict[str, Any]]:
        def stream() -> Iterator[dict[str, Any]]:
            while (event := self.feed.get()) is not None:
                yield event
        return stream()


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + 2
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_answers_are_kept_while_events_are_watched_and_every_image_event_clears_them() -> None:
    engine, cache, fetched = Events(), ImageCache(), []

    def fetch() -> ImageRecord:
        fetched.append(1)
        return ImageRecord("img", f"sha-{len(fetched)}", 1)

    assert cache.get("img", fetch).id == "sha-1" and cache.get("img", fetch).id == "sha-2"  # not watched
    cache.watch(engine)  # type: ignore[arg-type]
    assert cache.get("img", fetch).id == "sha-3" and cache.get("img", fetch).id == "sha-3"  # kept
    engine.feed.put({"Action": "tag"})
    wait_until(lambda: cache.get("img", fetch).id == "sha-4")
    engine.feed.put(None)  # the stream ends: nothing kept from now on
    wait_until(lambda: not cache._watching)
    assert cache.get("img", fetch).id != cache.get("img", fetch).id
    cache.close()


def test_an_answer_fetched_while_an_image_changed_is_not_kept() -> None:
    engine, cache = Events(), ImageCache()
    cache.watch(engine)  # type: ignore[arg-type]
    fetching, changed = threading.Event(), threading.Event()

    def slow_fetch() -> ImageRecord:
        fetching.set()
        changed.wait(2)
        return ImageRecord("img", "sha-old", 1)  # read before the change

    reader = threading.Thread(target=cache.get, args=("img", slow_fetch))
    reader.start()
    fetching.wait(2)
    engine.feed.put({"Action": "tag"})  # the tag moves while the old answer is on its way
    wait_until(engine.feed.empty)
    time.sleep(0.1)  # (taken from the stream: now handled by the follower)
    changed.set()
    reader.join(2)
    assert cache.get("img", lambda: ImageRecord("img", "sha-new", 1)).id == "sha-new"
    engine.feed.put(None)
    cache.close()


def test_an_engine_that_cannot_open_its_event_stream_leaves_nothing_kept_and_raises_nothing() -> None:
    import requests.exceptions

    class Gone:
        def events(self, **_: Any) -> Iterator[dict[str, Any]]:
            raise requests.exceptions.ConnectionError("No such file or directory")

    cache, fetched = ImageCache(), []

    def fetch() -> ImageRecord:
        fetched.append(1)
        return ImageRecord("img", "sha", 1)

    cache.watch(Gone())  # type: ignore[arg-type]  # (the socket is gone: as a plain question would find)
    cache.get("img", fetch)
    cache.get("img", fetch)
    assert len(fetched) == 2  # not watched: every question goes to the engine (which says it is gone)
