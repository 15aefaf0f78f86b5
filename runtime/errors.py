"""The one error tree of the sandbox: catch `SandboxError` to catch them all."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.validation.findings import Finding


class SandboxError(Exception):
    """Root of every error this package raises on purpose."""


class RegistryError(SandboxError):
    """`languages.yaml` is missing, malformed, or fails validation."""


class UnknownLanguage(SandboxError):
    """A language name or alias that the registry does not declare."""


class ImageMissing(SandboxError):
    """The language's image is not on this engine; the message says how to build it."""


# What to do when the engine is down; every message that reports it ends with this.
ENGINE_START_HINT = "start one with `bash scripts/start-docker-engine.sh` (or set DOCKER_HOST)"


class EngineUnavailable(SandboxError):
    """The Docker engine cannot be reached."""


class InvalidIdentifier(SandboxError):
    """A task or project id that Docker cannot name safely; rejected, never mangled."""


class TaskExists(SandboxError):
    """A container for this task already exists."""


class TaskNotFound(SandboxError):
    """No container is known for this task."""


class InvalidPath(SandboxError):
    """A file path that would leave /workspace or is otherwise unsafe."""


class FileMissing(SandboxError, FileNotFoundError):
    """`read_file` of a path that does not exist under /workspace (also a FileNotFoundError)."""


class NetworkPolicyError(SandboxError):
    """The sandbox network or its firewall rules could not be set up."""


class ValidationFailed(SandboxError):
    """Strict validation found error-severity problems; `findings` holds every finding."""

    def __init__(self, message: str, findings: tuple[Finding, ...] = ()) -> None:
        super().__init__(message)
        self.findings = findings
