"""What the runtime knows about a language's code and output: dangerous patterns, the lexer's
comment and string forms, syntax checking, run_code's file naming, failure classification."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from runtime.registry.fields import checked_regex, doc

_STEM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")  # as run_code accepts file names: nothing the shell reads
_GRAMMAR = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?$")  # a dotted module[:function]


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
    compiled = checked_regex(f"(?:{regex})", what)
    if compiled.groupindex:
        raise ValueError(f"{what}: named groups are not allowed (the lexer names its own)")


@dataclass(frozen=True)
class LexerToken:
    """A comment or string form of the language's own, for the pattern scanner (a dangerous call inside
    a comment or string body is not reported). Exactly one of `comment` or `string`."""

    comment: str | None = field(default=None, metadata=doc("regex of a whole comment"))
    string: str | None = field(
        default=None,
        metadata=doc("regex of a string's opening delimiter: a pattern match that starts at it still counts "
                     "(a backtick command), one inside the body does not"),
    )
    body: str | None = field(
        default=None,
        metadata=doc("for `string`: regex of the rest of the literal, closing delimiter included; let an "
                     "unterminated literal run to the end of the line (or text) so it masks what follows"),
    )
    start_chars: str | None = field(
        default=None,
        metadata=doc("every character a match can begin with: the scanner hops between them instead of trying "
                     "each offset; required unless `slow_if`"),
    )
    slow_if: str | None = field(
        default=None,
        metadata=doc("instead of `start_chars`, for a token whose first character is too common to hop to "
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
        metadata=doc("regexes tried in order on the code (multi-line mode); the first that matches names the "
                     "file: its group 1, then `extension` (Java: the public class)"),
    )
    default: str = field(default="main", metadata=doc("the file's name without extension when none matches"))
    compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(checked_regex(regex, f"name_from[{i}]") for i, regex in enumerate(self.name_from))
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
        default=None, metadata=doc("a built-in checker: `python` is CPython's own compile(), which never runs code")
    )
    grammar: str | None = field(
        default=None,
        metadata=doc("a tree-sitter grammar: its module, or `module:function` when the function returning the "
                     "language is not `language`, e.g. tree_sitter_php:language_php"),
    )
    by_extension: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("file extension -> grammar, for files of another dialect (node's .ts: TypeScript)"),
    )
    by_alias: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("alias -> grammar, when the language is asked for by that alias (node asked for as `ts`)"),
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
        metadata=doc("searched in the last 8 KiB of stderr, in multi-line mode (^ and $ match at every line); "
                     "the error type is the text of its first group that took part in the match")
    )
    outcome: FailureOutcome
    error_type: str | None = field(
        default=None, metadata=doc("the error type when no group of `regex` took part in the match")
    )
    requires: str | None = field(
        default=None, metadata=doc("a regex that must also occur in the tail for this rule to apply")
    )
    last_match: bool = field(
        default=False,
        metadata=doc("the last match decides instead of the first: for a language that prints the exception "
                     "after its stack, as Python's traceback does"),
    )
    strip_prefix: str | None = field(
        default=None, metadata=doc("removed from the start of the error type, e.g. Python's `__main__.`")
    )
    outcome_by_type: dict[str, FailureOutcome] = field(
        default_factory=dict,
        metadata=doc("error types reported with another outcome: a regex the whole type must match -> outcome, "
                     "first match wins (e.g. Python's `MemoryError: oom`)"),
    )
    only_own: bool = field(
        default=False,
        metadata=doc("only for this language's own executions, and tried last: after the generic checks for no "
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
        set_(self, "compiled", checked_regex(self.regex, "regex"))
        set_(self, "compiled_requires", None if self.requires is None else checked_regex(self.requires, "requires"))
        set_(self, "compiled_outcomes", tuple(
            (checked_regex(type_regex, f"outcome_by_type {type_regex!r}", 0), outcome)
            for type_regex, outcome in self.outcome_by_type.items()
        ))
        if self.compiled.groups == 0 and self.error_type is None:
            raise ValueError("regex: capture the error type in a group, or give a literal `error_type`")

