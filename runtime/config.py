"""Runtime configuration: explicit arguments, then THEAPPAPP_* environment, then defaults.

The settings come in small frozen parts, one per concern:

    config.engine     where the engine is and how long to wait for it, images, OCI runtime
    config.security   the hardening every sandbox gets (each one proven by an attack in tests)
    config.limits     exec and file limits
    config.network    the sandbox network
    config.egress     egress by allowlist: its proxy, network and default hosts
    config.storage    project volumes: disk quotas, their pool, snapshots' retention
    config.pool       the warm pool
    config.tasks      task lifetime and labels
    config.monitor    the execution record

Every setting also has one flat name, used for keyword arguments of `RuntimeConfig.load`
and for its environment variable: `THEAPPAPP_` + the flat name in capitals. The flat name
is the field's own name, with the part's prefix where one is needed to read clearly
(`pool_enabled` -> `config.pool.enabled`, `network_name` -> `config.network.name`,
`network` -> `config.network.mode`). Every security default lives here so a deployment can
loosen one deliberately, by name, and a test can see exactly which setting it is attacking.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from runtime.errors import ConfigError
from runtime.units import parse_size

log = logging.getLogger(__name__)

ENV_PREFIX = "THEAPPAPP_"
INSTALLATION_ENV = "THEAPPAPP_INSTALLATION_ID"
INSTALLATION_FILE = Path("~/.config/theappapp-sandbox/installation-id")
MiB = 1024 * 1024
NETWORK_MODES = ("sandbox", "none", "allowlist")


def _flat(name: str) -> dict[str, str]:
    """Field metadata: this setting's flat name, when it is not the part's prefix + the field name."""
    return {"flat": name}


@dataclass(frozen=True)
class EngineSettings:
    """The engine, the images and the OCI runtime."""

    PREFIX: ClassVar[str] = ""
    docker_host: str | None = None  # None: DOCKER_HOST, else the local socket
    api_timeout: float = 60.0  # deadline for each engine call; gVisor can hang forever
    runtime: str | None = None  # OCI runtime, e.g. "runsc"; None: the engine's default
    image_tag: str = "latest"
    required_languages: tuple[str, ...] = ()  # startup() fails with ImageMissing unless these images exist
    registry_path: str | None = None  # None: THEAPPAPP_REGISTRY, else the project's languages.yaml
    # A project's next sandbox joins a network namespace kept from its last one (Docker backend:
    # runtime/backends/docker/netns.py), skipping the engine's costliest start-up step.
    reuse_network_namespaces: bool = True

    def __post_init__(self) -> None:
        if self.api_timeout <= 0:
            raise ConfigError("api_timeout must be positive")


@dataclass(frozen=True)
class SecuritySettings:
    """The hardening of every sandbox (each one proven by an attack in tests/integration)."""

    PREFIX: ClassVar[str] = ""
    user: str = "1000:1000"
    cap_drop_all: bool = True
    no_new_privileges: bool = True
    read_only_root: bool = True
    init: bool = True
    home: str = "/home/sandbox"
    workspace: str = "/workspace"
    log_max_size: str = "1m"

    @property
    def uid(self) -> int:
        return int(self.user.partition(":")[0])

    @property
    def gid(self) -> int:
        uid, _, gid = self.user.partition(":")
        return int(gid or uid)

    def __post_init__(self) -> None:
        uid, _, gid = self.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ConfigError(f"user must be numeric uid[:gid], got {self.user!r}")
        for name in ("home", "workspace"):
            if not getattr(self, name).startswith("/"):
                raise ConfigError(f"{name} must be an absolute path")


@dataclass(frozen=True)
class ExecLimits:
    """What one command and one file transfer may take."""

    PREFIX: ClassVar[str] = ""
    default_timeout: float = 30.0
    max_output_bytes: int = MiB  # per stream
    shell: tuple[str, ...] = ("/bin/bash", "-c")
    max_archive_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        if self.default_timeout <= 0:
            raise ConfigError("default_timeout must be positive")
        if self.max_output_bytes < 0 or self.max_archive_bytes <= 0:
            raise ConfigError("byte limits must be positive")
        if not self.shell:
            raise ConfigError("shell must name a program")


@dataclass(frozen=True)
class NetworkSettings:
    """"sandbox" (the dedicated bridge: no host, metadata or peer access), "allowlist" (only the hosts a
    task lists, through the egress proxy: `EgressSettings`) or "none"."""

    PREFIX: ClassVar[str] = "network_"
    mode: str = field(default="sandbox", metadata=_flat("network"))
    name: str = "theappapp-sandbox"
    install_firewall: bool = field(default=True, metadata=_flat("install_firewall"))

    def __post_init__(self) -> None:
        if self.mode not in NETWORK_MODES:
            raise ConfigError(f"network must be one of {', '.join(NETWORK_MODES)}, got {self.mode!r}")


@dataclass(frozen=True)
class EgressSettings:
    """Egress by allowlist (network="allowlist"): the proxy, its network, and the default list."""

    PREFIX: ClassVar[str] = "egress_"
    # Hosts an allowlisted task may reach when it names none: `api.example.com`, `*.example.org`,
    # an IP literal, or `registries` (its language's package indexes). Environment: space-separated.
    allow: tuple[str, ...] = ()
    network_name: str = "theappapp-egress"  # the internal network allowlisted sandboxes join
    # Its addresses (the proxy takes the second, sandboxes the upper half): outside the pools the engine
    # hands out by itself (172.17-31.0.0/16, 192.168.0.0/20s), which it may have reached when this is made.
    subnet: str = "10.213.252.0/22"
    # Names only the proxy resolves ("name=address", space-separated in the environment): internal
    # services, or test servers. Only these may resolve to private addresses.
    hosts: tuple[str, ...] = ()
    # Networks the proxy joins to reach upstream, besides the sandbox network (whose firewall confines it).
    upstream_networks: tuple[str, ...] = ()

    PROXY_PORT: ClassVar[int] = 3128

    @property
    def proxy_url(self) -> str:
        """The proxy allowlisted sandboxes are given: the subnet's second address (the first is the gateway)."""
        return f"http://{ipaddress.ip_network(self.subnet).network_address + 2}:{self.PROXY_PORT}"

    def __post_init__(self) -> None:
        try:
            net = ipaddress.ip_network(self.subnet)
        except ValueError as err:
            raise ConfigError(f"egress_subnet: {err}") from err
        if net.version != 4 or net.prefixlen > 26:
            raise ConfigError(f"egress_subnet must be an IPv4 network of at least /26, got {self.subnet!r}")
        for entry in self.hosts:
            name, _, address = entry.partition("=")
            try:
                ipaddress.ip_address(address)
            except ValueError as err:
                raise ConfigError(f"egress_hosts entries are name=address, got {entry!r}") from err
            if not name or "/" in name:
                raise ConfigError(f"egress_hosts entries are name=address, got {entry!r}")


