"""The Docker backend's volume calls: list, inspect and remove (a quota volume's filesystem with it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import docker

from runtime.backends.base import ContainerRecord, LabelFilter, ResourceInUse, VolumeRecord
from runtime.backends.docker import calls
from runtime.labels import MANAGED

if TYPE_CHECKING:
    from runtime.backends.docker.engine import Engine
    from runtime.backends.docker.first_mounts import FirstMounts
    from runtime.backends.docker.storage import DockerStorage


def label_filters(labels: LabelFilter) -> dict[str, list[str]]:
    return {"label": [key if value is None else f"{key}={value}" for key, value in labels.items()]}


def labels_match(values: Mapping[str, str], labels: LabelFilter) -> bool:
    """The engine's label filter, checked again: a filter bug must not widen what the core acts on."""
    return all(key in values and (want is None or values[key] == want) for key, want in labels.items())


class VolumeCalls:
    """Needs what `DockerBackend` sets up: its engine, storage, first-mount bookkeeping and container list."""

    storage: DockerStorage
    _first_mounts: FirstMounts

    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # DockerBackend's

    async def _client(self) -> docker.DockerClient:
        raise NotImplementedError  # DockerBackend's

    async def list_containers(self, labels: LabelFilter) -> list[ContainerRecord]:
        raise NotImplementedError  # DockerBackend's

    # -- volumes ----------------------------------------------------------------------------------

    async def list_volumes(self, labels: LabelFilter) -> list[VolumeRecord]:
        api = (await self._client()).api
        found = (await self.engine.call(api.volumes, filters=label_filters(labels))).get("Volumes") or ()
        return [
            VolumeRecord(str(v["Name"]), dict(v.get("Labels") or {}))
            for v in found
            if labels_match(v.get("Labels") or {}, labels)
        ]

    async def inspect_volume(self, name: str) -> VolumeRecord | None:
        return await self.engine.call(calls.inspect_volume, (await self._client()).api, name)

    async def remove_volume(self, name: str) -> bool:
        # A quota volume bound straight from its filesystem is in use without the engine knowing: asked first.
        if any(name in c.volumes for c in await self.list_containers({MANAGED: "true"})):
            raise ResourceInUse(f"volume {name} is in use by a container")
        self._first_mounts.forget(name)
        removed = await self.engine.call(calls.remove_volume, (await self._client()).api, name)
        return await self.storage.remove(name) or removed  # its filesystem, once Docker's volume is gone
