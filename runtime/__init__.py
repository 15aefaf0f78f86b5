"""TheAppApp Sandbox runtime: one hardened container per task.

    from runtime import get_container_manager
"""

from runtime.config import RuntimeConfig
from runtime.errors import (
    EngineUnavailable,
    ImageMissing,
    InvalidIdentifier,
    InvalidPath,
    NetworkPolicyError,
    RegistryError,
    SandboxError,
    TaskExists,
    TaskNotFound,
    UnknownLanguage,
)
from runtime.execution import ExecResult, ExecStream, OutputChunk
from runtime.manager import ContainerInfo, ContainerManager, Sandbox, get_container_manager
from runtime.pool import WarmPool
from runtime.registry import Language, Registry, get_registry, load_registry

__all__ = [
    "ContainerInfo",
    "ContainerManager",
    "EngineUnavailable",
    "ExecResult",
    "ExecStream",
    "ImageMissing",
    "InvalidIdentifier",
    "InvalidPath",
    "Language",
    "NetworkPolicyError",
    "OutputChunk",
    "Registry",
    "RegistryError",
    "RuntimeConfig",
    "Sandbox",
    "SandboxError",
    "TaskExists",
    "TaskNotFound",
    "UnknownLanguage",
    "WarmPool",
    "get_container_manager",
    "get_registry",
    "load_registry",
]
