"""Egress by allowlist behind the seam: sandboxes that reach only the hosts their task lists.

The core decides who may reach what (`EgressPolicy`: a task and its host patterns) and reads
back what happened (`EgressRecord`s: every connection the proxy allowed or refused). How the
sandbox is kept to its list is the backend's: the Docker backend puts allowlisted sandboxes on an
internal network whose only reachable address is a filtering forward proxy (Squid, built by the
toolkit as the `egress-proxy` service) that knows each sandbox by its address; a Kubernetes backend
would use a NetworkPolicy that allows egress to the proxy only.

Contract notes:
- `ensure` is idempotent and cheap when all is in place; it (re)starts the proxy when it is gone.
  It never raises for what the host cannot do: `EgressStatus.problems` says so, and `ready` is False.
- `allow` must be in effect before the call returns (the task's first command may use the network),
  and `revoke` before the container is removed (its address may go to another sandbox): the
  backend itself revokes on every removal, so no removal path (a task's, a spare's, cleanup's) skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

PROXY_SERVICE = "egress-proxy"  # the languages.yaml service that implements the proxy's side


@dataclass(frozen=True)
class EgressPolicy:
    task_id: str
    project_id: str
    hosts: tuple[str, ...]  # `api.example.com`, `*.example.org` (subdomains only), or an IP literal


@dataclass(frozen=True)
class EgressStatus:
    ready: bool
    network: str  # the network allowlisted sandboxes join
    proxy_url: str  # what HTTP_PROXY and HTTPS_PROXY name inside them, e.g. http://10.213.252.2:3128
    problems: tuple[str, ...] = ()  # plain sentences: what is missing and what to do


@dataclass(frozen=True)
class EgressRecord:
    """One connection (or attempt) through the proxy, as the proxy logged it."""

    at: float  # unix seconds
    task_id: str | None  # None: from an address with no policy (a sandbox's policy already revoked)
    project_id: str | None
    client: str  # the sandbox's address
    method: str  # CONNECT for HTTPS, else the HTTP method
    host: str
    port: int | None
    verdict: Literal["allowed", "denied"]
    status: int | None  # the HTTP status the proxy answered
    bytes_in: int  # from the sandbox
    bytes_out: int  # to the sandbox
    reason: str  # why, in the proxy's words (e.g. "evil.test is not in the egress allowlist of task t1 ...")


EgressListener = Callable[[EgressRecord], None]


class EgressGateway(Protocol):
    """The allowlist machinery of one engine (`Backend.egress`)."""

    async def ensure(self, owner_labels: Mapping[str, str] | None = None) -> EgressStatus:
        """Network, firewall and proxy in place (the proxy started again if it died); what it creates
        carries `owner_labels`, so cleanup can tell when its maker is gone."""
        ...

    async def allow(self, container_id: str, policy: EgressPolicy) -> None:
        """Let the container reach the policy's hosts (through the proxy), from now on."""
        ...

    def revoke(self, container_id: str) -> None:
        """The container reaches nothing any more; a container with no policy is fine. Synchronous and
        cheap: the backend calls it on every removal path, before the container goes."""
        ...

    def listen(self, listener: EgressListener) -> None:
        """Call `listener` with every connection the proxy logs from now on (from a background thread)."""
        ...

    def close(self) -> None:
        """Stop listening (the proxy keeps running for other managers and later ones)."""
        ...
