"""Runtime configuration: explicit arguments, then THEAPPAPP_* environment, then defaults.

Every security default lives here so a deployment can loosen one deliberately, by name,
and a test can see exactly which setting it is attacking.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import SandboxError

ENV_PREFIX = "THEAPPAPP_"
INSTALLATION_ENV = "THEAPPAPP_INSTALLATION_ID"
INSTALLATION_FILE = Path("~/.config/theappapp-sandbox/installation-id")
MiB = 1024 * 1024


@dataclass(frozen=True)
class RuntimeConfig:
    """How the manager creates and drives sandboxes. Build with `RuntimeConfig.load()`."""

    # Engine and images.
    docker_host: str | None = None  # None: DOCKER_HOST, else the local socket
    image_tag: str = "latest"
    required_languages: tuple[str, ...] = ()  # startup() fails with ImageMissing unless these images exist
    registry_path: str | None = None  # None: THEAPPAPP_REGISTRY, else the project's languages.yaml
    installation_id: str = ""  # "" means: resolved by `load()` (env, then a persistent file)
    # Network: "sandbox" (the dedicated bridge, no host/metadata/peer access) or "none".
    network: str = "sandbox"
    network_name: str = "theappapp-sandbox"
    install_firewall: bool = True
    runtime: str | None = None  # OCI runtime, e.g. "runsc"; None: the engine's default
    # Exec.
    default_timeout: float = 30.0
    max_output_bytes: int = MiB  # per stream
    shell: tuple[str, ...] = ("/bin/bash", "-c")
    # Files.
    max_archive_bytes: int = 64 * MiB
    # Lifetime: containers older than this are fair game for the cleanup job.
    container_ttl: float = 3600.0
    api_timeout: float = 60.0  # deadline for each engine call; gVisor can hang forever
    # Security defaults (each one proven by an attack in tests/integration).
    user: str = "1000:1000"
    cap_drop_all: bool = True
    no_new_privileges: bool = True
    read_only_root: bool = True
    init: bool = True
    home: str = "/home/sandbox"
    workspace: str = "/workspace"
    log_max_size: str = "1m"
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    # Warm pool (runtime/pool.py): fresh spares per (project, language) that create_container
    # hands over instead of creating. Env: THEAPPAPP_POOL_ENABLED, THEAPPAPP_POOL_SPARES_PER_KEY, ...
    pool_enabled: bool = True
    pool_spares_per_key: int = 1  # refilled to this in the background after a task starts or ends on a key
    pool_max_per_key: int = 4  # cap per key, prewarm included
    pool_max_spares: int = 16  # cap over all keys
    pool_max_making: int = 4  # spares being created at once: under load, spares must not crowd out task starts
    # Background refills start only while this process has at most this many container creates, starts
    # and removals in flight (spares being made included): spares use the engine's spare capacity only.
    pool_fill_max_load: int = 1
    pool_idle_ttl: float = 300.0  # seconds a spare may wait before it is removed
    pool_min_available_memory: int = 1024 * MiB  # host MemAvailable under which no spare is made
    # destroy_container returns once the task is detached; removal finishes in the background.
    destroy_in_background: bool = True

    def __post_init__(self) -> None:
        if self.network not in ("sandbox", "none"):
            raise SandboxError(f"network must be 'sandbox' or 'none', got {self.network!r}")
        if self.default_timeout <= 0 or self.api_timeout <= 0:
            raise SandboxError("timeouts must be positive")
        if self.max_output_bytes < 0 or self.max_archive_bytes <= 0:
            raise SandboxError("byte limits must be positive")
        if not self.shell:
            raise SandboxError("shell must name a program")
        caps = (self.pool_spares_per_key, self.pool_max_per_key, self.pool_max_spares, self.pool_fill_max_load)
        if min(caps) < 0 or self.pool_idle_ttl <= 0:
            raise SandboxError("pool caps must be >= 0 and pool_idle_ttl positive")

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RuntimeConfig:
        """Arguments win over THEAPPAPP_<FIELD> environment variables, which win over defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in overrides:
                values[f.name] = overrides.pop(f.name)
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and f.name != "extra_labels":
                values[f.name] = _parse(f.name, f.type, raw)
        if overrides:
            raise SandboxError(f"unknown runtime settings: {', '.join(sorted(overrides))}")
        if "docker_host" not in values and env.get("DOCKER_HOST"):
            values["docker_host"] = env["DOCKER_HOST"]
        if not values.get("installation_id"):
            values["installation_id"] = installation_id(env)
        return cls(**values)


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
        raise SandboxError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {text}") from err


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
        raise SandboxError(f"cannot store the installation id in {file}: {err.strerror}; "
                           f"set {INSTALLATION_ENV}") from err
    return new
