"""An in-memory `Backend`: the engine's rules (unique names, forced removal, labels, volumes that
outlive containers) without an engine, so the manager, the pool and cleanup are unit-tested.

Knobs for races and faults: `create_delay`, `remove_delay` (removal is asynchronous: the name
stays taken until it is done), `fail_create`, `busy` (the engine load the pool sees), and
`exec_handler` (what a command prints and exits with). `calls` records every method called.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from runtime.backends.base import (
    Backend,
    ContainerRecord,
    ContainerState,
    Diagnosis,
    EngineFacts,
    ImageRecord,
    LabelFilter,
    NameTaken,
    NetworkPolicyStatus,
    ResourceInUse,
    VolumeRecord,
)
from runtime.backends.egress import EgressListener, EgressPolicy, EgressRecord, EgressStatus
from runtime.backends.storage import SnapshotRecord, StorageStatus, VolumeUsage
from runtime.errors import EngineError, EngineUnavailable, FileMissing, ImageMissing, InvalidRequest
from runtime.sandbox.events import ResourceUsage
from runtime.sandbox.execution import ExecRequest, ExecResult, OutputChunk
from runtime.sandbox.files import FileEntry
from runtime.sandbox.spec import ContainerSpec, VolumeMount

ExecHandler = Callable[["FakeContainer", ExecRequest], tuple[int, str, str]]


class FakeStorage:
    """Quota volumes without filesystems: a quota and copies of the fake's files per snapshot."""

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.ready = True
        self._enforced = False
        self.quotas: dict[str, int] = {}
        self.saved: dict[tuple[str, str], SnapshotRecord] = {}
        self.contents: dict[tuple[str, str], dict[str, bytes]] = {}
        self.written: dict[str, float] = {}  # volume -> when it was last written, where a test says so

    @property
    def enforced(self) -> bool:
        return self._enforced

    async def prepare(self) -> StorageStatus:
        self._enforced = self.ready
        return StorageStatus(self.ready, "fake", () if self.ready else ("no storage in this fake",))

    def _held(self, volume: str) -> bool:
        return any(volume in c.volumes for c in self.backend.containers.values())

    async def set_quota(self, volume: str, quota: int) -> int:
        if volume not in self.quotas:
            raise InvalidRequest(f"{volume} is not a quota volume")
        if quota < self.quotas[volume]:
            raise InvalidRequest("quotas cannot shrink")
        self.quotas[volume] = quota
        return quota

    async def usage(self, volumes: list[str]) -> list[VolumeUsage]:
        return [VolumeUsage(v, sum(map(len, self.backend.files.get(v, {}).values())), self.quotas.get(v),
                            self.written.get(v)) for v in volumes if v in self.backend.volumes]

    async def snapshot(self, volume: str, snapshot_id: str, labels: Mapping[str, str]) -> SnapshotRecord:
        if volume not in self.quotas:
            raise InvalidRequest(f"{volume} is not a quota volume")
        files = dict(self.backend.files.get(volume, {}))
        record = SnapshotRecord(snapshot_id, volume, time.time(), sum(map(len, files.values())), dict(labels))
        self.saved[(volume, snapshot_id)] = record
        self.contents[(volume, snapshot_id)] = files
        return record

    async def snapshots(self, volume: str | None = None) -> list[SnapshotRecord]:
        return sorted((r for (v, _), r in self.saved.items() if volume in (None, v)), key=lambda r: r.created)

    def _found(self, volume: str, snapshot_id: str) -> dict[str, bytes]:
        if (volume, snapshot_id) not in self.contents:
            raise InvalidRequest(f"volume {volume} has no snapshot {snapshot_id}")
        return self.contents[(volume, snapshot_id)]

    async def restore(self, volume: str, snapshot_id: str) -> None:
        files = self._found(volume, snapshot_id)
        if self._held(volume):
            raise ResourceInUse(f"volume {volume} is in use")
        self.backend.files[volume] = dict(files)

    async def clone(self, volume: str, snapshot_id: str | None, target: VolumeMount) -> None:
        files = self._found(volume, snapshot_id) if snapshot_id else self.backend.files.get(volume, {})
        self.backend.add_volume(target.name, target.labels)
        self.backend.files[target.name] = dict(files)
        self.quotas[target.name] = max(target.quota or 0, self.quotas.get(volume, 0))

    async def delete_snapshot(self, volume: str, snapshot_id: str) -> bool:
        self.contents.pop((volume, snapshot_id), None)
        return self.saved.pop((volume, snapshot_id), None) is not None

    async def remove(self, volume: str) -> bool:
        return self.quotas.pop(volume, None) is not None


