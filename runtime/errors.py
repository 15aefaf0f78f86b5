"""The one error tree of the sandbox: catch `SandboxError` to catch them all.

Errors are grouped by whose problem they are, so a caller can decide what to do
without knowing every class:

    SandboxError
    ├── CallerError            the call was wrong: fix the request, retrying will not help
    │   ├── InvalidRequest         a bad argument value (timeout, network mode, command type)
    │   ├── InvalidIdentifier      a task or project id Docker cannot name safely
    │   ├── InvalidPath            a path that would leave /workspace, or is otherwise unsafe
    │   ├── FileMissing            read of a path that does not exist (also a FileNotFoundError)
    │   ├── UnknownLanguage        a language or alias the registry does not declare
    │   ├── TaskExists             create for a task that already has a container
    │   ├── TaskNotFound           no container is known for this task
    │   ├── ValidationFailed       strict validation refused the code (`findings` says why)
│   ├── AccessDenied           the caller's token does not cover this project (service only)
│   └── LimitExceeded          over the caller's limits: live tasks, timeout (service only)
│       └── BodyTooLarge           a request body over the caller's limit (service only)
    ├── InfrastructureError    the environment is not ready: engine, images, registry, settings
    │   ├── ConfigError            a setting (argument or THEAPPAPP_* variable) is invalid
    │   ├── RegistryError          languages.yaml is missing, malformed or invalid
    │   ├── ImageMissing           a language's image is not built (the message says how)
    │   ├── EngineUnavailable      the engine cannot be reached, or did not answer in time
    │   ├── EngineError            the engine refused an operation
    │   └── NetworkPolicyError     the sandbox network or its firewall could not be set up
    └── SandboxFailure         the sandbox itself failed under the call
        ├── SandboxGone            its container died or was removed (the message has its exit status)
        └── SessionClosed          a session's shell or interpreter is gone (closed, exited, or killed)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.validation.findings import Finding


class SandboxError(Exception):
    """Root of every error this package raises on purpose."""


# -- the caller's mistakes -------------------------------------------------------------------


class CallerError(SandboxError):
    """The request was wrong; the message says what is allowed."""


class InvalidRequest(CallerError):
    """An argument value the sandbox cannot accept (a negative timeout, an unknown network mode, …)."""


class InvalidIdentifier(CallerError):
    """A task or project id that Docker cannot name safely; rejected, never mangled."""


class InvalidPath(CallerError):
    """A file path that would leave /workspace or is otherwise unsafe."""


class FileMissing(CallerError, FileNotFoundError):
    """`read_file` of a path that does not exist under /workspace (also a FileNotFoundError)."""


class UnknownLanguage(CallerError):
    """A language name or alias that the registry does not declare."""


class TaskExists(CallerError):
    """A container for this task already exists."""


class TaskNotFound(CallerError):
    """No container is known for this task."""


class ValidationFailed(CallerError):
    """Strict validation found error-severity problems; `findings` holds every finding."""

    def __init__(self, message: str, findings: tuple[Finding, ...] = ()) -> None:
        super().__init__(message)
        self.findings = findings


class AccessDenied(CallerError):
    """The service's caller may not use this project: its token is scoped to other project ids."""


class LimitExceeded(CallerError):
    """The service's caller is over a limit of its token (live tasks, timeout, request body size)."""


class BodyTooLarge(LimitExceeded):
    """A request body over the service caller's limit (HTTP 413)."""


# -- the environment ---------------------------------------------------------------------------


class InfrastructureError(SandboxError):
    """The environment the sandboxes run in is not ready or misbehaves."""


class ConfigError(InfrastructureError):
    """A runtime setting (argument or THEAPPAPP_* variable) is invalid."""


class RegistryError(InfrastructureError):
    """`languages.yaml` is missing, malformed, or fails validation."""


class ImageMissing(InfrastructureError):
    """The language's image is not on this engine; the message says how to build it."""


# What to do when the engine is down; every message that reports it ends with this.
ENGINE_START_HINT = "start one with `bash scripts/start-docker-engine.sh` (or set DOCKER_HOST)"


class EngineUnavailable(InfrastructureError):
    """The engine cannot be reached, or did not answer within its deadline."""


class EngineError(InfrastructureError):
    """The engine answered, and refused the operation; the message carries its reason."""


class NetworkPolicyError(InfrastructureError):
    """The sandbox network or its firewall rules could not be set up."""


# -- the sandbox itself ------------------------------------------------------------------------


class SandboxFailure(SandboxError):
    """The sandbox failed under the call (its container died, its processes were killed)."""


class SandboxGone(SandboxFailure):
    """The task's container is no longer running: every later call on the task raises this too."""

    def __init__(self, message: str, exit_code: int | None = None, oom_killed: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.oom_killed = oom_killed


class SessionClosed(SandboxFailure):
    """The session's shell or interpreter is gone: closed, exited, or killed at a timeout."""
