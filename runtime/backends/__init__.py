"""Engines the sandbox core runs on, behind one protocol (`runtime.backends.base.Backend`).

`open_backend(config)` is the one factory: the manager, the pool, cleanup, `ls` and
`doctor` all get their engine from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.backends.base import Backend
    from runtime.config import RuntimeConfig


def open_backend(config: RuntimeConfig) -> Backend:
    """The backend for this configuration (Docker: the only one today). It connects on first use."""
    from runtime.backends.docker.backend import DockerBackend

    return DockerBackend(config.engine, config.security.user, egress=config.egress,
                         sandbox_network=config.network.name, storage=config.storage)