class FakeEgress:
    """The allowlist gateway without a proxy: policies by container, records a test feeds in."""

    def __init__(self) -> None:
        self.ready = True
        self.policies: dict[str, EgressPolicy] = {}
        self.revoked: list[str] = []
        self.listeners: list[EgressListener] = []
        self.owner_labels: Mapping[str, str] = {}

    async def ensure(self, owner_labels: Mapping[str, str] | None = None) -> EgressStatus:
        self.owner_labels = dict(owner_labels or {})
        problems = () if self.ready else ("no proxy in this fake",)
        return EgressStatus(self.ready, "fake-egress", "http://10.9.9.2:3128", problems)

    async def allow(self, container_id: str, policy: EgressPolicy) -> None:
        self.policies[container_id] = policy

    def revoke(self, container_id: str) -> None:
        if self.policies.pop(container_id, None) is not None:
            self.revoked.append(container_id)

    def listen(self, listener: EgressListener) -> None:
        self.listeners.append(listener)

    def emit(self, record: EgressRecord) -> None:
        for listener in self.listeners:
            listener(record)

    def close(self) -> None:
        self.listeners.clear()


def echo_command(container: FakeContainer, request: ExecRequest) -> tuple[int, str, str]:
    """The default handler: `exit N` exits N, anything else prints itself and exits 0."""
    shell = request.argv[0] in ("/bin/bash", "/bin/sh") and request.argv[1:2] == ("-c",)
    command = request.argv[-1] if shell else " ".join(request.argv)
    if command.startswith("exit "):
        return int(command.split()[1]), "", ""
    return 0, command + "\n", ""


@dataclass
class FakeContainer:
    id: str
    name: str
    labels: dict[str, str]
    image_id: str
    network: str
    volumes: tuple[str, ...]
    state: str = "running"
    created: float = field(default_factory=time.time)
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


