"""Images the runtime runs beside the sandboxes (the egress proxy): declared in `languages.yaml`
under `services`, rendered, built and checked by the toolkit like the language images."""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.registry.fields import IMAGE_PREFIX, doc

SERVICE_FILES_DIR = "/opt/theappapp"  # each service's files land in <this>/<service name>/


@dataclass(frozen=True)
class Service:
    """One service image: Debian packages, the files in `templates/services/<name>/`, a user and a command."""

    display_name: str
    version: str
    suite: str = field(metadata=doc("Debian suite of the base image it builds on"))
    packages: tuple[str, ...] = field(metadata=doc("Debian packages it installs"))
    user: str = field(metadata=doc("the user it runs as, uid:gid (a package's system user, never root)"))
    command: tuple[str, ...] = field(metadata=doc("what the container runs; paths of its own files are "
                                                  f"under {SERVICE_FILES_DIR}/<name>/"))
    check: str = field(metadata=doc("shell command run in the built image, as `user`, with a read-only root"))
    expect: str = field(metadata=doc("text the check's output must contain"))
    setup: str | None = field(default=None, metadata=doc("shell command run as root after its files are in place"))
    name: str = field(init=False, default="")

    @property
    def image(self) -> str:
        return f"{IMAGE_PREFIX}{self.name}"

    @property
    def files_dir(self) -> str:
        """Where the image holds this service's files from templates/services/<name>/."""
        return f"{SERVICE_FILES_DIR}/{self.name}"

    def __post_init__(self) -> None:
        uid, _, gid = self.user.partition(":")
        if not uid.isdigit() or not gid.isdigit() or uid == "0":
            raise ValueError(f"user must be a numeric non-root uid:gid, got {self.user!r}")
