"""Where comments and string literals are, so code patterns do not fire inside them.

A light, regex-based lexer per language: good enough to skip `# eval(x)` or
`"os.system"`, not a parser. A match that starts inside a comment, or inside a
string after its opening delimiter, is ignored; a match that starts at the
delimiter itself (a Ruby or PHP backtick command) still counts.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cache

# Building blocks. Strings without a closing delimiter run to the end of the line
# (or the file, for multi-line forms), so an unterminated literal masks what follows.
_LINE = r"//[^\n]*"
_BLOCK = r"/\*[\s\S]*?(?:\*/|\Z)"
_HASH = r"#[^\n]*"
_DQ = r'"(?:\\.|[^"\\\n])*"?'
_SQ = r"'(?:\\.|[^'\\\n])*'?"


@dataclass(frozen=True)
class _Token:
    kind: str  # "comment" or "string"
    opener: str  # regex of the opening delimiter (strings only)
    body: str  # regex of the rest


def _c(regex: str) -> _Token:
    return _Token("comment", "", regex)


def _s(opener: str, body: str) -> _Token:
    return _Token("string", opener, body)


_LEXERS: dict[str, tuple[_Token, ...]] = {
    "python": (
        _c(_HASH),
        _s('"""', r'[\s\S]*?(?:"""|\Z)'),
        _s("'''", r"[\s\S]*?(?:'''|\Z)"),
        _s('"', _DQ[1:]),
        _s("'", _SQ[1:]),
    ),
    "node": (
        _c(_LINE),
        _c(_BLOCK),
        _s('"', _DQ[1:]),
        _s("'", _SQ[1:]),
        _s("`", r"(?:\\[\s\S]|[^`\\])*`?"),
    ),
    "java": (_c(_LINE), _c(_BLOCK), _s('"""', r'[\s\S]*?(?:"""|\Z)'), _s('"', _DQ[1:]), _s("'", _SQ[1:])),
    "go": (_c(_LINE), _c(_BLOCK), _s('"', _DQ[1:]), _s("'", _SQ[1:]), _s("`", r"[^`]*`?")),
    "ruby": (
        _c(r"(?m:^=begin\b[\s\S]*?(?:^=end\b|\Z))"),
        _c(_HASH),
        _s('"', r'(?:\\[\s\S]|[^"\\])*"?'),
        _s("'", r"(?:\\[\s\S]|[^'\\])*'?"),
        _s("`", r"(?:\\.|[^`\\\n])*`?"),
    ),
    "php": (
        _c(_LINE),
        _c(r"#(?!\[)[^\n]*"),
        _c(_BLOCK),
        _s('"', r'(?:\\[\s\S]|[^"\\])*"?'),
        _s("'", r"(?:\\[\s\S]|[^'\\])*'?"),
        _s("`", r"(?:\\.|[^`\\])*`?"),
    ),
    "csharp": (
        _c(_LINE),
        _c(_BLOCK),
        _s(r'\$*"""', r'[\s\S]*?(?:"""|\Z)'),
        _s(r'(?:\$@|@\$|@)"', r'(?:""|[^"])*"?'),
        _s(r'\$?"', _DQ[1:]),
        _s("'", _SQ[1:]),
    ),
    "powershell": (
        _c(r"<#[\s\S]*?(?:#>|\Z)"),
        _c(_HASH),
        _s(r'@"', r'[\s\S]*?(?:^"@|\Z)'),
        _s(r"@'", r"[\s\S]*?(?:^'@|\Z)"),
        _s('"', r'(?:`[\s\S]|""|[^"`])*"?'),
        _s("'", r"(?:''|[^'])*'?"),
    ),
}


@cache
def _lexer(language: str) -> re.Pattern[str] | None:
    tokens = _LEXERS.get(language)
    if tokens is None:
        return None
    parts = []
    for i, tok in enumerate(tokens):
        if tok.kind == "comment":
            parts.append(f"(?P<c{i}>{tok.body})")
        else:
            parts.append(f"(?P<s{i}>(?P<o{i}>{tok.opener}){tok.body})")
    return re.compile("|".join(parts), re.MULTILINE)


def has_lexer(language: str) -> bool:
    return language in _LEXERS


class CodeMask:
    """Answers "is this offset inside a comment or a string body?" for one text."""

    def __init__(self, text: str, language: str) -> None:
        self._text = text
        self._language = language
        self._spans: tuple[list[int], list[int]] | None = None  # lexed on first question

    def _lex(self) -> tuple[list[int], list[int]]:
        starts: list[int] = []
        ends: list[int] = []
        lexer = _lexer(self._language)
        if lexer is not None:
            for m in lexer.finditer(self._text):
                group = m.lastgroup or ""
                begin = m.end("o" + group[1:]) if group.startswith("s") else m.start()
                if begin < m.end():
                    starts.append(begin)
                    ends.append(m.end())
        return starts, ends

    def hidden(self, offset: int) -> bool:
        if self._spans is None:
            self._spans = self._lex()
        starts, ends = self._spans
        i = bisect.bisect_right(starts, offset) - 1
        return i >= 0 and offset < ends[i]
