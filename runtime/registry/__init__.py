"""The language registry: `languages.yaml`, typed and validated. The only loader of it.

Both halves read it: the builder renders Dockerfiles from it, the runtime resolves a
language (or alias) to its image, run command, environment and resource limits.

    components  the image side of an entry: install sources, checks, caches, packages, resources
    code        what the runtime knows of the language's code: patterns, lexer, syntax, failures
    model       `Language` and `Registry`, with the checks that span entries
    services    images run beside the sandboxes (the egress proxy)
    loading     finding, reading and caching the file; the JSON Schema
"""

from runtime.registry.code import (
    FailureOutcome,
    FailureRule,
    LexerPreset,
    LexerSpec,
    LexerToken,
    Pattern,
    SourceFile,
    Syntax,
    SyntaxCompiler,
    grammar_spec,
)
from runtime.registry.components import (
    INSTALL_SOURCES,
    Cache,
    Component,
    Download,
    Install,
    Packages,
    Resources,
    Snippet,
)
from runtime.registry.fields import IMAGE_PREFIX
from runtime.registry.loading import (
    DEFAULT_REGISTRY_PATH,
    INSTALLED_REGISTRY_PATH,
    REGISTRY_ENV,
    get_registry,
    load_registry,
    parse_registry,
    registry_json_schema,
    registry_path,
)
from runtime.registry.model import Base, Language, Registry, SessionKind, Suite
from runtime.registry.services import Service

__all__ = [
    "DEFAULT_REGISTRY_PATH",
    "IMAGE_PREFIX",
    "INSTALLED_REGISTRY_PATH",
    "INSTALL_SOURCES",
    "REGISTRY_ENV",
    "Base",
    "Cache",
    "Component",
    "Download",
    "FailureOutcome",
    "FailureRule",
    "Install",
    "Language",
    "LexerPreset",
    "LexerSpec",
    "LexerToken",
    "Packages",
    "Pattern",
    "Registry",
    "Resources",
    "Service",
    "SessionKind",
    "Snippet",
    "SourceFile",
    "Suite",
    "Syntax",
    "SyntaxCompiler",
    "get_registry",
    "grammar_spec",
    "load_registry",
    "parse_registry",
    "registry_json_schema",
    "registry_path",
]
