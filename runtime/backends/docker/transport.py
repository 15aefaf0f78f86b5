"""The HTTP transport to a local engine's socket: one connection pool, no environment lookups.

docker-py's Unix-socket adapter keeps a connection pool per request *URL*, path included, and at
most 25 of them: every new container id in a path makes a new pool with a new connection to the
socket, and closes an older one. requests, for its part, reads the whole environment for proxy
settings (and looks for ~/.netrc) on every request, though neither can apply to a Unix socket.
Together they were about a third of the manager's CPU per warm-pool task (profiled with yappi over
back-to-back tasks). Here every request shares one pool, and the environment is not consulted.
"""

from __future__ import annotations

from typing import Any

import docker
from docker.transport import UnixHTTPAdapter

POOL_KEY = "http+docker://localhost"  # any one key: the pool's connections all go to the one socket


class OnePoolUnixAdapter(UnixHTTPAdapter):
    def get_connection(self, url: str | bytes, proxies: Any = None) -> Any:
        return super().get_connection(POOL_KEY, proxies)


def share_one_pool(api: docker.APIClient) -> None:
    """For an engine on a Unix socket: one connection pool for every request, and no proxy or netrc
    lookups. Other transports (tcp, ssh) are left as docker-py made them."""
    current = api.get_adapter(api.base_url)
    if not isinstance(current, UnixHTTPAdapter) or isinstance(current, OnePoolUnixAdapter):
        return
    api.mount("http+docker://", OnePoolUnixAdapter(current.socket_path, current.timeout,
                                                   max_pool_size=current.max_pool_size))
    current.close()  # (its pools: the version ping's connection)
    api.trust_env = False