class FakeBackend:
    def __init__(self, images: tuple[str, ...] = ("theappapp-python:latest", "theappapp-node:latest")) -> None:
        self.images: dict[str, ImageRecord] = {
            ref: ImageRecord(ref, f"sha256:{ref}-1", 100, {}) for ref in images
        }
        self.untagged: dict[str, ImageRecord] = {}  # id -> an image a rebuild took the tag from
        self.containers: dict[str, FakeContainer] = {}
        self.volumes: dict[str, VolumeRecord] = {}
        self.files: dict[str, dict[str, bytes]] = {}  # volume name -> path -> bytes
        self.runtimes = ("runc", "runsc")
        self.create_delay = 0.0
        self.remove_delay = 0.0
        self.fail_create: Exception | None = None
        self.fail_remove: set[str] = set()  # container ids whose removal the engine refuses
        self.in_use: set[str] = set()  # volume names held by something outside this fake
        self.busy = 0
        self.exec_handler: ExecHandler = echo_command
        self.closed = False
        self.calls: list[tuple[str, object]] = []
        self.leases: dict[str, float] = {}
        self.slow_renewals: asyncio.Event | None = None  # set: leases of more than 0 s wait for it
        self.egress = FakeEgress()
        self.storage = FakeStorage(self)
        self.specs: dict[str, ContainerSpec] = {}  # by container name: what each create was asked for
        self._lock = threading.Lock()

    # -- helpers for tests ---------------------------------------------------------------------

    def by_name(self, name: str) -> FakeContainer | None:
        return next((c for c in self.containers.values() if c.name == name), None)

    def add_container(
        self, name: str, labels: Mapping[str, str], *, state: str = "running", container_id: str | None = None,
        volumes: tuple[str, ...] = (),
    ) -> FakeContainer:
        """A container the engine has, made by someone (a test standing in for another process)."""
        container = FakeContainer(container_id or uuid.uuid4().hex, name, dict(labels), "sha256:x", "net",
                                  volumes, state=state)
        self.containers[container.id] = container
        return container

    def add_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self.volumes[name] = VolumeRecord(name, dict(labels))
        self.files[name] = {}

    def rebuild(self, reference: str) -> None:
        """The tag now names a new image (as after `nox -s build`); the old one stays, by its id."""
        old = self.images[reference]
        self.untagged[old.id] = old
        self.images[reference] = ImageRecord(reference, old.id + "+", old.size, old.labels)

    def _image(self, reference: str) -> ImageRecord | None:
        """By tag or, as the engine does, by id (an untagged one included)."""
        if reference in self.images:
            return self.images[reference]
        return next((i for i in self.images.values() if i.id == reference), self.untagged.get(reference))

    # -- the engine ------------------------------------------------------------------------------

    async def probe(self) -> EngineFacts:
        self.calls.append(("probe", None))
        self.closed = False
        return EngineFacts("Fake 1.0", "1.0", self.runtimes, "runc", frozenset(self.images))

    async def image(self, reference: str) -> ImageRecord | None:
        return self._image(reference)

    async def ensure_network(self, name: str, *, install_firewall: bool) -> NetworkPolicyStatus:
        self.calls.append(("ensure_network", name))
        return NetworkPolicyStatus(name, True, True, True, ())

    async def diagnose(self, network_name: str, network_mode: str) -> list[Diagnosis]:
        return [Diagnosis("PASS", "engine", "Fake 1.0")]

    def load(self) -> int:
        return self.busy

    async def settle(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    # -- containers --------------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        self.calls.append(("create", spec.name))
        self.specs[spec.name] = spec
        if self.fail_create is not None:
            raise self.fail_create
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        image = self._image(spec.image)
        if image is None:
            raise ImageMissing(f"image {spec.image} is not on this engine")
        with self._lock:
            if self.by_name(spec.name) is not None:
                raise NameTaken(f"container name {spec.name} is in use")
            for volume in spec.volumes:
                if volume.name not in self.volumes:
                    self.volumes[volume.name] = VolumeRecord(volume.name, dict(volume.labels))
                    self.files[volume.name] = {}
                    if volume.quota is not None and self.storage.enforced:
                        self.storage.quotas[volume.name] = volume.quota
            container = FakeContainer(
                uuid.uuid4().hex, spec.name, dict(spec.labels), image.id, spec.network,
                tuple(v.name for v in spec.volumes),
            )
            self.containers[container.id] = container
        return container.id

    async def rename(self, container_id: str, name: str) -> None:
        self.calls.append(("rename", name))
        with self._lock:
            container = self.containers.get(container_id)
            if container is None:
                raise EngineError(f"no such container {container_id}")
            if self.by_name(name) is not None:
                raise NameTaken(f"container name {name} is in use")
            container.name = name

    def known_running(self, container_id: str) -> bool:
        return False  # always asked: the tests see every inspect

    async def inspect(self, container: str) -> ContainerState | None:
        found = self.containers.get(container) or self.by_name(container)
        if found is None:
            return None
        return ContainerState(
            found.id, found.name, found.running, found.state, found.exit_code,
            False, found.image_id, dict(found.labels), found.network,
        )

    async def relabel(self, container_id: str, expect: Mapping[str, str], new: Mapping[str, str]) -> bool:
        with self._lock:
            container = self.containers.get(container_id)
            if container is None or any(container.labels.get(k) != v for k, v in expect.items()):
                return False
            container.labels.update(new)
            return True

    def _remove_now(self, container_id: str) -> None:
        if container_id in self.fail_remove:
            raise EngineError("the Docker engine refused remove_container: device busy")
        self.egress.revoke(container_id)  # as the Docker backend: the policy goes before the container
        with self._lock:
            self.containers.pop(container_id, None)

    async def remove(self, container_id: str) -> None:
        self.calls.append(("remove", container_id))
        if self.remove_delay:
            await asyncio.sleep(self.remove_delay)
        self._remove_now(container_id)

    def remove_soon(self, container_id: str) -> Future[None]:
        self.calls.append(("remove_soon", container_id))
        future: Future[None] = Future()
        if self.closed:
            future.set_exception(EngineUnavailable("closed"))
            return future

        def finish() -> None:
            try:
                self._remove_now(container_id)
            except EngineError as err:
                future.set_exception(err)
            else:
                future.set_result(None)

        if self.remove_delay:
            threading.Timer(self.remove_delay, finish).start()
        else:
            finish()
        return future

    async def list_containers(self, labels: LabelFilter) -> list[ContainerRecord]:
        with self._lock:
            found = list(self.containers.values())
        return [
            ContainerRecord(c.id, c.name, c.state, dict(c.labels), c.volumes, c.created, (c.network,))
            for c in found
            if all(k in c.labels and (v is None or c.labels[k] == v) for k, v in labels.items())
        ]

    async def lease(self, container_id: str, seconds: float, still: Callable[[], bool] | None = None) -> bool:
        if self.slow_renewals is not None and seconds > 0:  # an engine slow to answer, before `still` is asked
            await self.slow_renewals.wait()
        if still is None or still():
            self.leases[container_id] = seconds
        return container_id in self.containers

    def remove_now(self, labels: LabelFilter, name_prefix: str) -> int:
        gone = [c.id for c in self.containers.values() if c.name.startswith(name_prefix)
                and all(k in c.labels and (v is None or c.labels[k] == v) for k, v in labels.items())]
        for cid in gone:
            del self.containers[cid]
        return len(gone)

    def usage(self, container_id: str) -> ResourceUsage:
        return ResourceUsage(cpu_seconds=0.5 if container_id in self.containers else None)

    # -- commands and files ------------------------------------------------------------------------

    async def exec(
        self, container_id: str, request: ExecRequest, finish: Callable[[ExecResult], None]
    ) -> AsyncIterator[OutputChunk]:
        t0 = time.monotonic()
        container = self.containers.get(container_id)
        if container is None or not container.running:
            finish(ExecResult(None, "", "", 0.0))
            raise EngineError("container is not running")
        code, out, err = self.exec_handler(container, request)
        if out:
            yield OutputChunk("stdout", out.encode())
        if err:
            yield OutputChunk("stderr", err.encode())
        finish(ExecResult(code, out, err, time.monotonic() - t0, stdout_bytes=len(out), stderr_bytes=len(err)))

    def _workspace(self, container_id: str) -> dict[str, bytes]:
        return self.files[self.containers[container_id].volumes[0]]

    async def write_files(self, container_id: str, workspace: str, files: Mapping[str, bytes]) -> None:
        self._workspace(container_id).update(files)

    async def read_file(self, container_id: str, workspace: str, path: str, limit: int) -> bytes:
        try:
            return self._workspace(container_id)[path]
        except KeyError as err:
            raise FileMissing(f"{path!r} does not exist in the workspace") from err

    async def list_files(self, container_id: str, workspace: str, path: str) -> list[FileEntry]:
        prefix = f"{path}/" if path else ""
        names = {p[len(prefix):].split("/", 1)[0] for p in self._workspace(container_id) if p.startswith(prefix)}
        return [FileEntry(n, "dir" if any(p.startswith(f"{prefix}{n}/") for p in self._workspace(container_id))
                          else "file", 0, 0.0) for n in sorted(names)]

    # -- volumes ----------------------------------------------------------------------------------

    async def list_volumes(self, labels: LabelFilter) -> list[VolumeRecord]:
        return [
            v for v in self.volumes.values()
            if all(k in v.labels and (want is None or v.labels[k] == want) for k, want in labels.items())
        ]

    async def inspect_volume(self, name: str) -> VolumeRecord | None:
        return self.volumes.get(name)

    async def remove_volume(self, name: str) -> bool:
        if name not in self.volumes:
            return False
        if name in self.in_use or any(name in c.volumes for c in self.containers.values()):
            raise ResourceInUse(f"volume {name} is in use")
        del self.volumes[name]
        self.files.pop(name, None)
        self.storage.quotas.pop(name, None)  # as the Docker backend: the filesystem goes, snapshots stay
        return True


def _conforms(backend: FakeBackend) -> Backend:
    return backend  # mypy checks the fake against the protocol here
