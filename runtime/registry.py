"""The language registry: `languages.yaml`, typed and validated. The only loader of it.

Both halves read it: the builder renders Dockerfiles from it, the runtime resolves a
language (or alias) to its image, run command, environment and resource limits.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from runtime.errors import RegistryError, UnknownLanguage
from runtime.typed_load import LoadError, json_schema, load

REGISTRY_ENV = "THEAPPAPP_REGISTRY"
DEFAULT_REGISTRY_PATH = Path(__file__).resolve().parent.parent / "languages.yaml"
INSTALLED_REGISTRY_PATH = Path(sys.prefix) / "share" / "theappapp-sandbox" / "languages.yaml"
IMAGE_PREFIX = "theappapp-"

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")
_HEX = re.compile(r"^[0-9a-f]+$")
_STEM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")  # as run_code accepts file names: nothing the shell reads
_GRAMMAR = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?$")  # a dotted module[:function]


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


def _regex(regex: str, what: str, flags: int = re.MULTILINE) -> re.Pattern[str]:
    """`regex` compiled, or a ValueError naming the field (`what`) it came from."""
    try:
        return re.compile(regex, flags)
    except re.error as err:
        raise ValueError(f"{what}: bad regex: {err}") from err


@dataclass(frozen=True)
class Download:
    """A file fetched at build time and verified by its checksum before use."""

    url: str = field(metadata=_doc("https URL of the archive"))
    dest: str = field(metadata=_doc("absolute directory the archive is unpacked into"))
    sha256: str | None = None
    sha512: str | None = None
    archive: Literal["tar.gz", "zip"] = "tar.gz"
    strip_components: int = 0
    links: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("symlinks to create: link path -> target (relative targets are under dest)"),
    )
    optional: bool = field(
        default=False,
        metadata=_doc("if the source is unreachable the image builds without it, labelled as missing"),
    )
    arch: Literal["amd64", "arm64"] = "amd64"

    def __post_init__(self) -> None:
        if not self.url.startswith("https://"):
            raise ValueError(f"url must be https: {self.url}")
        if not self.dest.startswith("/"):
            raise ValueError(f"dest must be absolute: {self.dest}")
        digests = [d for d in (self.sha256, self.sha512) if d is not None]
        if len(digests) != 1:
            raise ValueError("exactly one of sha256 or sha512 is required")
        expected_len = 64 if self.sha256 else 128
        if len(digests[0]) != expected_len or not _HEX.match(digests[0]):
            raise ValueError(f"checksum must be {expected_len} lowercase hex digits")

    @property
    def digest_tool(self) -> str:
        return "sha256sum" if self.sha256 else "sha512sum"

    @property
    def digest(self) -> str:
        return self.sha256 or self.sha512 or ""


INSTALL_SOURCES = ("apt", "pip", "npm", "gem", "go", "download")


@dataclass(frozen=True)
class Install:
    """Where a component comes from: exactly one source."""

    apt: tuple[str, ...] = ()
    apt_suite: str | None = field(
        default=None, metadata=_doc("apt suite to take the packages from, e.g. bookworm-backports")
    )
    pip: tuple[str, ...] = ()
    npm: tuple[str, ...] = ()
    gem: tuple[str, ...] = ()
    go: tuple[str, ...] = ()
    download: Download | None = None

    def __post_init__(self) -> None:
        used = [s for s in INSTALL_SOURCES if getattr(self, s)]
        if len(used) != 1:
            raise ValueError(f"exactly one install source is required ({', '.join(INSTALL_SOURCES)})")
        if self.apt_suite and not self.apt:
            raise ValueError("apt_suite only applies to apt packages")

    @property
    def source(self) -> str:
        return next(s for s in INSTALL_SOURCES if getattr(self, s))


@dataclass(frozen=True)
class Component:
    """A toolchain part or a tool: how to install it and how to check it works."""

    name: str
    install: Install
    check: str = field(metadata=_doc("shell command run as the sandbox user; must exit 0"))
    expect: str | None = field(default=None, metadata=_doc("text the check's output must contain"))


@dataclass(frozen=True)
class Snippet:
    """A program and the output it must print."""

    code: str
    expect: str


@dataclass(frozen=True)
class Cache:
    """A directory each project keeps for this language (a volume per project and language)."""

    path: str = field(metadata=_doc("absolute path in the container, outside /tmp, HOME and the workspace"))
    warm: str | None = field(
        default=None,
        metadata=_doc("shell command run at build time, as the sandbox user, that fills `path`; a new "
                      "project's cache starts as a copy of what it left"),
    )

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or not self.path.strip("/"):
            raise ValueError(f"cache path must be an absolute directory below /, got {self.path!r}")


@dataclass(frozen=True)
class Packages:
    """Where the language's own install commands (pip, npm -g, gem, ...) put what they install.

    `path` lies in the project's volume, so an install is there for the project's next task and
    no other project ever sees it, while the image stays read-only and as built. The image sets
    `env` (and `bin` on PATH) after its own tools are installed, so the build is unaffected.
    """

    path: str = field(metadata=_doc("absolute directory under the workspace that installs go to"))
    env: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("variables that point the install tools and the language at `path`; {path} is replaced, "
                      "and ${VAR} is the value VAR had before (Dockerfile ENV rules)"),
    )
    bin: tuple[str, ...] = field(
        default=(), metadata=_doc("directories, relative to `path`, put first on PATH (installed programs)")
    )
    setup: str | None = field(
        default=None,
        metadata=_doc("shell command run as root at build time, after the tools are installed, if the "
                      "language needs one to accept installs outside its own directories"),
    )

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"packages path must be absolute, without '..', got {self.path!r}")
        for rel in self.bin:
            if rel.startswith("/") or ".." in rel.split("/"):
                raise ValueError(f"packages bin {rel!r} must be relative to path, without '..'")

    def environment(self) -> dict[str, str]:
        """`env` with {path} filled in, then PATH with `bin` first (as the image's ENV sets it)."""
        out = {key: value.replace("{path}", self.path) for key, value in self.env.items()}
        if self.bin:
            dirs = ":".join(f"{self.path}/{rel}".rstrip("/") for rel in self.bin)
            out["PATH"] = f"{dirs}:{out.get('PATH', '${PATH}')}"
        return out


@dataclass(frozen=True)
class Resources:
    """Per-container limits; unset values fall back to the registry defaults."""

    memory: str | None = field(default=None, metadata=_doc("e.g. 512m or 2g; swap is set equal"))
    cpus: float | None = None
    pids: int | None = None
    tmp_size: str | None = field(default=None, metadata=_doc("tmpfs size for /tmp"))
    home_size: str | None = field(default=None, metadata=_doc("tmpfs size for the sandbox HOME"))

    def __post_init__(self) -> None:
        for name in ("memory", "tmp_size", "home_size"):
            value = getattr(self, name)
            if value is not None and not _SIZE.match(value):
                raise ValueError(f"{name} must look like 512m or 2g, got {value!r}")
        if self.cpus is not None and not 0 < self.cpus <= 64:
            raise ValueError("cpus must be in (0, 64]")
        if self.pids is not None and self.pids < 16:
            raise ValueError("pids must be at least 16")

    def over(self, defaults: Resources) -> Resources:
        """These values, with unset ones taken from `defaults`."""
        return Resources(
            **{f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(defaults, f.name)
               for f in dataclasses.fields(self)}
        )


@dataclass(frozen=True)
class Pattern:
    """A dangerous-code pattern the validator warns about."""

    id: str
    regex: str
    message: str
    severity: Literal["info", "warning", "error"] = "warning"

    def __post_init__(self) -> None:
        try:
            re.compile(self.regex)
        except re.error as err:
            raise ValueError(f"pattern {self.id}: bad regex: {err}") from err


# Comment and string forms many languages share; runtime/validation/lexical.py holds their regexes.
LexerPreset = Literal[
    "c-line-comment",  # // to the end of the line
    "c-block-comment",  # /* ... */
    "hash-comment",  # # to the end of the line
    "double-quoted",  # "..." on one line, backslash escapes
    "single-quoted",  # '...' on one line, backslash escapes
    "double-quoted-multiline",  # "..." that may span lines
    "single-quoted-multiline",
    "triple-double-quoted",  # """...""" (Python, Java text blocks)
    "triple-single-quoted",
]


def _lexer_regex(regex: str, what: str) -> None:
    # Checked as the lexer uses it: one alternative of a combined multi-line regex, where
    # global flags or named groups of its own would not compile.
    compiled = _regex(f"(?:{regex})", what)
    if compiled.groupindex:
        raise ValueError(f"{what}: named groups are not allowed (the lexer names its own)")


@dataclass(frozen=True)
class LexerToken:
    """A comment or string form of the language's own, for the pattern scanner (a dangerous call inside
    a comment or string body is not reported). Exactly one of `comment` or `string`."""

    comment: str | None = field(default=None, metadata=_doc("regex of a whole comment"))
    string: str | None = field(
        default=None,
        metadata=_doc("regex of a string's opening delimiter: a pattern match that starts at it still counts "
                      "(a backtick command), one inside the body does not"),
    )
    body: str | None = field(
        default=None,
        metadata=_doc("for `string`: regex of the rest of the literal, closing delimiter included; let an "
                      "unterminated literal run to the end of the line (or text) so it masks what follows"),
    )
    start_chars: str | None = field(
        default=None,
        metadata=_doc("every character a match can begin with: the scanner hops between them instead of trying "
                      "each offset; required unless `slow_if`"),
    )
    slow_if: str | None = field(
        default=None,
        metadata=_doc("instead of `start_chars`, for a token whose first character is too common to hop to "
                      "(Ruby's `=begin`): text every match contains; a text with it is lexed at every offset, "
                      "slowly; one without it never holds the token"),
    )

    def __post_init__(self) -> None:
        if (self.comment is None) == (self.string is None):
            raise ValueError("a lexer token is exactly one of `comment` or `string`")
        if (self.string is None) != (self.body is None):
            raise ValueError("`body` goes with `string` (and only with it)")
        if (self.start_chars is None) == (self.slow_if is None):
            raise ValueError("give `start_chars` (or, if no few characters start every match, `slow_if`)")
        if self.start_chars == "" or self.slow_if == "":
            raise ValueError("start_chars and slow_if must not be empty")
        for name in ("comment", "string", "body"):
            value = getattr(self, name)
            if value is not None:
                _lexer_regex(value, name)


LexerSpec = tuple[LexerPreset | LexerToken, ...]


@dataclass(frozen=True)
class SourceFile:
    """How run_code names the file for code it is given without a name; without this, main<extension>."""

    name_from: tuple[str, ...] = field(
        default=(),
        metadata=_doc("regexes tried in order on the code (multi-line mode); the first that matches names the "
                      "file: its group 1, then `extension` (Java: the public class)"),
    )
    default: str = field(default="main", metadata=_doc("the file's name without extension when none matches"))
    compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(_regex(regex, f"name_from[{i}]") for i, regex in enumerate(self.name_from))
        for i, pattern in enumerate(compiled):
            if pattern.groups < 1:
                raise ValueError(f"name_from[{i}]: the regex must capture the name in group 1")
        if not _STEM.match(self.default):
            raise ValueError(f"default: {self.default!r} must be letters, digits and '_', '.', '+', '-' (not first)")
        object.__setattr__(self, "compiled", compiled)

    def name_for(self, code: str, extension: str) -> str:
        found = next((m for m in (p.search(code) for p in self.compiled) if m is not None), None)
        return f"{found.group(1) if found is not None else self.default}{extension}"


SyntaxCompiler = Literal["python"]  # checkers built into the validator (runtime/validation/syntax.py)


def grammar_spec(grammar: str) -> str:
    """A tree-sitter grammar as `module:function`, the function defaulting to `language`."""
    if not _GRAMMAR.match(grammar):
        raise ValueError(f"grammar {grammar!r}: expected `module` or `module:function`, e.g. tree_sitter_java")
    return grammar if ":" in grammar else f"{grammar}:language"


@dataclass(frozen=True)
class Syntax:
    """How the validator checks this language's syntax: with a checker built into it, or with a tree-sitter
    grammar (installed by the `validate` extra). Exactly one of `compiler` or `grammar`."""

    compiler: SyntaxCompiler | None = field(
        default=None, metadata=_doc("a built-in checker: `python` is CPython's own compile(), which never runs code")
    )
    grammar: str | None = field(
        default=None,
        metadata=_doc("a tree-sitter grammar: its module, or `module:function` when the function returning the "
                      "language is not `language`, e.g. tree_sitter_php:language_php"),
    )
    by_extension: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("file extension -> grammar, for files of another dialect (node's .ts: TypeScript)"),
    )
    by_alias: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("alias -> grammar, when the language is asked for by that alias (node asked for as `ts`)"),
    )

    def __post_init__(self) -> None:
        if (self.compiler is None) == (self.grammar is None):
            raise ValueError("syntax is exactly one of `compiler` or `grammar`")
        for grammar in (self.grammar, *self.by_extension.values(), *self.by_alias.values()):
            if grammar is not None:
                grammar_spec(grammar)
        for extension in self.by_extension:
            if not extension.startswith("."):
                raise ValueError(f"by_extension: {extension!r} must start with a dot")

    def checker_for(self, requested: str, filename: str | None = None) -> str:
        """The checker for one file, as the validator names it on its wire: a built-in checker's name,
        or a grammar as `module:function`. `requested`: the name or alias the language was asked for by."""
        dialect = next((g for ext, g in self.by_extension.items() if filename and filename.endswith(ext)), None)
        dialect = dialect or self.by_alias.get(requested.strip().lower())
        if dialect is not None:
            return grammar_spec(dialect)
        return self.compiler if self.compiler is not None else grammar_spec(self.grammar or "")


