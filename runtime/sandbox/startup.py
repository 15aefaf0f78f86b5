"""What `ContainerManager.startup()` makes sure of before the first task, in the engine's words.

The engine answers and has the configured OCI runtime; the images the configuration requires are
built; the sandbox network and its firewall are in place; project storage is ready (or said not
to be). What cannot be set up is refused with a clear error, or, where sandboxes can still run
less confined, logged plainly and kept in the statuses the manager shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from runtime.backends.base import Backend, NetworkPolicyStatus
from runtime.backends.storage import StorageStatus
from runtime.config import RuntimeConfig
from runtime.errors import ConfigError, ImageMissing
from runtime.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    images: dict[str, bool]  # language -> its image is on the engine
    network: NetworkPolicyStatus | None  # None: the sandbox network is not in use
    storage: StorageStatus | None  # None: storage is off in the configuration


async def prepare(backend: Backend, config: RuntimeConfig, registry: Registry) -> Readiness:
    facts = await backend.probe()
    runtime = config.engine.runtime or facts.default_runtime
    if runtime not in facts.runtimes:
        raise ConfigError(
            f"OCI runtime {runtime!r} is not configured on the engine (available: {', '.join(facts.runtimes)})"
        )
    tag = config.engine.image_tag
    images = {name: f"{lang.image}:{tag}" in facts.images for name, lang in registry.languages.items()}
    required = {registry.resolve(r).name for r in config.engine.required_languages}
    missing = sorted(required - {name for name, present in images.items() if present})
    if missing:
        raise ImageMissing(
            f"images not on this engine for: {', '.join(missing)}; build them with: "
            + "; ".join(f"nox -s build -- {name}" for name in missing)
        )
    network = None
    if config.network.mode == "sandbox":
        network = await backend.ensure_network(config.network.name, install_firewall=config.network.install_firewall)
        if network.problems:
            log.warning("sandbox network %s is NOT fully isolated: %s", network.network_name,
                        "; ".join(network.problems))
    storage = None
    if config.storage.enabled:
        storage = await backend.storage.prepare()
        if not storage.enforced:
            log.warning("disk quotas are NOT enforced: project volumes are plain volumes, unbounded: %s",
                        "; ".join(storage.problems))
    return Readiness(images, network, storage)
