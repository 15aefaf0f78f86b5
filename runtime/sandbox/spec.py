"""The hardened container settings, as plain data, from the config and a language's resources.

Kept separate from the manager so the benchmark's "raw docker-py" side and the warm
pool create exactly the same container, and a unit test can read every default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from docker.types import Mount

from runtime.config import RuntimeConfig
from runtime.registry import Language, Resources
from runtime.sandbox.naming import cache_volume_name
from runtime.sandbox.owner import Owner

# docker-init (tini) is PID 1 and reaps zombies; the keeper is its only child and the
# first process of the container, so it has the lowest pid after 1 (the exec timeout
# killer relies on that to spare it).
KEEPER_COMMAND = ("sleep", "infinity")


@dataclass(frozen=True)
class NamedVolume:
    """A named volume mounted at `target`; the engine creates it with `labels` if it does not exist."""

    name: str
    target: str
    labels: Mapping[str, str]

    def mount(self) -> Mount:
        return Mount(self.target, self.name, type="volume", labels=dict(self.labels) or None)


def project_cache(owner: Owner, project_id: str, language: Language) -> NamedVolume | None:
    """The language's per-project cache volume (languages.yaml `cache`), if it declares one.

    Per project, never shared: a build cache is trusted by whoever reads it, and a sandbox
    can write anything into its own.
    """
    if language.cache is None:
        return None
    return NamedVolume(
        cache_volume_name(project_id, language.name),
        language.cache.path,
        owner.volume_labels(project_id, cache_of=language.name),
    )


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    name: str
    labels: Mapping[str, str]
    volume: str
    network: str  # a network name, or "none"
    resources: Resources
    config: RuntimeConfig
    environment: Mapping[str, str] = field(default_factory=dict)
    # Applied by the engine if it has to create the volume for this mount: no separate create
    # call per task, and a volume deleted meanwhile (on request, by another process) comes back
    # labelled as ours, within the container create itself.
    volume_labels: Mapping[str, str] = field(default_factory=dict)
    cache: NamedVolume | None = None  # the language's per-project cache, if it has one

    def host_config(self) -> dict[str, Any]:
        """Keyword arguments for `APIClient.create_host_config`."""
        cfg, res = self.config, self.resources
        uid, _, gid = cfg.user.partition(":")
        gid = gid or uid
        tmpfs = {
            "/tmp": f"rw,exec,nosuid,nodev,size={res.tmp_size},mode=1777",
            cfg.home: f"rw,exec,nosuid,nodev,size={res.home_size},uid={uid},gid={gid}",
        }
        security_opt = ["no-new-privileges:true"] if cfg.no_new_privileges else []
        kwargs: dict[str, Any] = {
            "mounts": [
                NamedVolume(self.volume, cfg.workspace, self.volume_labels).mount(),
                *([self.cache.mount()] if self.cache else []),
            ],
            "tmpfs": tmpfs,
            "read_only": cfg.read_only_root,
            "cap_drop": ["ALL"] if cfg.cap_drop_all else None,
            "security_opt": security_opt or None,
            "privileged": False,
            "init": cfg.init,
            "pids_limit": res.pids,
            "mem_limit": res.memory,
            "memswap_limit": res.memory,  # swap = memory: no swapping past the limit
            "nano_cpus": int((res.cpus or 1.0) * 1e9),
            "network_mode": self.network,
            "ipc_mode": "private",
            "log_config": {"type": "json-file", "config": {"max-size": cfg.log_max_size, "max-file": "1"}},
        }
        if cfg.runtime:
            kwargs["runtime"] = cfg.runtime
        return kwargs

    def create_kwargs(self, host_config: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for `APIClient.create_container`; `host_config` from `create_host_config`."""
        return {
            "image": self.image,
            "command": list(KEEPER_COMMAND),
            "name": self.name,
            "user": self.config.user,
            "working_dir": self.config.workspace,
            "labels": dict(self.labels),
            "environment": dict(self.environment) or None,
            "host_config": host_config,
            "detach": True,
            "stdin_open": False,
            "tty": False,
        }