FailureOutcome = Literal["oom", "syntax_error", "missing_module", "runtime_error", "exit_nonzero"]


@dataclass(frozen=True)
class FailureRule:
    """One way a language reports a failure on stderr. The monitor tries the running language's rules
    first, then every other language's (a task may run any program), then generic ones (no exit
    code, command not found, a signal, the exit status)."""

    regex: str = field(
        metadata=_doc("searched in the last 8 KiB of stderr, in multi-line mode (^ and $ match at every line); "
                      "the error type is the text of its first group that took part in the match")
    )
    outcome: FailureOutcome
    error_type: str | None = field(
        default=None, metadata=_doc("the error type when no group of `regex` took part in the match")
    )
    requires: str | None = field(
        default=None, metadata=_doc("a regex that must also occur in the tail for this rule to apply")
    )
    last_match: bool = field(
        default=False,
        metadata=_doc("the last match decides instead of the first: for a language that prints the exception "
                      "after its stack, as Python's traceback does"),
    )
    strip_prefix: str | None = field(
        default=None, metadata=_doc("removed from the start of the error type, e.g. Python's `__main__.`")
    )
    outcome_by_type: dict[str, FailureOutcome] = field(
        default_factory=dict,
        metadata=_doc("error types reported with another outcome: a regex the whole type must match -> outcome, "
                      "first match wins (e.g. Python's `MemoryError: oom`)"),
    )
    only_own: bool = field(
        default=False,
        metadata=_doc("only for this language's own executions, and tried last: after the generic checks for no "
                      "exit code, command not found and signals, just before the plain exit status (go run's "
                      "`exit status 3`, the program's own status)"),
    )
    # Compiled once, when the registry loads (which is also where a bad regex must fail).
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)
    compiled_requires: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    compiled_outcomes: tuple[tuple[re.Pattern[str], FailureOutcome], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the compiled forms are set once, here
        set_(self, "compiled", _regex(self.regex, "regex"))
        set_(self, "compiled_requires", None if self.requires is None else _regex(self.requires, "requires"))
        set_(self, "compiled_outcomes", tuple(
            (_regex(type_regex, f"outcome_by_type {type_regex!r}", 0), outcome)
            for type_regex, outcome in self.outcome_by_type.items()
        ))
        if self.compiled.groups == 0 and self.error_type is None:
            raise ValueError("regex: capture the error type in a group, or give a literal `error_type`")


@dataclass(frozen=True)
class Language:
    """One language runtime: its image, toolchain, tools, and how to run a file."""

    display_name: str
    version: str
    suite: str = field(metadata=_doc("Debian suite of the base image"))
    extension: str = field(metadata=_doc("source file extension, with the dot"))
    run: str = field(
        metadata=_doc("shell command that runs {file} (relative to the workdir); {stem} is its name without "
                      "directory or extension, {base} its path without extension")
    )
    toolchain: tuple[Component, ...]
    hello: Snippet
    compile: str | None = field(default=None, metadata=_doc("shell command run before `run`, if any"))
    aliases: tuple[str, ...] = ()
    tools: tuple[Component, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    dangerous_patterns: tuple[Pattern, ...] = ()
    cache: Cache | None = field(
        default=None,
        metadata=_doc("a per-project cache directory (e.g. Go's build cache), kept across the project's tasks"),
    )
    packages: Packages | None = field(
        default=None,
        metadata=_doc("where `pip install`, `npm install -g` and the like put packages: per project, in its volume"),
    )
    run_by_extension: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("other source extensions the image runs, each with its whole command (compile included), "
                      "e.g. node's .ts; placeholders as in `run`"),
    )
    lexer: LexerSpec = field(
        default=(),
        metadata=_doc("the language's comment and string forms, tried in this order at each offset, so that "
                      "dangerous patterns are not reported inside them: preset names (c-line-comment, "
                      "c-block-comment, hash-comment, double-quoted, single-quoted, double-quoted-multiline, "
                      "single-quoted-multiline, triple-double-quoted, triple-single-quoted) or tokens of its own; "
                      "none: patterns are matched everywhere"),
    )
    source_file: SourceFile | None = field(
        default=None, metadata=_doc("how run_code names a snippet's file; none: main<extension>")
    )
    syntax: Syntax | None = field(
        default=None, metadata=_doc("how the validator checks syntax; none: an info finding says it was not checked")
    )
    failures: tuple[FailureRule, ...] = field(
        default=(),
        metadata=_doc("how this language reports failures on stderr, in the order they are tried; the monitor "
                      "classifies each execution's outcome and error type with them"),
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

    base_image: str = field(metadata=_doc("image the base builds FROM, e.g. debian:bookworm-slim"))
    extra_suites: tuple[str, ...] = field(
        default=(), metadata=_doc("further apt suites language images may take packages from")
    )


@dataclass(frozen=True)
class Base:
    """What every sandbox image holds."""

    packages: tuple[str, ...]
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
            workspace = self.base.workspace.rstrip("/")
            if lang.packages is not None and not lang.packages.path.startswith(f"{workspace}/"):
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
