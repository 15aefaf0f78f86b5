"""The blocking docker-py calls of the Docker backend, each translating the refusals the core cares
about into the `SandboxError` tree (anything else becomes `EngineError` in `Engine.call`).

They run in the engine's thread pool, never on the event loop.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors

from runtime import labels
from runtime.backends.base import ContainerRecord, ImageRecord, NameTaken, ResourceInUse, VolumeRecord
from runtime.backends.docker.gate import GATE, LOAD
from runtime.backends.docker.hostconfig import create_kwargs, host_config
from runtime.backends.docker.storage.engine_volumes import Device
from runtime.errors import EngineError, FileMissing, ImageMissing, InvalidPath
from runtime.labels import NETNS
from runtime.sandbox.spec import ContainerSpec

_READ_SLACK = 1024 * 1024  # an archive's headers and padding over the file's own size


def create(api: docker.APIClient, spec: ContainerSpec, agent: str | None,
           devices: Mapping[str, Device] | None = None) -> str:
    try:
        built = api.create_host_config(**host_config(spec, agent, devices))
        created = LOAD.call(api.create_container, **create_kwargs(spec, built, agent))
    except docker.errors.ImageNotFound as err:
        raise ImageMissing(f"image {spec.image} is not on this engine") from err
    except docker.errors.APIError as err:
        if err.status_code == 409:
            raise NameTaken(f"container name {spec.name} is in use") from err
        raise
    return str(created["Id"])


def rename(api: docker.APIClient, container_id: str, name: str, *, own_endpoint: bool = True) -> None:
    """`own_endpoint` False: the container is in another's network namespace (netns.py), its rename
    touches no endpoint and need not wait for the gate (see gate.py)."""
    try:
        if own_endpoint:
            GATE.exclusive_call(api.rename, container_id, name)  # GATE: see gate.py
        else:
            api.rename(container_id, name)
    except docker.errors.APIError as err:
        if err.status_code == 409:
            raise NameTaken(f"container name {name} is in use") from err
        raise


def image_agent(api: docker.APIClient, reference: str) -> str | None:
    """The path of the image's sandbox agent (its label), or None for an image without one."""
    return agent_of(image(api, reference), reference)


def agent_of(record: ImageRecord | None, reference: str) -> str | None:
    """The agent path an inspected image (None: not on this engine, `ImageMissing`) names, or None."""
    if record is None:
        raise ImageMissing(f"image {reference} is not on this engine")
    agent = record.labels.get(labels.IMAGE_AGENT)
    return agent if agent and agent.startswith("/") else None


def inspect_container(api: docker.APIClient, container: str) -> dict[str, Any] | None:
    try:
        attrs: dict[str, Any] = api.inspect_container(container)
    except docker.errors.NotFound:
        return None
    return attrs


def image(api: docker.APIClient, reference: str) -> ImageRecord | None:
    try:
        attrs = api.inspect_image(reference)  # type: ignore[no-untyped-call]
    except docker.errors.ImageNotFound:
        return None
    values = (attrs.get("Config") or {}).get("Labels") or {}
    return ImageRecord(reference, str(attrs["Id"]), int(attrs.get("Size") or 0), dict(values))


def container_record(entry: dict[str, Any], labels: dict[str, str], quota_mounts: str = "") -> ContainerRecord:
    """An entry of the engine's container list, with `labels` as the backend reports them. A quota volume
    bound straight from its filesystem (under `quota_mounts`, named by the volume) counts as that volume."""
    volumes = [str(m.get("Name", "")) for m in entry.get("Mounts") or () if m.get("Type") == "volume"]
    volumes += [os.path.basename(str(m.get("Source", ""))) for m in entry.get("Mounts") or ()
                if quota_mounts and m.get("Type") == "bind" and os.path.dirname(str(m.get("Source"))) == quota_mounts]
    return ContainerRecord(
        id=str(entry["Id"]),
        name=str((entry.get("Names") or ["?"])[0]).lstrip("/"),
        state=str(entry.get("State") or "?"),
        labels=labels,
        volumes=tuple(volumes),
        created=float(entry["Created"]) if entry.get("Created") else None,
        networks=tuple(sorted((entry.get("NetworkSettings") or {}).get("Networks") or {})),
    )


def fetch_file(api: docker.APIClient, container_id: str, full: str, path: str, limit: int) -> bytes:
    """The archive holding one file, refused past `limit` bytes before or while it streams."""
    try:
        chunks, stat = api.get_archive(container_id, full)
    except docker.errors.NotFound as err:
        raise FileMissing(f"{path!r} does not exist in the workspace") from err
    if int(stat.get("size", 0)) > limit:
        raise InvalidPath(f"{path!r} is {stat.get('size')} bytes, over the {limit}-byte limit")
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > limit + _READ_SLACK:
            raise InvalidPath(f"{path!r} is over the {limit}-byte limit")
    return bytes(data)


def inspect_volume(api: docker.APIClient, name: str) -> VolumeRecord | None:
    try:
        volume = api.inspect_volume(name)
    except docker.errors.NotFound:
        return None
    return VolumeRecord(str(volume["Name"]), dict(volume.get("Labels") or {}))


def remove_volume(api: docker.APIClient, name: str) -> bool:
    try:
        api.remove_volume(name)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as err:
        if err.status_code == 409:
            raise ResourceInUse(f"volume {name} is in use by a container") from err
        raise EngineError(f"volume {name} could not be removed: {err.explanation or err}") from err
    return True


def remove_labelled_now(base_url: str, filters: dict[str, list[str]], matches: Callable[[Mapping[str, str]], bool],
                        name_prefix: str) -> int:
    """Blocking, on a client of its own (at interpreter exit no engine thread pool is left): force-remove the
    containers the engine's filter and `matches` select whose name starts with `name_prefix`; how many went."""
    try:
        client = docker.DockerClient(base_url=base_url, timeout=10)
    except docker.errors.DockerException:
        return 0
    removed = 0
    try:
        for entry in client.api.containers(all=True, filters=filters):
            name = str((entry.get("Names") or ["?"])[0]).lstrip("/")
            if name.startswith(name_prefix) and matches(entry.get("Labels") or {}):
                with contextlib.suppress(docker.errors.DockerException):
                    client.api.remove_container(entry["Id"], force=True, v=False)
                    removed += 1
    except docker.errors.DockerException:
        pass
    finally:
        client.close()
    return removed


def remove_unjoined_now(base_url: str, holder_ids: list[str]) -> None:
    """Blocking, on a client of its own (at exit no engine thread pool is left): remove those of
    `holder_ids` that no container names as its holder."""
    try:
        client = docker.DockerClient(base_url=base_url, timeout=10)
    except docker.errors.DockerException:
        return
    try:
        joined = {str((entry.get("Labels") or {}).get(NETNS))
                  for entry in client.api.containers(all=True, filters={"label": [NETNS]})}
        for container_id in holder_ids:
            if container_id not in joined:
                with contextlib.suppress(docker.errors.DockerException):
                    client.api.remove_container(container_id, force=True, v=False)
    except docker.errors.DockerException:
        pass
    finally:
        client.close()
