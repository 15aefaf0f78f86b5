"""Which images to build, in which order, and the content hash that names each build."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from builder.render import Rendered
from runtime.errors import UnknownLanguage
from runtime.registry import Language, Registry, Service

BASE_REPOSITORY = "theappapp-base"
HASH_TAG_PREFIX = "h-"


class BuildInputError(ValueError):
    """A build option that cannot be used (e.g. an unreadable CA file)."""


@dataclass(frozen=True)
class ImagePlan:
    """One image to build: its Dockerfile, build-context files, tags and what it builds on."""

    key: str  # "base-bookworm" or a language name
    repository: str
    tags: tuple[str, ...]
    dockerfile: str
    context_files: tuple[tuple[str, bytes], ...]  # path in the build context -> content
    parent: str | None  # key of the plan this one is FROM (None: a Debian image)
    from_image: str  # image reference it starts FROM
    language: Language | None = None
    service: Service | None = None

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tags[0]}"

    @property
    def hash_tag_prefix(self) -> str:
        """Bases of every suite share one repository, so their hash tags name the suite."""
        return HASH_TAG_PREFIX if self.language or self.service else f"{HASH_TAG_PREFIX}{self.tags[0]}-"

    def content_hash(self, parent_identity: str) -> str:
        """Hash of everything the image is made of: Dockerfile, context files, parent, and checks.

        `parent_identity` is the parent's content hash (our images) or image id (Debian's),
        so a changed base rebuilds every language on it. Mirrors are not part of it:
        the same packages from another mirror make the same image.
        """
        digest = hashlib.sha256()
        checks = repr([(c.name, c.check, c.expect) for c in self.language.components]) if self.language else ""
        if self.language:  # checks run after the build: a changed check must re-verify the image
            checks += repr((self.language.hello, self.language.run, self.language.compile))
        if self.service:
            checks += repr((self.service.check, self.service.expect))
        for part in (self.dockerfile.encode(), parent_identity.encode(), checks.encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
        for name, content in self.context_files:
            digest.update(name.encode() + b"\0" + len(content).to_bytes(8, "big") + content)
        return digest.hexdigest()


def select_languages(registry: Registry, requested: list[str]) -> list[Language]:
    """Requested names/aliases resolved (all languages when none), in registry order; services left out."""
    return select_images(registry, requested)[0]


def select_images(registry: Registry, requested: list[str]) -> tuple[list[Language], list[Service]]:
    """Requested language names/aliases and service names (everything when none), in registry order."""
    if not requested:
        return list(registry.languages.values()), list(registry.services.values())
    services = [registry.services[name] for name in dict.fromkeys(requested) if name in registry.services]
    chosen = set()
    for name in requested:
        if name in registry.services:
            continue
        try:
            chosen.add(registry.resolve(name).name)
        except UnknownLanguage as err:
            raise UnknownLanguage(f"{err}; services: {', '.join(sorted(registry.services)) or 'none'}") from err
    return [lang for lang in registry.languages.values() if lang.name in chosen], services


def plan_images(
    registry: Registry, rendered: Rendered, languages: list[Language], extra_ca: Path | None,
    services: list[Service] | None = None,
) -> list[ImagePlan]:
    """Bases needed by `languages` and `services` first, then those: dependency order."""
    services = services or []
    ca_files: tuple[tuple[str, bytes], ...] = ()
    if extra_ca is not None:
        try:
            ca_files = (("ca/extra.crt", extra_ca.read_bytes()),)
        except OSError as err:
            raise BuildInputError(f"cannot read the extra CA certificate {extra_ca}: {err.strerror}") from err
    plans: list[ImagePlan] = []
    for suite_name in dict.fromkeys([*(lang.suite for lang in languages), *(svc.suite for svc in services)]):
        suite = registry.suites[suite_name]
        plans.append(
            ImagePlan(
                key=f"base-{suite_name}",
                repository=BASE_REPOSITORY,
                tags=(suite_name,),
                dockerfile=rendered.base_dockerfile(suite_name),
                context_files=(("theappapp-fetch", rendered.fetch_script.encode()), *ca_files),
                parent=None,
                from_image=suite.base_image,
            )
        )
    for lang in languages:
        plans.append(
            ImagePlan(
                key=lang.name,
                repository=lang.image,
                tags=(lang.version, "latest"),
                dockerfile=rendered.language_dockerfile(lang.name),
                context_files=(("sandbox-agent.py", rendered.agent_script.encode()),),
                parent=f"base-{lang.suite}",
                from_image=f"{BASE_REPOSITORY}:{lang.suite}",
                language=lang,
            )
        )
    for svc in services:
        plans.append(
            ImagePlan(
                key=svc.name,
                repository=svc.image,
                tags=(svc.version, "latest"),
                dockerfile=rendered.service_dockerfile(svc.name),
                context_files=rendered.service_files(svc.name),
                parent=f"base-{svc.suite}",
                from_image=f"{BASE_REPOSITORY}:{svc.suite}",
                service=svc,
            )
        )
    return plans
