"""What a sandbox container is, as engine-neutral data: `ContainerSpec`, and how one is made.

The spec carries the policy (image, mounts, network, resources, the hardening settings)
and nothing of any engine's vocabulary: turning it into Docker's HostConfig or a Pod spec is
the backend's job. The manager and the warm pool build their specs here, so a task's
container and a spare are always the same container.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.config import RuntimeConfig, SecuritySettings
from runtime.registry import Language, Registry, Resources
from runtime.sandbox.naming import cache_volume_name, volume_name
from runtime.sandbox.owner import Owner

# The container's main process: an init (the engine's, or the backend's) is PID 1 and reaps
# zombies; the keeper is its only child and the first process of the container, so it has the
# lowest pid after 1 (the exec timeout killer relies on that to spare it).
KEEPER_COMMAND = ("sleep", "infinity")
NO_NETWORK = "none"


@dataclass(frozen=True)
class VolumeMount:
    """A named volume mounted at `target`; created with `labels` if it does not exist yet.

    Created by the mount itself: no separate create call per task, and a volume deleted
    meanwhile (on request, by another process) comes back labelled as ours.
    """

    name: str
    target: str
    labels: Mapping[str, str] = field(default_factory=dict)


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

    @property
    def workspace(self) -> VolumeMount:
        return self.volumes[0]


def project_cache(owner: Owner, project_id: str, language: Language) -> VolumeMount | None:
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
    )


def network_for(config: RuntimeConfig, mode: str | None) -> str:
    """The network a task joins: the sandbox network, or none."""
    return NO_NETWORK if (mode or config.network.mode) == NO_NETWORK else config.network.name


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
) -> ContainerSpec:
    """The hardened container for one task (or spare) of `project_id` in `language`."""
    cache = project_cache(owner, project_id, language)
    workspace = VolumeMount(volume_name(project_id), config.security.workspace, owner.volume_labels(project_id))
    return ContainerSpec(
        image=f"{language.image}:{config.engine.image_tag}",
        name=name,
        labels=labels,
        volumes=(workspace, *([cache] if cache else [])),
        network=network,
        resources=registry.resources_for(language),
        security=config.security,
        runtime=config.engine.runtime,
    )
