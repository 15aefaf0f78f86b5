"""TheAppApp Sandbox runtime: one hardened container per task.

    from runtime import get_container_manager
"""

from typing import TYPE_CHECKING, Any

from runtime.config import RuntimeConfig
from runtime.errors import (
    EngineUnavailable,
    FileMissing,
    ImageMissing,
    InvalidIdentifier,
    InvalidPath,
    NetworkPolicyError,
    RegistryError,
    SandboxError,
    TaskExists,
    TaskNotFound,
    UnknownLanguage,
    ValidationFailed,
)
from runtime.execution import ExecResult, ExecStream, OutputChunk
from runtime.manager import ContainerInfo, ContainerManager, Sandbox, get_container_manager
from runtime.monitor import SandboxMonitor
from runtime.pool import WarmPool
from runtime.registry import Language, Registry, get_registry, load_registry
from runtime.runcode import RunResult
from runtime.validation import CodeValidator, Finding

if TYPE_CHECKING:
    from runtime.cleanup import CleanupReport, CleanupScheduler


def __getattr__(name: str) -> Any:
    # Imported on first use: `python -m runtime.cleanup` must not find the module already
    # imported by its own package (runpy warns, and the module would run twice over).
    if name in ("CleanupReport", "CleanupScheduler"):
        from runtime import cleanup

        return getattr(cleanup, name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")

__all__ = [
    "CleanupReport",
    "CleanupScheduler",
    "CodeValidator",
    "ContainerInfo",
    "ContainerManager",
    "EngineUnavailable",
    "ExecResult",
    "ExecStream",
    "FileMissing",
    "Finding",
    "ImageMissing",
    "InvalidIdentifier",
    "InvalidPath",
    "Language",
    "NetworkPolicyError",
    "OutputChunk",
    "Registry",
    "RegistryError",
    "RunResult",
    "RuntimeConfig",
    "Sandbox",
    "SandboxError",
    "SandboxMonitor",
    "TaskExists",
    "TaskNotFound",
    "UnknownLanguage",
    "ValidationFailed",
    "WarmPool",
    "get_container_manager",
    "get_registry",
    "load_registry",
]
