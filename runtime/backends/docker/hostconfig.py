"""A `ContainerSpec` in Docker's words: keyword arguments for docker-py's create calls.

The benchmarks' "raw docker-py" side uses these too, so both sides create the same container.
With `agent` (the image's sandbox agent, from its label) the agent replaces the keeper as the
main process, its stdin stays open for the manager's attach stream, and the log driver is
`none`: the main process's stdout carries the protocol, which no log should keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from docker.types import Mount

from runtime.backends.docker.storage import engine_volumes
from runtime.backends.docker.storage.engine_volumes import Device
from runtime.sandbox.spec import ContainerSpec, VolumeMount


def mount(volume: VolumeMount, device: Device | None = None) -> Mount:
    """The volume's mount. With `device` (a quota volume's mounted filesystem, from the storage): bound
    straight from it, or (its first use) as the Docker volume carrying the bind options, so a volume
    whose definition went missing is made again bound to it, never as a plain volume with no quota."""
    if device is not None and device.direct:
        return Mount(volume.target, device.path, type="bind")
    driver = None if device is None else engine_volumes.driver_config(device.path)
    return Mount(volume.target, volume.name, type="volume", labels=dict(volume.labels) or None, driver_config=driver)


def agent_command(agent: str, lease: float = 0.0) -> list[str]:
    # The system Python, whatever venv PATH names first; -S: the agent is standard library only, and
    # `site` (its .pth files, sitecustomize) costs every start a few milliseconds.
    command = ["/usr/bin/python3", "-I", "-S", agent]
    return [*command, "--lease", f"{lease:g}"] if lease > 0 else command


def host_config(spec: ContainerSpec, agent: str | None = None, devices: Mapping[str, Device] | None = None
                ) -> dict[str, Any]:
    """Keyword arguments for `APIClient.create_host_config`; `devices`: volume name -> quota filesystem."""
    sec, res = spec.security, spec.resources
    tmpfs = {
        "/tmp": f"rw,exec,nosuid,nodev,size={res.tmp_size},mode=1777",
        sec.home: f"rw,exec,nosuid,nodev,size={res.home_size},uid={sec.uid},gid={sec.gid}",
    }
    kwargs: dict[str, Any] = {
        "mounts": [mount(v, (devices or {}).get(v.name)) for v in spec.volumes],
        "tmpfs": tmpfs,
        "read_only": sec.read_only_root,
        "cap_drop": ["ALL"] if sec.cap_drop_all else None,
        "security_opt": ["no-new-privileges:true"] if sec.no_new_privileges else None,
        "privileged": False,
        "init": sec.init,
        "pids_limit": res.pids,
        "mem_limit": res.memory,
        "memswap_limit": res.memory,  # swap = memory: no swapping past the limit
        "nano_cpus": int((res.cpus or 1.0) * 1e9),
        "network_mode": spec.network,
        "ipc_mode": "private",
        "log_config": {"type": "json-file", "config": {"max-size": sec.log_max_size, "max-file": "1"}},
    }
    if agent is not None:
        kwargs["log_config"] = {"type": "none", "config": {}}
    if spec.runtime:
        kwargs["runtime"] = spec.runtime
    if spec.dns_options:
        kwargs["dns_opt"] = list(spec.dns_options)
    return kwargs


def create_kwargs(spec: ContainerSpec, built_host_config: Any, agent: str | None = None) -> dict[str, Any]:
    """Keyword arguments for `APIClient.create_container`; `built_host_config` from `create_host_config`."""
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": agent_command(agent, spec.agent_lease) if agent is not None else list(spec.command),
        "name": spec.name,
        "user": spec.security.user,
        "working_dir": spec.security.workspace,
        "labels": dict(spec.labels),
        "environment": dict(spec.environment) or None,
        "host_config": built_host_config,
        "detach": True,
        "stdin_open": agent is not None,
        "tty": False,
    }
    if not spec.healthcheck:
        kwargs["healthcheck"] = {"test": ["NONE"]}
    return kwargs
