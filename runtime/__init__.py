"""TheAppApp Sandbox runtime: one hardened container per task.

    from runtime import get_container_manager
"""

from runtime.config import RuntimeConfig
from runtime.errors import (
    AccessDenied,
    BodyTooLarge,
    CallerError,
    ConfigError,
    EngineError,
    EngineUnavailable,
    FileMissing,
    ImageMissing,
    InfrastructureError,
    InvalidIdentifier,
    InvalidPath,
    InvalidRequest,
    LimitExceeded,
    NetworkPolicyError,
    RegistryError,
    SandboxError,
    SandboxFailure,
    SandboxGone,
    SessionClosed,
    TaskExists,
    TaskNotFound,
    UnknownLanguage,
    ValidationFailed,
)
from runtime.monitoring.monitor import SandboxMonitor
from runtime.ops.cleanup import CleanupReport
from runtime.ops.scheduler import CleanupScheduler
from runtime.registry import Language, Registry, get_registry, load_registry
from runtime.sandbox.execution import ExecResult, ExecStream, OutputChunk
from runtime.sandbox.files import FileEntry
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.kernel_session import CellError, CellResult, KernelSession, RichOutput
from runtime.sandbox.manager import ContainerManager, get_container_manager
from runtime.sandbox.pool import WarmPool
from runtime.sandbox.processes import ProcessInfo
from runtime.sandbox.runcode import RunResult
from runtime.sandbox.sessions import ShellResult, ShellSession
from runtime.sandbox.tasks import ContainerInfo
from runtime.validation import CodeValidator, Finding

__all__ = [
    "AccessDenied",
    "BodyTooLarge",
    "CallerError",
    "CellError",
    "CellResult",
    "CleanupReport",
    "CleanupScheduler",
    "CodeValidator",
    "ConfigError",
    "ContainerInfo",
    "ContainerManager",
    "EngineError",
    "EngineUnavailable",
    "ExecResult",
    "ExecStream",
    "FileEntry",
    "FileMissing",
    "Finding",
    "ImageMissing",
    "InfrastructureError",
    "InvalidIdentifier",
    "InvalidPath",
    "InvalidRequest",
    "KernelSession",
    "Language",
    "LimitExceeded",
    "NetworkPolicyError",
    "OutputChunk",
    "ProcessInfo",
    "Registry",
    "RegistryError",
    "RichOutput",
    "RunResult",
    "RuntimeConfig",
    "Sandbox",
    "SandboxError",
    "SandboxFailure",
    "SandboxGone",
    "SandboxMonitor",
    "SessionClosed",
    "ShellResult",
    "ShellSession",
    "TaskExists",
    "TaskNotFound",
    "UnknownLanguage",
    "ValidationFailed",
    "WarmPool",
    "get_container_manager",
    "get_registry",
    "load_registry",
]
