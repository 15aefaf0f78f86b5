"""Finding, reading and caching `languages.yaml`; the registry's JSON Schema."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import RegistryError
from runtime.registry.model import Registry
from runtime.typed_load import LoadError, json_schema, load

REGISTRY_ENV = "THEAPPAPP_REGISTRY"
DEFAULT_REGISTRY_PATH = Path(__file__).resolve().parents[2] / "languages.yaml"
INSTALLED_REGISTRY_PATH = Path(sys.prefix) / "share" / "theappapp-sandbox" / "languages.yaml"


def registry_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path, else $THEAPPAPP_REGISTRY, else the project's languages.yaml (a checkout),
    else the copy a wheel installs under <prefix>/share/theappapp-sandbox."""
    if path is not None:
        return Path(path)
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    return DEFAULT_REGISTRY_PATH if DEFAULT_REGISTRY_PATH.is_file() else INSTALLED_REGISTRY_PATH


def parse_registry(data: Any, source: str = "languages.yaml") -> Registry:
    """Validate already-parsed YAML; errors name the field, e.g. `languages.node.tools[1].check`."""
    try:
        return load(Registry, data)
    except LoadError as err:
        raise RegistryError(f"{source}: {err}") from err


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Read and validate the registry file."""
    file = registry_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise RegistryError(f"{file}: cannot read the registry ({err.strerror}); set ${REGISTRY_ENV}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise RegistryError(f"{file.name}:{where}: not valid YAML: {problem}") from err
    return parse_registry(data, file.name)


@lru_cache(maxsize=4)
def _cached(path: Path, mtime_ns: int) -> Registry:
    return load_registry(path)


def get_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """The registry, loaded once per file version."""
    file = registry_path(path).resolve()
    try:
        mtime = file.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return _cached(file, mtime)


def registry_json_schema() -> dict[str, Any]:
    return json_schema(Registry, "TheAppApp Sandbox language registry (languages.yaml)")
