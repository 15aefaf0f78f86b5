"""TheAppApp Sandbox runtime: one hardened container per task.

    from runtime import get_container_manager
"""

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
from runtime.monitoring.monitor import SandboxMonitor
from runtime.ops.cleanup import CleanupReport, CleanupScheduler
from runtime.registry import Language, Registry, get_registry, load_registry
from runtime.sandbox.execution import ExecResult, ExecStream, OutputChunk
from runtime.sandbox.manager import ContainerInfo, ContainerManager, Sandbox, get_container_manager
from runtime.sandbox.pool import WarmPool
from runtime.sandbox.runcode import RunResult
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
