"""TheAppApp Sandbox runtime: one hardened container per task.

    from runtime import get_container_manager
"""

from runtime.cleanup import CleanupReport, CleanupScheduler
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