@dataclass(frozen=True)
class StorageSettings:
    """Project volumes: a hard disk quota each (a filesystem of their own), snapshots, retention."""

    PREFIX: ClassVar[str] = "storage_"
    enabled: bool = True  # quota volumes where the host can make them; else plain volumes, said by startup()
    # A new project's quota, unless its first create names one (`disk_quota=`); grown later with set_disk_quota.
    disk_quota: str = field(default="2g", metadata=_flat("disk_quota"))
    cache_quota: str = field(default="1g", metadata=_flat("cache_quota"))  # each per-project language cache
    root: str = "/var/lib/theappapp-sandbox/storage"  # the pool image, the mounts and the snapshots
    pool_size: str = ""  # "": min(256 GiB, 90% of the free space at `root`) when the pool is made
    # `cleanup --dry-run` lists volumes and snapshots of projects idle this long; `--remove-idle` removes them.
    retention_days: float = field(default=30.0, metadata=_flat("retention_days"))
    # A project filesystem no create used this long is unmounted (mounted again by its next create): each
    # mounted one costs every container's start and removal ~0.08 ms of host CPU. 0: never unmounted.
    idle_unmount: float = 600.0

    @property
    def disk_quota_bytes(self) -> int:
        return parse_size(self.disk_quota)

    @property
    def cache_quota_bytes(self) -> int:
        return parse_size(self.cache_quota)

    @property
    def pool_bytes(self) -> int | None:
        return parse_size(self.pool_size) if self.pool_size else None

    def __post_init__(self) -> None:
        for name in ("disk_quota", "cache_quota", "pool_size"):
            if getattr(self, name):
                parse_size(getattr(self, name))  # ConfigError names the bad value
        if self.retention_days <= 0:
            raise ConfigError("retention_days must be positive")
        if not self.idle_unmount >= 0:  # (NaN too)
            raise ConfigError("storage_idle_unmount must be 0 (never) or a number of seconds")
        if not self.root.startswith("/"):
            raise ConfigError("storage_root must be an absolute path")


