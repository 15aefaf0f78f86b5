"""The Docker backend's commands and files: through the sandbox agent, else `docker exec` and tar archives."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

import docker

from runtime.backends.docker import agent_exec, calls, tar_files
from runtime.backends.docker.agent_channel import AgentChannel
from runtime.backends.docker.agents import Agents
from runtime.backends.docker.cgroups import ContainerCgroup
from runtime.backends.docker.exec import ExecTarget, Executor
from runtime.errors import SandboxFailure
from runtime.sandbox.events import ResourceUsage
from runtime.sandbox.execution import ExecRequest, ExecResult, OutputChunk
from runtime.sandbox.files import MAX_LISTED, FileEntry

if TYPE_CHECKING:
    from runtime.backends.docker.engine import Engine


class CommandCalls:
    """Needs what `DockerBackend` sets up: its engine, executor, agent channels, exec targets and the
    cgroup facts `probe` found."""

    user: str
    _executor: Executor
    _agents: Agents
    _targets: dict[str, ExecTarget]
    _cgroup_layout: tuple[int, str]
    _host_kill: bool

    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # DockerBackend's

    async def _client(self) -> docker.DockerClient:
        raise NotImplementedError  # DockerBackend's

    def usage(self, container_id: str) -> ResourceUsage:
        target = self._targets.get(container_id)
        return target.cgroup.usage() if target is not None and target.cgroup is not None else ResourceUsage()

    # -- commands and files -----------------------------------------------------------------------

    def _target(self, container_id: str) -> ExecTarget:
        target = self._targets.get(container_id)
        if target is None:
            cgroup = ContainerCgroup.locate(container_id, *self._cgroup_layout)
            target = self._targets[container_id] = ExecTarget(container_id, cgroup, self._host_kill)
        return target

    async def _agent(self, container_id: str) -> AgentChannel | None:
        engine = self.engine
        api = (await self._client()).api
        return await self._agents.get(engine, container_id, lambda cid: engine.call(calls.inspect_container, api, cid))

    async def exec(
        self, container_id: str, request: ExecRequest, finish: Callable[[ExecResult], None]
    ) -> AsyncIterator[OutputChunk]:
        channel = await self._agent(container_id)
        if channel is None and request.interactive is not None:
            raise SandboxFailure("this sandbox has no sandbox agent: sessions and background processes need one")
        target = self._target(container_id)
        chunks: AsyncGenerator[OutputChunk, None] = (
            agent_exec.run(channel, self._executor, target, request, finish) if channel is not None
            else self._executor.chunks(target, request, finish)
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # now, not when collected: its clean-up kills what the caller abandoned

    async def write_files(self, container_id: str, workspace: str, contents: Mapping[str, bytes]) -> None:
        channel = await self._agent(container_id)
        if channel is not None:
            await channel.write_files(dict(contents))
        else:
            await tar_files.write(self.engine, self._executor, self._target(container_id), workspace, contents,
                                  self.user)

    async def read_file(self, container_id: str, workspace: str, path: str, limit: int) -> bytes:
        channel = await self._agent(container_id)
        if channel is not None:
            return await channel.read_file(path, limit)
        return await tar_files.read(self.engine, self._executor, self._target(container_id), workspace, path, limit)

    async def list_files(self, container_id: str, workspace: str, path: str) -> list[FileEntry]:
        channel = await self._agent(container_id)
        if channel is None:
            return await tar_files.listing(self.engine, self._executor, self._target(container_id), workspace, path)
        entries, _truncated = await channel.list_files(path or ".")
        return [FileEntry(str(n), k if k in ("file", "dir", "link") else "other", int(s), float(m))
                for n, k, s, m in entries][:MAX_LISTED]
