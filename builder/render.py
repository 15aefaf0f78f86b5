"""Render templates/ with the registry into generated/ (Dockerfiles, build-all.sh, JSON Schema)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from runtime import labels
from runtime.registry import Component, Language, Registry, registry_json_schema

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = PROJECT_ROOT / "templates"
GENERATED = PROJECT_ROOT / "generated"

HEADER = "# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`."
AGENT_SOURCE = PROJECT_ROOT / "runtime" / "agent" / "sandbox_agent.py"
AGENT_PATH = "/opt/theappapp/sandbox-agent.py"  # in the image: the source, kept beside its bytecode
# What runs (the runtime reads it from the image's label): compiled at build time by the image's own Python. A
# script given as source is compiled at every start (~22 ms of CPU here for the agent, paid by every container
# start and every health check); its bytecode is never cached, and the root is read-only anyway.
AGENT_CODE = "/opt/theappapp/sandbox-agent.pyc"
AGENT_HEADER = "# DO NOT EDIT: a copy of runtime/agent/sandbox_agent.py, made by `nox -s render`.\n"


@dataclass(frozen=True)
class Rendered:
    """Every generated file, by path relative to generated/."""

    files: dict[str, str]

    def base_dockerfile(self, suite: str) -> str:
        return self.files[f"base/{suite}.Dockerfile"]

    def language_dockerfile(self, language: str) -> str:
        return self.files[f"languages/{language}.Dockerfile"]

    def service_dockerfile(self, service: str) -> str:
        return self.files[f"services/{service}.Dockerfile"]

    def service_files(self, service: str) -> tuple[tuple[str, bytes], ...]:
        """The service's own files (from templates/services/<name>/), by build-context path `<name>/...`."""
        prefix = f"services/{service}/"
        return tuple((name.removeprefix("services/"), text.encode()) for name, text in sorted(self.files.items())
                     if name.startswith(prefix))

    @property
    def fetch_script(self) -> str:
        return self.files["base/theappapp-fetch"]

    @property
    def agent_script(self) -> str:
        return self.files["base/sandbox-agent.py"]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,  # a missing value fails the render
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _common(registry: Registry) -> dict[str, Any]:
    return {
        "header": HEADER,
        "base": registry.base,
        "labels": labels,
        "agent_path": AGENT_PATH,
        "agent_code": AGENT_CODE,
        "agent_dir": AGENT_PATH.rsplit("/", 1)[0],
    }


def _by_source(lang: Language) -> dict[str, Any]:
    """Group a language's components by install source, apt packages by suite, order kept."""
    apt: dict[str, list[str]] = defaultdict(list)
    grouped: dict[str, list[str]] = {"pip": [], "npm": [], "gem": [], "go": []}
    downloads: list[Component] = []
    for comp in lang.components:
        inst = comp.install
        if inst.apt:
            suite_packages = apt[inst.apt_suite or lang.suite]
            suite_packages.extend(p for p in inst.apt if p not in suite_packages)
        elif inst.download is not None:
            downloads.append(comp)
        else:
            grouped[inst.source].extend(getattr(inst, inst.source))
    # The language's own suite first, so backports only add what they must.
    ordered_apt = dict(sorted(apt.items(), key=lambda item: item[0] != lang.suite))
    return {"apt": ordered_apt, "downloads": downloads, **grouped}


def render(registry: Registry) -> Rendered:
    env = _environment()
    common = _common(registry)
    files: dict[str, str] = {}
    for suite_name, suite in registry.suites.items():
        files[f"base/{suite_name}.Dockerfile"] = env.get_template("base.Dockerfile.j2").render(
            **common, suite_name=suite_name, suite=suite
        )
    files["base/theappapp-fetch"] = env.get_template("theappapp-fetch.j2").render(**common)
    # The in-sandbox agent goes into every base as it is (stdlib Python, one file).
    files["base/sandbox-agent.py"] = AGENT_HEADER + AGENT_SOURCE.read_text(encoding="utf-8")
    for lang in registry.languages.values():
        files[f"languages/{lang.name}.Dockerfile"] = env.get_template("language.Dockerfile.j2").render(
            **common, lang=lang, **_by_source(lang)
        )
    for svc in registry.services.values():
        files[f"services/{svc.name}.Dockerfile"] = env.get_template("service.Dockerfile.j2").render(**common, svc=svc)
        # Its files go into the image as they are (config, scripts): copied, not rendered.
        source = TEMPLATES / "services" / svc.name
        for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            files[f"services/{svc.name}/{path.relative_to(source)}"] = path.read_text(encoding="utf-8")
    files["build-all.sh"] = env.get_template("build-all.sh.j2").render(
        **common, suites=registry.suites, languages=list(registry.languages.values()),
        services=list(registry.services.values()),
    )
    files["languages.schema.json"] = json.dumps(registry_json_schema(), indent=2) + "\n"
    return Rendered(files)


def stale_files(rendered: Rendered, out_dir: Path = GENERATED) -> list[str]:
    """Generated files that differ from (or are missing in, or extra to) a fresh render."""
    on_disk = {str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file()} if out_dir.exists() else set()
    differing = [
        name
        for name, text in rendered.files.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]
    return sorted(set(differing) | (on_disk - set(rendered.files)))


def write(rendered: Rendered, out_dir: Path = GENERATED) -> list[str]:
    """Write the rendered files, remove ones no longer rendered; return what changed."""
    changed = stale_files(rendered, out_dir)
    for name in changed:
        path = out_dir / name
        if name not in rendered.files:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered.files[name], encoding="utf-8")
        if name.endswith(".sh") or name.endswith("theappapp-fetch"):
            path.chmod(0o755)
    return changed
