"""Where comments and string literals are, so code patterns do not fire inside them.

A light, regex-based lexer per language: good enough to skip `# eval(x)` or
`"os.system"`, not a parser. A match that starts inside a comment, or inside a
string after its opening delimiter, is ignored; a match that starts at the
delimiter itself (a Ruby or PHP backtick command) still counts.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

# Building blocks, written as "unrolled loops" (a run of ordinary characters, then one
# special one) so the regex engine spends its time in fast character-class runs. Strings
# without a closing delimiter run to the end of the line (or the file, for multi-line forms),
# so an unterminated literal masks what follows.
_LINE = r"//[^\n]*"
_BLOCK = r"/\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+/|\Z)"
_HASH = r"#[^\n]*"
_DQ_LINE = r'[^"\\\n]*(?:\\.[^"\\\n]*)*"?'  # one line, backslash escapes
_SQ_LINE = r"[^'\\\n]*(?:\\.[^'\\\n]*)*'?"
_DQ_MULTI = r'[^"\\]*(?:\\[\s\S][^"\\]*)*"?'  # may span lines (Ruby, PHP)
_SQ_MULTI = r"[^'\\]*(?:\\[\s\S][^'\\]*)*'?"
_TRIPLE_DQ = r'[^"\\]*(?:(?:\\[\s\S]|"(?!""))[^"\\]*)*(?:"""|\Z)'
_TRIPLE_SQ = r"[^'\\]*(?:(?:\\[\s\S]|'(?!''))[^'\\]*)*(?:'''|\Z)"


@dataclass(frozen=True)
class _Token:
    kind: str  # "comment" or "string"
    opener: str  # regex of the opening delimiter (strings only)
    body: str  # regex of the rest


def _c(regex: str) -> _Token:
    return _Token("comment", "", regex)


def _s(opener: str, body: str) -> _Token:
    return _Token("string", opener, body)


@dataclass(frozen=True)
class _Lexer:
    tokens: tuple[_Token, ...]
    first: str  # every token starts with one of these characters
    slow_if: str = ""  # a token that does not (Ruby's =begin): if present, try every offset


_LEXERS: dict[str, _Lexer] = {
    "python": _Lexer(
        (_c(_HASH), _s('"""', _TRIPLE_DQ), _s("'''", _TRIPLE_SQ), _s('"', _DQ_LINE), _s("'", _SQ_LINE)),
        "#\"'",
    ),
    "node": _Lexer(
        (_c(_LINE), _c(_BLOCK), _s('"', _DQ_LINE), _s("'", _SQ_LINE), _s("`", r"[^`\\]*(?:\\[\s\S][^`\\]*)*`?")),
        "/\"'`",
    ),
    "java": _Lexer(
        (_c(_LINE), _c(_BLOCK), _s('"""', _TRIPLE_DQ), _s('"', _DQ_LINE), _s("'", _SQ_LINE)),
        "/\"'",
    ),
    "go": _Lexer(
        (_c(_LINE), _c(_BLOCK), _s('"', _DQ_LINE), _s("'", _SQ_LINE), _s("`", r"[^`]*`?")),
        "/\"'`",
    ),
    "ruby": _Lexer(
        (
            _c(r"^=begin\b[\s\S]*?(?:^=end\b|\Z)"),
            _c(_HASH),
            _s('"', _DQ_MULTI),
            _s("'", _SQ_MULTI),
            _s("`", r"[^`\\\n]*(?:\\.[^`\\\n]*)*`?"),
        ),
        "#\"'`",
        slow_if="=begin",
    ),
    "php": _Lexer(
        (
            _c(_LINE),
            _c(r"#(?!\[)[^\n]*"),
            _c(_BLOCK),
            _s('"', _DQ_MULTI),
            _s("'", _SQ_MULTI),
            _s("`", r"[^`\\]*(?:\\.[^`\\]*)*`?"),
        ),
        "/#\"'`",
    ),
    "csharp": _Lexer(
        (
            _c(_LINE),
            _c(_BLOCK),
            _s(r'\$*"""', _TRIPLE_DQ),
            _s(r'(?:\$@|@\$|@)"', r'[^"]*(?:""[^"]*)*"?'),
            _s(r'\$?"', _DQ_LINE),
            _s("'", _SQ_LINE),
        ),
        "/\"'@$",
    ),
    "powershell": _Lexer(
        (
            _c(r"<#[\s\S]*?(?:#>|\Z)"),
            _c(_HASH),
            _s('@"', r'[\s\S]*?(?:^"@|\Z)'),
            _s("@'", r"[\s\S]*?(?:^'@|\Z)"),
            _s('"', r'[^"`]*(?:(?:`[\s\S]|"")[^"`]*)*"?'),
            _s("'", r"[^']*(?:''[^']*)*'?"),
        ),
        "<#@\"'",
    ),
}


@cache
def _compiled(language: str) -> tuple[re.Pattern[str], re.Pattern[str], str] | None:
    lexer = _LEXERS.get(language)
    if lexer is None:
        return None
    parts = []
    for i, tok in enumerate(lexer.tokens):
        if tok.kind == "comment":
            parts.append(f"(?P<c{i}>{tok.body})")
        else:
            parts.append(f"(?P<s{i}>(?P<o{i}>{tok.opener}){tok.body})")
    first = re.compile("[" + re.escape(lexer.first) + "]")
    return re.compile("|".join(parts), re.MULTILINE), first, lexer.slow_if


def has_lexer(language: str) -> bool:
    return language in _LEXERS


def _jump(text: str, lexer: re.Pattern[str], first: re.Pattern[str]) -> Iterator[re.Match[str]]:
    """`lexer.finditer(text)`, hopping between the characters a token can start with: the
    combined regex alone is tried at every offset, several times slower."""
    pos, search, match = 0, first.search, lexer.match
    while True:
        candidate = search(text, pos)
        if candidate is None:
            return
        m = match(text, candidate.start())
        if m is None or m.end() == m.start():
            pos = candidate.start() + 1
            continue
        yield m
        pos = m.end()


class CodeMask:
    """Answers "is this offset inside a comment or a string body?" for one text."""

    def __init__(self, text: str, language: str) -> None:
        self._text = text
        self._language = language
        self._spans: tuple[list[int], list[int]] | None = None  # lexed on first question

    def _lex(self) -> tuple[list[int], list[int]]:
        starts: list[int] = []
        ends: list[int] = []
        compiled = _compiled(self._language)
        if compiled is None:
            return starts, ends
        lexer, first, slow_if = compiled
        text = self._text
        tokens = lexer.finditer(text) if slow_if and slow_if in text else _jump(text, lexer, first)
        for m in tokens:
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
