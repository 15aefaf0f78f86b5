"""What a sandbox container is, as engine-neutral data: `ContainerSpec`, and how one is made.

The spec carries the policy (image, mounts, network, resources, the hardening settings)
and nothing of any engine's vocabulary: turning it into Docker's HostConfig or a Pod spec is
the backend's job. The manager and the warm pool build their specs here, so a task's
container and a spare are always the same container.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from runtime.config import RuntimeConfig, SecuritySettings
from runtime.registry import Language, Registry, Resources
from runtime.sandbox.naming import cache_volume_name, volume_name
from runtime.sandbox.owner import Owner

# The container's main process: an init (the engine's, or the backend's) is PID 1 and reaps
# zombies; the keeper is its only child and the first process of the container, so it has the
# lowest pid after 1 (the exec timeout killer relies on that to spare it).
KEEPER_COMMAND = ("sleep", "infinity")
NO_NETWORK = "none"
NO_PROXY = "localhost,127.0.0.1,::1"
# Allowlisted sandboxes have no resolver that answers (the proxy resolves): a lookup must fail fast,
# not hang for the default 20 s.
DNS_OPTIONS = ("timeout:1", "attempts:1")


@dataclass(frozen=True)
class VolumeMount:
    """A named volume mounted at `target`; created with `labels` if it does not exist yet.

    Created by the mount itself: no separate create call per task, and a volume deleted
    meanwhile (on request, by another process) comes back labelled as ours.
    """

    name: str
    target: str
    labels: Mapping[str, str] = field(default_factory=dict)
    # Bytes the volume may hold, enforced by the backend's storage (None: no quota). Applies when the
    # volume is created; a volume that already exists keeps the size it has (see `set_disk_quota`).
    quota: int | None = None


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    name: str
    labels: Mapping[str, str]
    volumes: tuple[VolumeMount, ...]  # the project's workspace first
    network: str  # a network name, or NO_NETWORK
    resources: Resources  # every field set (the registry's defaults filled in)
    security: SecuritySettings
    runtime: str | None = None  # OCI runtime (e.g. runsc); None: the engine's default
    environment: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = KEEPER_COMMAND
    dns_options: tuple[str, ...] = ()  # resolver options (resolv.conf `options`), e.g. a short timeout
    healthcheck: bool = True  # False: the image's health check does not run (a container no task uses)
    # Seconds of lease the image's sandbox agent holds from its start (0: none until the manager sends
    # one): a container made in the background must end even if its manager dies before the first frame.
    agent_lease: float = 0.0

    @property
    def workspace(self) -> VolumeMount:
        return self.volumes[0]


def project_cache(owner: Owner, project_id: str, language: Language, quota: int | None = None) -> VolumeMount | None:
    """The language's per-project cache volume (languages.yaml `cache`), if it declares one.

    Per project, never shared: a build cache is trusted by whoever reads it, and a sandbox
    can write anything into its own.
    """
    if language.cache is None:
        return None
    return VolumeMount(
        cache_volume_name(project_id, language.name),
        language.cache.path,
        owner.volume_labels(project_id, cache_of=language.name),
        quota,
    )


def proxy_environment(proxy_url: str, language: Language) -> dict[str, str]:
    """What makes the image's tools use the proxy: the usual variables, both cases (curl reads only
    the lower-case `http_proxy`), plus the language's own settings (languages.yaml `proxy_env`)."""
    parsed = urlparse(proxy_url)
    env = {name: proxy_url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env |= {"NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}
    values = {"url": proxy_url, "host": parsed.hostname or "", "port": str(parsed.port or "")}
    env |= {name: value.format(**values) for name, value in language.proxy_env.items()}
    return env


def network_for(config: RuntimeConfig, mode: str | None) -> str:
    """The network a task joins: the sandbox network, the egress network (allowlist), or none."""
    mode = mode or config.network.mode
    if mode == "allowlist":
        return config.egress.network_name
    return NO_NETWORK if mode == NO_NETWORK else config.network.name


def build_spec(
    config: RuntimeConfig,
    registry: Registry,
    owner: Owner,
    *,
    name: str,
    project_id: str,
    language: Language,
    labels: Mapping[str, str],
    network: str,
    disk_quota: int | None = None,
) -> ContainerSpec:
    """The hardened container for one task (or spare) of `project_id` in `language`.

    Its volumes carry their quotas (used when they are made: the project's `disk_quota`, else the
    configured one; a language cache its own bound), or none with storage off."""
    stored = config.storage
    cache = project_cache(owner, project_id, language, stored.cache_quota_bytes if stored.enabled else None)
    quota = (disk_quota or stored.disk_quota_bytes) if stored.enabled else None
    workspace = VolumeMount(volume_name(project_id), config.security.workspace, owner.volume_labels(project_id),
                            quota)
    allowlisted = network == config.egress.network_name
    return ContainerSpec(
        image=f"{language.image}:{config.engine.image_tag}",
        name=name,
        labels=labels,
        volumes=(workspace, *([cache] if cache else [])),
        network=network,
        resources=registry.resources_for(language),
        security=config.security,
        runtime=config.engine.runtime,
        # Allowlisted: the proxy is the only way out, and it resolves names; a lookup fails fast.
        environment=proxy_environment(config.egress.proxy_url, language) if allowlisted else {},
        dns_options=DNS_OPTIONS if allowlisted else (),
    )
