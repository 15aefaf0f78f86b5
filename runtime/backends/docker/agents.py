"""Which containers the Docker backend reaches through their sandbox agent, and the channels to them.

A container created from an image with an agent runs it as its main process; the channel to
it is opened at creation (so a warm spare is handed over ready) or on first use (a container
taken over from a manager that is gone). A container without one (a custom image, one made
before the agent existed), or whose channel broke (garbage or a replaced agent from inside),
is served by the engine's own exec and tar from then on — said once in a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from runtime import labels
from runtime.backends.docker.agent_channel import AgentChannel, AgentLost
from runtime.backends.docker.engine import Engine
from runtime.backends.docker.hostconfig import agent_command
from runtime.errors import EngineUnavailable, SandboxGone

log = logging.getLogger(__name__)


def runs_agent(attrs: dict[str, Any]) -> bool:
    """Whether an inspected container's main process is its image's agent, with stdin open for it."""
    config = attrs.get("Config") or {}
    path = (config.get("Labels") or {}).get(labels.IMAGE_AGENT)
    if not isinstance(path, str) or not config.get("OpenStdin"):
        return False
    command = list(config.get("Cmd") or [])
    if command[-2:-1] == ["--lease"]:  # a spare's or holder's first lease: the same agent
        command = command[:-2]
    # (A container made before the agent ran with -S still runs the agent: same protocol.)
    return command in (agent_command(path), [c for c in agent_command(path) if c != "-S"])


class Agents:
    def __init__(self, removing: Callable[[str], bool] = lambda _: False) -> None:
        self._removing = removing  # a container being removed: its channel is never opened again
        self._channels: dict[str, AgentChannel] = {}
        self._loops: dict[str, asyncio.AbstractEventLoop] = {}
        self._without: set[str] = set()
        self._opening: dict[str, asyncio.Future[AgentChannel | None]] = {}

    async def open(self, engine: Engine, container_id: str, *, required: bool = False) -> AgentChannel | None:
        """Attach to a container known to run the agent; None (and the engine's exec) if it does not answer.
        `required`: no answer fails the caller's start, so there is no fall-back to log or remember."""
        loop = asyncio.get_running_loop()
        pending = self._opening.get(container_id)
        if pending is not None and self._loops.get(container_id) is loop:
            return await asyncio.shield(pending)
        future: asyncio.Future[AgentChannel | None] = loop.create_future()
        self._opening[container_id], self._loops[container_id] = future, loop
        try:
            channel = await AgentChannel.open(engine.endpoint(), engine.api_version, container_id)
        except (AgentLost, EngineUnavailable) as err:
            if not required and not self._removing(container_id):  # (one being removed: no fall-back to say)
                self._fall_back(container_id, str(err))
            future.set_result(None)
            return None
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self._opening.pop(container_id, None)
        if self._removing(container_id):  # its removal began while this opened: not kept, nor used
            future.set_result(None)
            await channel.close()
            return None
        self._channels[container_id] = channel
        future.set_result(channel)
        return channel

    async def get(self, engine: Engine, container_id: str, inspect: Any) -> AgentChannel | None:
        """The container's live channel, opening one if it runs the agent; None: use the engine's exec."""
        if container_id in self._without:
            return None
        if self._removing(container_id):  # what still asks (a lease sent at hand-over) must not attach again
            raise SandboxGone(f"the sandbox is being removed: its container {container_id[:12]}")
        channel = self._channels.get(container_id)
        loop = asyncio.get_running_loop()
        if channel is not None and self._loops.get(container_id) is not loop:
            self._channels.pop(container_id)  # made on an event loop that is gone: reattach on this one
            channel = None
        if channel is not None:
            if channel.broken is None:
                return channel
            self._fall_back(container_id, channel.broken)
            return None
        if container_id in self._opening and self._loops.get(container_id) is loop:
            return await asyncio.shield(self._opening[container_id])
        attrs = await inspect(container_id)
        if attrs is None:
            raise SandboxGone(f"the sandbox is gone: its container {container_id[:12]} was removed")
        if not runs_agent(attrs):
            self._fall_back(container_id, "its main process is not the sandbox agent")
            return None
        return await self.open(engine, container_id)

    def alive(self, container_id: str) -> bool:
        """The container's agent channel is open on this event loop: the container runs (its stream
        ends the moment the agent, its main process, does; the socket is asked, not only the reader,
        which may not have run since a removal behind our back)."""
        channel = self._channels.get(container_id)
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return channel is not None and self._loops.get(container_id) is here and not channel.hung_up()

    def _fall_back(self, container_id: str, reason: str) -> None:
        if container_id not in self._without:
            self._without.add(container_id)
            self._channels.pop(container_id, None)
            log.warning("sandbox %s: no sandbox agent to talk to (%s); using the engine's exec and tar for it",
                        container_id[:12], reason)

    def forget(self, container_id: str) -> None:
        """The container is being removed: close its channel (on its own loop) and drop what is known."""
        channel = self._channels.pop(container_id, None)
        loop = self._loops.pop(container_id, None)
        self._without.discard(container_id)
        if channel is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(channel.close()))

    def close(self) -> None:
        for container_id in list(self._channels):
            self.forget(container_id)
