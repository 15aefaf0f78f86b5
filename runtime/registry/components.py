"""The image side of a language entry: what is installed and checked, the per-project
directories, and the resource limits."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

from runtime.registry.fields import doc

_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class Download:
    """A file fetched at build time and verified by its checksum before use."""

    url: str = field(metadata=doc("https URL of the archive"))
    dest: str = field(metadata=doc("absolute directory the archive is unpacked into"))
    sha256: str | None = None
    sha512: str | None = None
    archive: Literal["tar.gz", "zip"] = "tar.gz"
    strip_components: int = 0
    links: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("symlinks to create: link path -> target (relative targets are under dest)"),
    )
    optional: bool = field(
        default=False,
        metadata=doc("if the source is unreachable the image builds without it, labelled as missing"),
    )
    arch: Literal["amd64", "arm64"] = "amd64"

    def __post_init__(self) -> None:
        if not self.url.startswith("https://"):
            raise ValueError(f"url must be https: {self.url}")
        if not self.dest.startswith("/"):
            raise ValueError(f"dest must be absolute: {self.dest}")
        digests = [d for d in (self.sha256, self.sha512) if d is not None]
        if len(digests) != 1:
            raise ValueError("exactly one of sha256 or sha512 is required")
        expected_len = 64 if self.sha256 else 128
        if len(digests[0]) != expected_len or not _HEX.match(digests[0]):
            raise ValueError(f"checksum must be {expected_len} lowercase hex digits")

    @property
    def digest_tool(self) -> str:
        return "sha256sum" if self.sha256 else "sha512sum"

    @property
    def digest(self) -> str:
        return self.sha256 or self.sha512 or ""


INSTALL_SOURCES = ("apt", "pip", "npm", "gem", "go", "download")


@dataclass(frozen=True)
class Install:
    """Where a component comes from: exactly one source."""

    apt: tuple[str, ...] = ()
    apt_suite: str | None = field(
        default=None, metadata=doc("apt suite to take the packages from, e.g. bookworm-backports")
    )
    pip: tuple[str, ...] = ()
    npm: tuple[str, ...] = ()
    gem: tuple[str, ...] = ()
    go: tuple[str, ...] = ()
    download: Download | None = None

    def __post_init__(self) -> None:
        used = [s for s in INSTALL_SOURCES if getattr(self, s)]
        if len(used) != 1:
            raise ValueError(f"exactly one install source is required ({', '.join(INSTALL_SOURCES)})")
        if self.apt_suite and not self.apt:
            raise ValueError("apt_suite only applies to apt packages")

    @property
    def source(self) -> str:
        return next(s for s in INSTALL_SOURCES if getattr(self, s))


@dataclass(frozen=True)
class Component:
    """A toolchain part or a tool: how to install it and how to check it works."""

    name: str
    install: Install
    check: str = field(metadata=doc("shell command run as the sandbox user; must exit 0"))
    expect: str | None = field(default=None, metadata=doc("text the check's output must contain"))


@dataclass(frozen=True)
class Snippet:
    """A program and the output it must print."""

    code: str
    expect: str


@dataclass(frozen=True)
class Cache:
    """A directory each project keeps for this language (a volume per project and language)."""

    path: str = field(metadata=doc("absolute path in the container, outside /tmp, HOME and the workspace"))
    warm: str | None = field(
        default=None,
        metadata=doc("shell command run at build time, as the sandbox user, that fills `path`; a new "
                     "project's cache starts as a copy of what it left"),
    )

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or not self.path.strip("/"):
            raise ValueError(f"cache path must be an absolute directory below /, got {self.path!r}")


@dataclass(frozen=True)
class Packages:
    """Where the language's own install commands (pip, npm -g, gem, ...) put what they install.

    `path` lies in the project's volume, so an install is there for the project's next task and
    no other project ever sees it, while the image stays read-only and as built. The image sets
    `env` (and `bin` on PATH) after its own tools are installed, so the build is unaffected.
    """

    path: str = field(metadata=doc("absolute directory under the workspace that installs go to"))
    env: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("variables that point the install tools and the language at `path`; {path} is replaced, "
                     "and ${VAR} is the value VAR had before (Dockerfile ENV rules)"),
    )
    bin: tuple[str, ...] = field(
        default=(), metadata=doc("directories, relative to `path`, put first on PATH (installed programs)")
    )
    setup: str | None = field(
        default=None,
        metadata=doc("shell command run as root at build time, after the tools are installed, if the "
                     "language needs one to accept installs outside its own directories"),
    )

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"packages path must be absolute, without '..', got {self.path!r}")
        for rel in self.bin:
            if rel.startswith("/") or ".." in rel.split("/"):
                raise ValueError(f"packages bin {rel!r} must be relative to path, without '..'")

    def environment(self) -> dict[str, str]:
        """`env` with {path} filled in, then PATH with `bin` first (as the image's ENV sets it)."""
        out = {key: value.replace("{path}", self.path) for key, value in self.env.items()}
        if self.bin:
            dirs = ":".join(f"{self.path}/{rel}".rstrip("/") for rel in self.bin)
            out["PATH"] = f"{dirs}:{out.get('PATH', '${PATH}')}"
        return out


@dataclass(frozen=True)
class Resources:
    """Per-container limits; unset values fall back to the registry defaults."""

    memory: str | None = field(default=None, metadata=doc("e.g. 512m or 2g; swap is set equal"))
    cpus: float | None = None
    pids: int | None = None
    tmp_size: str | None = field(default=None, metadata=doc("tmpfs size for /tmp"))
    home_size: str | None = field(default=None, metadata=doc("tmpfs size for the sandbox HOME"))

    def __post_init__(self) -> None:
        for name in ("memory", "tmp_size", "home_size"):
            value = getattr(self, name)
            if value is not None and not _SIZE.match(value):
                raise ValueError(f"{name} must look like 512m or 2g, got {value!r}")
        if self.cpus is not None and not 0 < self.cpus <= 64:
            raise ValueError("cpus must be in (0, 64]")
        if self.pids is not None and self.pids < 16:
            raise ValueError("pids must be at least 16")

    def over(self, defaults: Resources) -> Resources:
        """These values, with unset ones taken from `defaults`."""
        return Resources(
            **{f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(defaults, f.name)
               for f in dataclasses.fields(self)}
        )

