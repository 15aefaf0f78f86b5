"""A language entry and the whole registry, with the checks that span entries."""

from __future__ import annotations

import dataclasses
import posixpath
import re
from dataclasses import dataclass, field
from typing import Literal

from runtime.errors import UnknownLanguage
from runtime.registry.code import FailureRule, LexerSpec, LexerToken, Pattern, SourceFile, Syntax
from runtime.registry.components import Cache, Component, Packages, Resources, Snippet
from runtime.registry.fields import IMAGE_PREFIX, doc
from runtime.registry.services import Service

# Session drivers the runtime has: a bash (runtime/sandbox/sessions.py); an IPython kernel, a node
# context, the same with type-stripped TypeScript (kernel_session.py).
SessionKind = Literal["shell", "python", "node", "typescript", "ruby", "java"]
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Language:
    """One language runtime: its image, toolchain, tools, and how to run a file."""

    display_name: str
    version: str
    suite: str = field(metadata=doc("Debian suite of the base image"))
    extension: str = field(metadata=doc("source file extension, with the dot"))
    run: str = field(
        metadata=doc("shell command that runs {file} (relative to the workdir); {stem} is its name without "
                     "directory or extension, {base} its path without extension")
    )
    toolchain: tuple[Component, ...]
    hello: Snippet
    compile: str | None = field(default=None, metadata=doc("shell command run before `run`, if any"))
    aliases: tuple[str, ...] = ()
    tools: tuple[Component, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    dangerous_patterns: tuple[Pattern, ...] = ()
    cache: Cache | None = field(
        default=None,
        metadata=doc("a per-project cache directory (e.g. Go's build cache), kept across the project's tasks"),
    )
    sessions: tuple[SessionKind, ...] = field(
        default=("shell",),
        metadata=doc("the session kinds `open_session` offers for this language (the runtime's drivers: "
                     "shell, a long-lived bash; python, an IPython kernel, which needs ipykernel in the image; "
                     "node and typescript, one V8 context, typescript type-stripped by the image's tsc; "
                     "ruby, one binding as irb keeps; java, one JShell)"),
    )
    packages: Packages | None = field(
        default=None,
        metadata=doc("where `pip install`, `npm install -g` and the like put packages: per project, in its volume"),
    )
    run_by_extension: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("other source extensions the image runs, each with its whole command (compile included), "
                     "e.g. node's .ts; placeholders as in `run`"),
    )
    lexer: LexerSpec = field(
        default=(),
        metadata=doc("the language's comment and string forms, tried in this order at each offset, so that "
                     "dangerous patterns are not reported inside them: preset names (c-line-comment, "
                     "c-block-comment, hash-comment, double-quoted, single-quoted, double-quoted-multiline, "
                     "single-quoted-multiline, triple-double-quoted, triple-single-quoted) or tokens of its own; "
                     "none: patterns are matched everywhere"),
    )
    source_file: SourceFile | None = field(
        default=None, metadata=doc("how run_code names a snippet's file; none: main<extension>")
    )
    syntax: Syntax | None = field(
        default=None, metadata=doc("how the validator checks syntax; none: an info finding says it was not checked")
    )
    failures: tuple[FailureRule, ...] = field(
        default=(),
        metadata=doc("how this language reports failures on stderr, in the order they are tried; the monitor "
                     "classifies each execution's outcome and error type with them"),
    )
    registries: str | None = field(
        default=None,
        metadata=doc("shell command, run in the image, that prints the package indexes this language's tools "
                     "use (URLs or host names, one or more per line), as the tools report them: the hosts "
                     "of egress=\"registries\""),
    )
    proxy_env: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("environment that makes this language's own HTTP clients use the egress proxy, for "
                     "allowlisted tasks (HTTP_PROXY and friends are set for every language); {url}, {host} "
                     "and {port} name the proxy"),
    )
    name: str = field(init=False, default="")

    @property
    def image(self) -> str:
        """Image repository, e.g. theappapp-python."""
        return f"{IMAGE_PREFIX}{self.name}"

    @property
    def components(self) -> tuple[Component, ...]:
        return self.toolchain + self.tools

    def command_for(self, filename: str) -> str:
        """The shell command that compiles (if needed) and runs `filename`, chosen by its extension."""
        name = filename.rsplit("/", 1)[-1]
        stem, dot, extension = name.rpartition(".")
        if not dot or not stem:  # no extension, or a dot file: all of it is the stem
            stem, dot, extension = name, "", ""
        base = filename[: len(filename) - len(extension) - len(dot)]
        other = self.run_by_extension.get(f".{extension}") if extension else None
        steps = [other] if other else [self.compile, self.run] if self.compile else [self.run]
        return " && ".join(s.format(file=filename, stem=stem, base=base) for s in steps if s)


@dataclass(frozen=True)
class Suite:
    """A Debian suite a base image is made from."""

    base_image: str = field(metadata=doc("image the base builds FROM, e.g. debian:bookworm-slim"))
    extra_suites: tuple[str, ...] = field(
        default=(), metadata=doc("further apt suites language images may take packages from")
    )


