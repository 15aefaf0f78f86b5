"""TheAppApp Sandbox runtime: one hardened container per task.

    from runtime import get_container_manager
"""

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
from runtime.registry import Language, Registry, get_registry, load_registry

__all__ = [
    "EngineUnavailable",
    "ImageMissing",
    "InvalidIdentifier",
    "InvalidPath",
    "Language",
    "NetworkPolicyError",
    "RegistryError",
    "Registry",
    "SandboxError",
    "TaskExists",
    "TaskNotFound",
    "UnknownLanguage",
    "get_registry",
    "load_registry",
]