@dataclass(frozen=True)
class PoolSettings:
    """The warm pool (runtime/sandbox/pool.py): fresh spares per (project, language)."""

    PREFIX: ClassVar[str] = "pool_"
    enabled: bool = True
    # The floor a key is refilled to in the background after a task starts or ends on it; a key whose
    # tasks come faster than a spare is made keeps more (up to max_per_key: runtime/sandbox/demand.py).
    spares_per_key: int = 1
    max_per_key: int = 4  # cap per key, prewarm included
    max_spares: int = 16  # cap over all keys
    max_making: int = 4  # spares being created at once: under load, spares must not crowd out task starts
    # Background refills start only while this process has at most this many container creates and
    # starts in flight (spares being made included; its own removals do not count): spares use the
    # engine's spare capacity only.
    fill_max_load: int = 1
    idle_ttl: float = 300.0  # seconds a spare may wait before it is removed
    min_available_memory: int = 1024 * MiB  # host MemAvailable under which no spare is made

    def __post_init__(self) -> None:
        caps = (self.spares_per_key, self.max_per_key, self.max_spares, self.max_making, self.fill_max_load)
        if min(caps) < 0 or self.idle_ttl <= 0:
            raise ConfigError("pool caps must be >= 0 and pool_idle_ttl positive")


@dataclass(frozen=True)
class TaskSettings:
    """How long a task's container lives and what it is labelled with."""

    PREFIX: ClassVar[str] = ""
    container_ttl: float = 3600.0  # containers older than this are fair game for the cleanup job
    destroy_in_background: bool = True  # destroy_container returns once the task is detached
    # startup() takes over this installation's running tasks whose manager process is gone.
    adopt_orphans: bool = True
    extra_labels: Mapping[str, str] = field(default_factory=dict)  # not settable from the environment


@dataclass(frozen=True)
class MonitorSettings:
    """The execution record: on by default, so `theappapp-sandbox stats` sees an orchestrator's work."""

    PREFIX: ClassVar[str] = "monitor_"
    enabled: bool = True
    db: str | None = None  # None: $XDG_DATA_HOME/theappapp-sandbox/monitor.sqlite3 (see monitoring.monitor)


_PARTS: dict[str, type[Any]] = {
    "engine": EngineSettings,
    "security": SecuritySettings,
    "limits": ExecLimits,
    "network": NetworkSettings,
    "egress": EgressSettings,
    "storage": StorageSettings,
    "pool": PoolSettings,
    "tasks": TaskSettings,
    "monitor": MonitorSettings,
}


def flat_name(part: type[Any], f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("flat") or part.PREFIX + f.name)


_WARNED: set[str] = set()


def _warn_misspelt(env: Mapping[str, str]) -> None:
    """A THEAPPAPP_ variable that is no setting but nearly one is a typo that would be ignored: say so,
    once per name. (Variables that are not settings, as THEAPPAPP_TOKEN, are not near one.)"""
    known = [ENV_PREFIX + flat.upper() for flat in flat_names()]
    for name in env:
        if name.startswith(ENV_PREFIX) and name not in known and name not in _WARNED:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.9)
            if near:
                _WARNED.add(name)
                log.warning("%s is not a setting and is ignored: did you mean %s?", name, near[0])


