"""Making one spare: its labels (no task yet), its container (the same spec a task gets), the memory check."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from runtime import labels
from runtime.backends.base import Backend
from runtime.config import RuntimeConfig
from runtime.registry import Registry
from runtime.sandbox.owner import Owner
from runtime.sandbox.spares import SPARE, SPARE_PREFIX, Key, Spare, mem_available
from runtime.sandbox.spec import build_spec
from runtime.sandbox.upkeep import LEASE_SECONDS


class SpareMaker:
    def __init__(self, backend: Backend, config: RuntimeConfig, owner: Owner, registry: Registry, network: str) -> None:
        self.backend = backend
        self.config = config
        self.owner = owner
        self.registry = registry
        self.network = network

    def memory_ok(self) -> bool:
        available = mem_available()
        return available is None or available >= self.config.pool.min_available_memory

    def spare_labels(self, project_id: str, language: str, now: float) -> dict[str, str]:
        """What is known when a spare is made: no task. Its expiry covers the idle wait and a task's life."""
        tasks = self.config.tasks
        out = self.owner.labels(
            task_id="", project_id=project_id, language=language,
            ttl=self.config.pool.idle_ttl + tasks.container_ttl, now=now, extra=tasks.extra_labels,
        )
        del out[labels.TASK]
        out[labels.POOL] = SPARE
        return out

    async def make(self, key: Key, remove_soon: Callable[[str], None]) -> Spare:
        """A started spare for the key; nothing is left behind if it cannot be inspected after starting."""
        project_id, language = key
        lang = self.registry.resolve(language)
        name = f"{SPARE_PREFIX}{project_id}-{lang.name}-{uuid.uuid4().hex[:10]}"
        spec = build_spec(
            self.config, self.registry, self.owner, name=name, project_id=project_id, language=lang,
            labels=self.spare_labels(project_id, lang.name, time.time()), network=self.network,
        )
        # Leased from its agent's first moment, not from the first renewal after `make` returns: a manager
        # killed while the spare starts leaves one that ends itself, not one only cleanup removes.
        spec = replace(spec, agent_lease=LEASE_SECONDS)
        # Created from the image's id, not its tag: the id the spare records is then the one it runs, even
        # if the tag moves away and back while it starts. (Cached by the backend until an image event.)
        image = await self.backend.image(spec.image)
        if image is not None:
            spec = replace(spec, image=image.id)
        container_id = await self.backend.create(spec)
        try:
            if image is not None and self.backend.known_running(container_id):  # (its agent greeted it)
                image_id = image.id
            else:
                state = await self.backend.inspect(container_id)
                if state is None:
                    raise RuntimeError(f"spare {name} vanished right after it started")
                image_id = state.image_id
        except BaseException:
            remove_soon(container_id)
            raise
        return Spare(container_id, name, key, self.network, image_id, time.monotonic())
