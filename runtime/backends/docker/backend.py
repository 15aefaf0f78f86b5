"""`DockerBackend`: the `Backend` protocol on a Docker engine, through docker-py and the Engine API.

Every blocking docker-py call runs in the engine's thread pool with a deadline
(`Engine.call`); the exec path speaks the Engine API directly over an asyncio stream
(`hijack`). Docker's errors are translated here, so the core only ever sees the
`SandboxError` tree. Per-container state the exec path needs (cgroup paths, the OOM count
seen last) is kept here too, keyed by container id, and dropped on removal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future
from typing import Any

import docker
import docker.errors

from runtime.backends.base import (
    ContainerRecord,
    ContainerState,
    Diagnosis,
    EngineFacts,
    ImageRecord,
    LabelFilter,
    NetworkPolicyStatus,
)
from runtime.backends.docker import calls, diagnose
from runtime.backends.docker.agents import Agents
from runtime.backends.docker.calls import remove_unjoined_now
from runtime.backends.docker.command_calls import CommandCalls
from runtime.backends.docker.egress.gateway import DockerEgress
from runtime.backends.docker.engine import Engine
from runtime.backends.docker.exec import ExecTarget, Executor
from runtime.backends.docker.first_mounts import FirstMounts
from runtime.backends.docker.gate import GATE, LOAD, remove_container_sync
from runtime.backends.docker.images import ImageCache
from runtime.backends.docker.netns import Holders, holder_key
from runtime.backends.docker.oci_runtimes import on_host_kernel
from runtime.backends.docker.relabel import LabelRecords
from runtime.backends.docker.removals import Removals
from runtime.backends.docker.storage import DockerStorage
from runtime.backends.docker.volume_calls import VolumeCalls, label_filters, labels_match
from runtime.config import EgressSettings, EngineSettings, NetworkSettings, StorageSettings
from runtime.errors import EngineUnavailable, SandboxFailure
from runtime.labels import NETNS, NETWORK
from runtime.sandbox.naming import VOLUME_PREFIX
from runtime.sandbox.spec import ContainerSpec

log = logging.getLogger(__name__)


class DockerBackend(CommandCalls, VolumeCalls):
    """One Docker engine (local socket, `DOCKER_HOST`, or plain TCP); its volume calls: `VolumeCalls`,
    its commands and files: `CommandCalls`."""

    def __init__(self, settings: EngineSettings, user: str, *, egress: EgressSettings | None = None,
                 sandbox_network: str = NetworkSettings.name, storage: StorageSettings | None = None) -> None:
        self.settings = settings
        self.egress = DockerEgress(lambda: self.engine, egress or EgressSettings(), sandbox_network, settings.image_tag)
        self.user = user  # helper commands (the timeout killer, probes) run as the sandbox user
        self._engine = Engine(settings.docker_host, settings.api_timeout)
        self._executor = Executor(self._engine, user)
        self._targets: dict[str, ExecTarget] = {}
        self._cgroup_layout: tuple[int, str] = (1, "cgroupfs")
        self._host_kill = False
        self._on_host_kernel = False  # (known once `probe` asked the engine)
        self._changed = LabelRecords()  # labels changed after creation (Docker cannot change them)
        self._removals = Removals()  # containers being removed: after their rename, and no channel reopened
        self._agents = Agents(self._removals.removing)  # the channel to each container's sandbox agent, if any
        self._images = ImageCache()  # what each image tag names, until the engine reports a change
        self._first_mounts = FirstMounts()  # new volumes are populated by one create at a time
        # Quota volumes (a filesystem each); plain volumes until `storage.prepare()` says it is enforced.
        stored = storage or StorageSettings()
        uid, _, gid = user.partition(":")
        self.storage = DockerStorage(lambda: self.engine, stored.root, stored.pool_bytes, int(uid), int(gid or uid),
                                     stored.idle_unmount)
        # Network namespaces kept for a project's next sandbox (netns.py): Docker's network set-up, once.
        self._egress_network = (egress or EgressSettings()).network_name
        self._holders = Holders(self._create_started, self._lease_one, self.remove_soon, lambda: self.engine.base_url)

    @property
    def engine(self) -> Engine:
        """The live engine connection (benchmarks and tests reach docker-py through it)."""
        if self._engine.closed:
            self._engine = Engine(self.settings.docker_host, self.settings.api_timeout)
            self._executor = Executor(self._engine, self.user)
        return self._engine

    async def _client(self) -> docker.DockerClient:
        return await self.engine.connect()

    # -- the engine ------------------------------------------------------------------------------

    async def probe(self) -> EngineFacts:
        client = await self._client()
        info: dict[str, Any] = await self.engine.call(client.info)
        version: dict[str, Any] = await self.engine.call(client.version)
        self._cgroup_layout = (int(info.get("CgroupVersion") or 1), str(info.get("CgroupDriver") or "cgroupfs"))
        runtime = self.settings.runtime or str(info.get("DefaultRuntime") or "runc")  # what sandboxes get
        # Kept network namespaces and the host-side fallback killer (host pids, on this very host) need
        # containers made of the host kernel's own namespaces: runc's or crun's, not gVisor's.
        self._on_host_kernel = on_host_kernel(runtime, info.get("Runtimes") or {})
        self._host_kill = self._on_host_kernel and self.engine.endpoint()[0] == "unix"
        every = await self.engine.call(client.api.containers, all=True, quiet=True)
        self._changed.prune(str(c["Id"]) for c in every)
        tags: set[str] = set()
        for image in await self.engine.call(client.api.images, name=None):
            tags.update(image.get("RepoTags") or ())
        number = str(version.get("Version") or "?")
        system, cgroup = info.get("OperatingSystem", "?"), info.get("CgroupVersion", "?")
        return EngineFacts(
            description=f"Docker {number} ({system}, cgroup v{cgroup})",
            version=number,
            runtimes=tuple(sorted(info.get("Runtimes") or {})),
            default_runtime=str(info.get("DefaultRuntime") or "runc"),
            images=frozenset(tags),
        )

    async def image(self, reference: str) -> ImageRecord | None:
        client = await self._client()

        def cached() -> ImageRecord | None:  # (in the engine's threads: opening the event stream is a call too)
            self._images.watch(client)
            return self._images.get(reference, lambda: calls.image(client.api, reference))

        return await self.engine.call(cached)

    async def ensure_network(self, name: str, *, install_firewall: bool) -> NetworkPolicyStatus:
        from runtime.backends.docker.network import ensure_sandbox_network

        client = await self._client()
        return await self.engine.call(ensure_sandbox_network, client, name, install_firewall=install_firewall)

    async def diagnose(self, network_name: str, network_mode: str) -> list[Diagnosis]:
        client = await self._client()
        lines = await self.engine.call(diagnose.engine_checks, client, network_name, network_mode)
        return [*lines, await self.storage.diagnose()]

    def load(self) -> int:
        return LOAD.busy

    async def settle(self) -> None:
        await self._holders.settle()

    async def remove_volume(self, name: str) -> bool:
        removed = await super().remove_volume(name)
        if name.startswith(VOLUME_PREFIX):  # a project deleted: a project made again under its id starts afresh
            self._holders.forget_project(name[len(VOLUME_PREFIX):])
        return removed

    def close(self) -> None:
        holders = self._holders.close()
        if holders:  # blocking, a few removals: the manager is shutting down
            remove_unjoined_now(self.engine.base_url, holders)
        self._agents.close()
        self._images.close()
        self.storage.close()
        self._engine.close()

    # -- containers -------------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        joinable = self.settings.reuse_network_namespaces and self._on_host_kernel
        key = holder_key(spec, self._egress_network) if joinable else None
        return await self._holders.create(spec, key, self._create_started)

    async def _create_started(self, spec: ContainerSpec) -> str:
        """Create and start the container; its agent greeted (if the image has one)."""
        engine = self.engine
        api = (await self._client()).api
        # Created after all, but nobody waits for it any more (deadline, cancel): remove it.

        def abandoned(container_id: str) -> None:
            remove_container_sync(api, container_id)

        agent = calls.agent_of(await self.image(spec.image), spec.image)  # (kept until an image event)
        # Quota volumes: their filesystems, mounted, and kept so (from the idle sweep) until the start binds them.
        async with self.storage.using(spec.volumes) as devices:
            async with self._first_mounts.creating(volume.name for volume in spec.volumes):
                container_id = await engine.call(calls.create, api, spec, agent, devices, on_abandon=abandoned)
            async with self._removed_if_failed(container_id):
                # GATE: see gate.py; a container in another's namespace has no endpoint to race (still load).
                joined = spec.network.startswith("container:")
                await engine.call(LOAD.call if joined else GATE.shared_call, api.start, container_id)
        async with self._removed_if_failed(container_id):
            # Greet the agent now: a spare is then handed over ready, a cold task's first command is fast.
            leased = spec.agent_lease > 0  # a spare or holder: nobody could renew or lift its lease
            greeted = agent is None or await self._agents.open(engine, container_id, required=leased) is not None
            if not greeted and not await self._executor.still_running(container_id):
                raise SandboxFailure(f"the sandbox agent of {spec.image} did not start; its container exited")
            if not greeted and leased:
                raise SandboxFailure(f"the sandbox agent of {spec.image} did not answer; its container would end "
                                     f"itself within {spec.agent_lease:g} s")
        return container_id

    @contextlib.asynccontextmanager
    async def _removed_if_failed(self, container_id: str) -> AsyncIterator[None]:
        """A container whose start failed is removed: waited for (its name is free again before the caller
        retries), unless the failure is a cancellation, which must not wait."""
        try:
            yield
        except Exception:
            with contextlib.suppress(Exception):
                # Shielded: a cancelled wait must not cancel the removal queued in the engine's threads.
                await asyncio.shield(asyncio.wrap_future(self.remove_soon(container_id)))
            raise
        except BaseException:
            self.remove_soon(container_id)
            raise

    async def rename(self, container_id: str, name: str) -> None:
        api = (await self._client()).api  # first: nothing may suspend between the mark and the call's submission
        done = self._removals.rename_starts(container_id)
        if done is None:  # being removed already: a rename now would leave a ghost of it (removals.py)
            return
        own_endpoint = not self._holders.serves(container_id)
        await self.engine.call(calls.rename, api, container_id, name, own_endpoint=own_endpoint,
                               on_finish=lambda: self._removals.rename_ended(container_id, done))

    def known_running(self, container_id: str) -> bool:
        return self._agents.alive(container_id)

    async def inspect(self, container: str) -> ContainerState | None:
        attrs = await self.engine.call(calls.inspect_container, (await self._client()).api, container)
        if attrs is None:
            return None
        state = attrs.get("State") or {}
        code = state.get("ExitCode")
        values = self._changed.merged(str(attrs["Id"]), (attrs.get("Config") or {}).get("Labels") or {})
        return ContainerState(
            id=str(attrs["Id"]),
            name=str(attrs.get("Name", "")).lstrip("/"),
            running=bool(state.get("Running")),
            status=str(state.get("Status") or "?"),
            exit_code=None if code is None else int(code),
            oom_killed=bool(state.get("OOMKilled")),
            image_id=str(attrs.get("Image") or ""),
            labels=values,
            network=values.get(NETWORK) or str((attrs.get("HostConfig") or {}).get("NetworkMode") or "?"),
        )

    async def relabel(self, container_id: str, expect: Mapping[str, str], new: Mapping[str, str]) -> bool:
        api = (await self._client()).api

        def change() -> bool:
            attrs = calls.inspect_container(api, container_id)
            if attrs is None:
                return False
            values = (attrs.get("Config") or {}).get("Labels") or {}
            changed = self._changed.change(container_id, values, expect, new)
            holder = values.get(NETNS)
            if changed and holder:  # a task taken over (adoption.py): its namespace's holder is ours too
                self._holders.adopt(str(attrs["Id"]), values)
                held = calls.inspect_container(api, holder)
                if held is not None:  # (cleanup must not take it for a dead manager's)
                    self._changed.change(holder, (held.get("Config") or {}).get("Labels") or {}, expect, new)
            return changed

        return await self.engine.call(change)

    def _forget(self, container_id: str) -> threading.Event | None:
        """Before a removal: what this backend keeps per container goes, and its egress policy first;
        the event of its rename in flight, which the removal waits for (removals.py)."""
        renaming = self._removals.removal_starts(container_id)
        self.egress.revoke(container_id)
        self._agents.forget(container_id)
        self._targets.pop(container_id, None)
        self._changed.forget(container_id)
        return renaming

    async def remove(self, container_id: str) -> None:
        renaming = self._forget(container_id)
        holder = self._holders.leaving(container_id)
        try:
            api = (await self._client()).api
            # (Its deadline allows for the wait for a rename, and then the removal's own.)
            await self.engine.call(self._remove_after_rename, api, container_id, renaming, holder is None,
                                   deadline=2 * self.settings.api_timeout)
        except BaseException:
            if holder is not None:
                self._holders.left(holder, removed=False)
            raise
        if holder is not None:
            self._holders.left(holder, removed=True)

    def _remove_after_rename(self, api: docker.APIClient, container_id: str, renaming: threading.Event | None,
                             own_endpoint: bool) -> None:
        """In the engine's pool: the removal, after the container's rename in flight (removals.py)."""
        try:
            if renaming is not None and not renaming.wait(self.settings.api_timeout):
                log.warning("the rename of %s did not end within %g s: removing it anyway (the engine may keep "
                            "a ghost of it until it restarts)", container_id[:12], self.settings.api_timeout)
            remove_container_sync(api, container_id, own_endpoint=own_endpoint)
        finally:
            self._removals.removal_ended(container_id)

    def remove_soon(self, container_id: str) -> Future[None]:
        renaming = self._forget(container_id)
        holder = self._holders.leaving(container_id)
        engine = self.engine
        try:
            removal = engine.submit(
                lambda: self._remove_after_rename(engine.client.api, container_id, renaming, holder is None))
        except RuntimeError as err:  # the engine's pool is shut down: cleanup finds it by its labels
            self._removals.removal_ended(container_id)
            removal = Future()
            removal.set_exception(EngineUnavailable(f"cannot remove {container_id[:12]}: {err}"))
        if holder is not None:
            removal.add_done_callback(
                lambda done: self._holders.left(holder, not done.cancelled() and done.exception() is None))
        return removal

    async def list_containers(self, labels: LabelFilter) -> list[ContainerRecord]:
        api = (await self._client()).api
        # The engine filters on its own labels only: keys changed after creation are matched here.
        changed_keys = self._changed.keys()
        engine_side = {k: v for k, v in labels.items() if k not in changed_keys}
        found = await self.engine.call(api.containers, all=True, filters=label_filters(engine_side))
        mounts = str(self.storage.layout.mounts)
        records = (calls.container_record(e, self._changed.merged(str(e["Id"]), e.get("Labels") or {}), mounts)
                   for e in found)
        return [r for r in records if labels_match(r.labels, labels)]

    async def lease(self, container_id: str, seconds: float, still: Callable[[], bool] | None = None) -> bool:
        try:
            return await self._lease_one(container_id, seconds, still)  # first: a holder's trouble must not stop it
        finally:
            # (`still` asked again: the holder's lease is the last one set, and the send above may have waited.)
            try:
                if still is None or still():
                    await self._holders.follow(container_id, seconds)  # its namespace lives as long as it may
            except Exception as err:
                log.debug("the network namespace holder of %s did not take its lease: %s", container_id[:12], err)

    async def _lease_one(self, container_id: str, seconds: float, still: Callable[[], bool] | None = None) -> bool:
        channel = await self._agent(container_id)  # (may wait for the engine: `still` is asked after it)
        if channel is None:
            return False
        if still is not None and not still():
            return True
        # Nothing suspends from here until the frame has its place in the channel's send queue (first come,
        # first served): a lease sent after `still` turned False is written after this one.
        await channel.send({"op": "lease", "id": 0, "seconds": seconds})  # its answer goes unread
        return True

    def remove_now(self, labels: LabelFilter, name_prefix: str) -> int:
        return calls.remove_labelled_now(self.engine.base_url, label_filters(labels),
                                         lambda values: labels_match(values, labels), name_prefix)