def flat_names() -> dict[str, tuple[str, str]]:
    """Every flat setting name -> (part, field)."""
    return {
        flat_name(cls, f): (part, f.name) for part, cls in _PARTS.items() for f in dataclasses.fields(cls)
    } | {"installation_id": ("", "installation_id")}


@dataclass(frozen=True)
class RuntimeConfig:
    """How the manager creates and drives sandboxes. Build with `RuntimeConfig.load()`."""

    engine: EngineSettings = field(default_factory=EngineSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    limits: ExecLimits = field(default_factory=ExecLimits)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    egress: EgressSettings = field(default_factory=EgressSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    installation_id: str = ""  # "" means: resolved by `load()` (env, then a persistent file)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RuntimeConfig:
        """Arguments win over THEAPPAPP_<FLAT_NAME> environment variables, which win over defaults.

        Arguments are flat names (`pool_enabled=False`) or whole parts (`pool=PoolSettings(...)`).
        """
        env = os.environ if env is None else env
        parts: dict[str, Any] = {}
        for part, part_cls in _PARTS.items():
            values: dict[str, Any] = {}
            for f in dataclasses.fields(part_cls):
                flat = flat_name(part_cls, f)
                if flat in overrides:
                    values[f.name] = overrides.pop(flat)
                    continue
                raw = env.get(ENV_PREFIX + flat.upper())
                if raw is not None and flat != "extra_labels":
                    values[f.name] = _parse(flat, f.type, raw)
            if part in overrides:
                given = overrides.pop(part)
                if not isinstance(given, part_cls):
                    raise ConfigError(f"{part} must be a {part_cls.__name__}, got {type(given).__name__}")
                parts[part] = dataclasses.replace(given, **values) if values else given
            else:
                parts[part] = part_cls(**values)
        installation = overrides.pop("installation_id", None) or env.get(INSTALLATION_ENV) or ""
        if overrides:
            raise ConfigError(f"unknown runtime settings: {', '.join(sorted(overrides))}")
        _warn_misspelt(env)
        if parts["engine"].docker_host is None and env.get("DOCKER_HOST"):
            parts["engine"] = dataclasses.replace(parts["engine"], docker_host=env["DOCKER_HOST"])
        return cls(**parts, installation_id=installation or installation_id(env))

    def replace(self, **flat: Any) -> RuntimeConfig:
        """A copy with some settings changed, by flat name: `config.replace(pool_enabled=False)`."""
        names = flat_names()
        unknown = sorted(set(flat) - set(names))
        if unknown:
            raise ConfigError(f"unknown runtime settings: {', '.join(unknown)}")
        changes: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for key, value in flat.items():
            part, name = names[key]
            if part:
                changes.setdefault(part, {})[name] = value
            else:
                top[name] = value
        updated = {part: dataclasses.replace(getattr(self, part), **values) for part, values in changes.items()}
        return dataclasses.replace(self, **updated, **top)


def _parse(name: str, kind: Any, raw: str) -> Any:
    text = str(kind)
    try:
        if text == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if text == "int":
            return int(raw)
        if text == "float":
            return float(raw)
        if text.startswith("tuple"):
            return tuple(raw.split())
        if "None" in text and raw == "":
            return None
        return raw
    except ValueError as err:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {text}") from err


def installation_id(env: Mapping[str, str] | None = None, path: Path = INSTALLATION_FILE) -> str:
    """This installation's id: $THEAPPAPP_INSTALLATION_ID, else a file created on first use.

    Cleanup never crosses installations, so two checkouts sharing one engine stay apart.
    """
    env = os.environ if env is None else env
    if env.get(INSTALLATION_ENV):
        return env[INSTALLATION_ENV]
    file = path.expanduser()
    try:
        existing = file.read_text(encoding="ascii").strip()
        if existing:
            return existing
    except OSError:
        pass
    new = uuid.uuid4().hex[:16]
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: if two processes race on first use, both end up with the winner's id.
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(new + "\n")
    except FileExistsError:
        return file.read_text(encoding="ascii").strip() or new
    except OSError as err:
        raise ConfigError(f"cannot store the installation id in {file}: {err.strerror}; "
                          f"set {INSTALLATION_ENV}") from err
    return new
