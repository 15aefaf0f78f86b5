"""Egress by allowlist, the core's half: which hosts a task may reach, and what it did reach.

A task created with `network="allowlist"` (or with `egress=[...]`) joins the backend's egress
network and gets the proxy in its environment; its list is checked here and handed to the
backend (`EgressGateway.allow`) before its first command. `registries` in a list stands for the
package indexes of the task's image: the list the image's own tools printed when it was built
(languages.yaml `registries`, under the build's mirror settings), read from the image — never host
names written into this repository. Every connection the proxy logs comes back as an `EgressEvent`
for the observers (the monitor's `egress` table, `theappapp-sandbox stats`).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlparse

from runtime.backends.base import Backend
from runtime.backends.egress import EgressPolicy, EgressRecord, EgressStatus
from runtime.config import RuntimeConfig
from runtime.errors import InvalidRequest, NetworkPolicyError
from runtime.sandbox.events import EgressEvent, Observers
from runtime.sandbox.execution import ExecRequest, ExecStream
from runtime.sandbox.tasks import ContainerInfo

ALLOWLIST = "allowlist"
REGISTRIES = "registries"
REGISTRIES_FILE = "/etc/theappapp/registries"  # written by the image build (templates/language.Dockerfile.j2)
log = logging.getLogger(__name__)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"',|<>]+")
_RECENT_SECONDS = 600.0  # a tunnel is logged when it closes, possibly after its task ended
RECORDS_PER_SECOND = 50  # audit records kept per task, sustained...
RECORDS_BURST = 500  # ...and at once


def normal_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """Host patterns checked and lower-cased: `name.example`, `*.example.org`, an IP literal, `registries`."""
    if isinstance(hosts, str):
        raise InvalidRequest("egress must be a list of hosts, not one string")
    out: list[str] = []
    for raw in hosts:
        host = str(raw).strip().lower().rstrip(".")
        if host != REGISTRIES and not _valid_host(host):
            raise InvalidRequest(
                f"invalid egress host {raw!r}: use a host name (api.example.com), a wildcard for the names "
                f"below a domain (*.example.org), an IP address, or {REGISTRIES!r}"
            )
        if host not in out:
            out.append(host)
    return tuple(out)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    wildcard_ok = not host.startswith("*.") or len(labels) >= 2  # `*.com` would allow a whole TLD
    return len(name) <= 253 and wildcard_ok and all(_LABEL.fullmatch(label) for label in labels)


def registry_hosts(text: str) -> tuple[str, ...]:
    """The hosts in what the image's tools printed: those of URLs, and lines that are a bare host name
    with a dot (pip's file host, Go's sum database) -- not words like `direct`, nor JSON keys."""
    found: list[str] = []
    for line in text.splitlines():
        urls = _URL.findall(line)
        candidates = [urlparse(url).hostname for url in urls] if urls else [line.strip().lower()]
        for host in candidates:
            if host and "." in host and _valid_host(host) and host not in found:
                found.append(host)
    return tuple(found)


class EgressPolicies:
    """The manager's allowlist bookkeeping: policies in, audit records out to the observers."""

    def __init__(self, backend: Backend, config: RuntimeConfig, observers: Observers,
                 live: Callable[[str], ContainerInfo | None]) -> None:
        self.backend, self.config, self.observers = backend, config, observers
        self.status: EgressStatus | None = None
        self._registries: dict[str, tuple[str, ...]] = {}  # image id -> its package index hosts
        self._live = live  # this manager's live task by id (adopted ones included)
        self._ended: dict[str, tuple[str, float]] = {}  # task id -> (project, when): records come late
        self._budgets: dict[str, tuple[float, float]] = {}  # task id -> (tokens, at): records per task are bounded
        self.dropped = 0  # records not kept: a task logging faster than RECORDS_PER_SECOND
        self._listening = False

    async def prepare(self, owner_labels: dict[str, str]) -> EgressStatus:
        self.status = await self.backend.egress.ensure(owner_labels)
        if self.status.ready and not self._listening:
            self._listening = True
            self.backend.egress.listen(self._record)
        return self.status

    def wanted(self, network: str | None, egress: Iterable[str] | None) -> tuple[str, ...] | None:
        """The task's host patterns if it is allowlisted (None if not), checked."""
        if egress is not None and network not in (None, ALLOWLIST):
            raise InvalidRequest(f"egress= needs network='allowlist' (or no network), not {network!r}")
        if egress is None and (network or self.config.network.mode) != ALLOWLIST:
            return None
        if not self.config.security.cap_drop_all:
            # The proxy knows a sandbox by its address: one holding CAP_NET_RAW could forge another's.
            raise InvalidRequest("network='allowlist' needs cap_drop_all (a sandbox with raw sockets could "
                                 "pose as another)")
        return normal_hosts(self.config.egress.allow if egress is None else egress)

    async def require_ready(self, owner_labels: dict[str, str]) -> EgressStatus:
        status = self.status if self.status is not None and self.status.ready else await self.prepare(owner_labels)
        if not status.ready:
            raise NetworkPolicyError("egress allowlists are not available here: " + "; ".join(status.problems))
        return status

    async def apply(self, container_id: str, image: str, task_id: str, project_id: str,
                    hosts: tuple[str, ...]) -> tuple[str, ...]:
        """Put the task's policy in force; the hosts it may reach (`registries` expanded)."""
        final = [h for h in hosts if h != REGISTRIES]
        if REGISTRIES in hosts:
            final += [h for h in await self._image_registries(container_id, image) if h not in final]
        await self.backend.egress.allow(container_id, EgressPolicy(task_id, project_id, tuple(final)))
        return tuple(final)

    def ended(self, task_id: str, project_id: str) -> None:
        self._ended[task_id] = (project_id, time.monotonic())

    async def _image_registries(self, container_id: str, image: str) -> tuple[str, ...]:
        record = await self.backend.image(image)
        key = record.id if record is not None else image
        if key not in self._registries:
            request = ExecRequest(argv=("cat", REGISTRIES_FILE), timeout=10, max_output_bytes=65536,
                                  workdir=self.config.security.workspace, user=self.config.security.user)
            result = await ExecStream(self.backend.exec, container_id, request).collect()
            hosts = registry_hosts(result.stdout) if result.exit_code == 0 else ()
            if not hosts:
                raise NetworkPolicyError(f"image {image} names no package indexes ({REGISTRIES_FILE}: "
                                         f"{result.stderr.strip() or 'empty'}); rebuild it with nox -s build")
            self._registries[key] = hosts
        return self._registries[key]

    def _ours(self, task_id: str, project_id: str, now: float) -> bool:
        for task, (_, since) in list(self._ended.items()):
            if now - since > _RECENT_SECONDS:
                self._ended.pop(task, None)
                self._budgets.pop(task, None)
        info = self._live(task_id)
        ended_project = self._ended.get(task_id, ("", 0.0))[0]
        return (info is not None and info.project_id == project_id) or ended_project == project_id

    def _within_budget(self, task_id: str, now: float) -> bool:
        """A token bucket per task: a sandbox looping on refused requests cannot grow the record without end."""
        tokens, at = self._budgets.get(task_id, (RECORDS_BURST, now))
        tokens = min(RECORDS_BURST, tokens + (now - at) * RECORDS_PER_SECOND)
        if tokens < 1:
            self._budgets[task_id] = (tokens, now)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10000 == 0:
                log.warning("egress audit: task %s logs faster than %d connections/s; %d records not kept so far",
                            task_id, RECORDS_PER_SECOND, self.dropped)
            return False
        self._budgets[task_id] = (tokens - 1, now)
        return True

    def _record(self, record: EgressRecord) -> None:
        """From the backend's audit thread: only this manager's tasks, to its observers."""
        now = time.monotonic()
        task, project = record.task_id, record.project_id
        if task is None or project is None or not self._ours(task, project, now) or not self._within_budget(task, now):
            return
        self.observers.egress(EgressEvent(
            task_id=task, project_id=project, at=record.at, host=record.host,
            port=record.port, method=record.method, verdict=record.verdict, status=record.status,
            bytes_in=record.bytes_in, bytes_out=record.bytes_out, reason=record.reason,
        ))