@dataclass(frozen=True)
class Base:
    """What every sandbox image holds."""

    packages: tuple[str, ...]
    registries: str | None = field(
        default=None,
        metadata=doc("shell command printing the package indexes every image uses (apt's), as a language's "
                     "`registries` does"),
    )
    user: str = "sandbox"
    uid: int = 1000
    home: str = "/home/sandbox"
    workspace: str = "/workspace"


@dataclass(frozen=True)
class Registry:
    """The whole of `languages.yaml`."""

    schema_version: Literal[1]
    base: Base
    suites: dict[str, Suite]
    defaults: Resources
    languages: dict[str, Language]
    services: dict[str, Service] = field(
        default_factory=dict,
        metadata=doc("images the runtime runs beside the sandboxes (the egress proxy), built like the languages"),
    )
    aliases: dict[str, str] = field(init=False, default_factory=dict)  # name or alias -> language name

    def __post_init__(self) -> None:
        missing_defaults = [f.name for f in dataclasses.fields(Resources) if getattr(self.defaults, f.name) is None]
        if missing_defaults:
            raise ValueError(f"defaults must set every resource; missing: {', '.join(missing_defaults)}")
        owners: dict[str, str] = {}
        for name, lang in self.languages.items():
            where = f"languages.{name}"
            if not _NAME.match(name):
                raise ValueError(f"{where}: name must be lowercase letters, digits and dashes")
            object.__setattr__(lang, "name", name)
            if lang.suite not in self.suites:
                raise ValueError(f"{where}.suite: unknown suite {lang.suite!r} (declared: {', '.join(self.suites)})")
            if not lang.extension.startswith("."):
                raise ValueError(f"{where}.extension: must start with a dot")
            if lang.cache is not None:
                path = lang.cache.path.rstrip("/")
                for other in ("/tmp", self.base.home, self.base.workspace):  # mounted separately
                    if path == other or path.startswith(f"{other}/") or other.startswith(f"{path}/"):
                        raise ValueError(f"{where}.cache.path: {lang.cache.path!r} overlaps {other}")
            workspace = posixpath.normpath(self.base.workspace)
            if lang.packages is not None and not posixpath.normpath(lang.packages.path).startswith(f"{workspace}/"):
                raise ValueError(f"{where}.packages.path: {lang.packages.path!r} must lie under {workspace}/ "
                                 "(the project's volume), or installs would not persist")
            for other in lang.run_by_extension:
                if not other.startswith(".") or other == lang.extension:
                    raise ValueError(
                        f"{where}.run_by_extension: {other!r} must start with a dot and differ from `extension`"
                    )
            slow = [t for t in lang.lexer if isinstance(t, LexerToken) and t.slow_if is not None]
            if len(slow) > 1:  # the lexer checks one text for slow scanning, not several
                raise ValueError(f"{where}.lexer: at most one token may use slow_if; give the others start_chars")
            for alias in lang.syntax.by_alias if lang.syntax is not None else ():
                if alias not in lang.aliases:
                    raise ValueError(f"{where}.syntax.by_alias: {alias!r} is not one of this language's aliases")
            for key in (name, *lang.aliases):
                if key in owners and owners[key] != name:
                    raise ValueError(f"{where}.aliases: {key!r} is already used by {owners[key]!r}")
                if key in owners and key != name:
                    raise ValueError(f"{where}.aliases: {key!r} is listed twice")
                owners[key] = name
            allowed_suites = {lang.suite, *self.suites[lang.suite].extra_suites}
            for i, comp in enumerate(lang.components):
                kind, index = ("toolchain", i) if i < len(lang.toolchain) else ("tools", i - len(lang.toolchain))
                suite = comp.install.apt_suite
                if suite is not None and suite not in allowed_suites:
                    raise ValueError(
                        f"{where}.{kind}[{index}].install.apt_suite: {suite!r} is not available on "
                        f"{lang.suite} (declare it in suites.{lang.suite}.extra_suites)"
                    )
        for name, service in self.services.items():
            if not _NAME.match(name) or name in owners:
                raise ValueError(f"services.{name}: name must be lowercase letters, digits and dashes, "
                                 "and not a language's name or alias")
            object.__setattr__(service, "name", name)
            if service.suite not in self.suites:
                raise ValueError(f"services.{name}.suite: unknown suite {service.suite!r}")
        object.__setattr__(self, "aliases", owners)

    def resolve(self, name_or_alias: str) -> Language:
        """The language for a name or alias, or `UnknownLanguage` listing what exists."""
        key = name_or_alias.strip().lower()
        if key not in self.aliases:
            raise UnknownLanguage(
                f"unknown language {name_or_alias!r}; known: {', '.join(sorted(self.languages))}"
            )
        return self.languages[self.aliases[key]]

    def resources_for(self, language: Language) -> Resources:
        return language.resources.over(self.defaults)

