"""Where comments and string literals are, so code patterns do not fire inside them.

A light, regex-based lexer per language, made of the comment and string forms its
languages.yaml entry lists (`lexer:`): good enough to skip `# eval(x)` or
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

from runtime.registry import LexerPreset, LexerSpec, LexerToken, get_registry

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
    first: str = ""  # every character a match starts with ("": see slow_if)
    slow_if: str = ""  # text every match contains, for a token without `first` (Ruby's =begin)


def _c(regex: str, first: str) -> _Token:
    return _Token("comment", "", regex, first)


def _s(opener: str, body: str) -> _Token:
    return _Token("string", re.escape(opener), body, opener[0])


# The forms many languages share, named in languages.yaml (`lexer:`); see registry.LexerPreset.
PRESETS: dict[str, _Token] = {
    "c-line-comment": _c(_LINE, "/"),
    "c-block-comment": _c(_BLOCK, "/"),
    "hash-comment": _c(_HASH, "#"),
    "double-quoted": _s('"', _DQ_LINE),
    "single-quoted": _s("'", _SQ_LINE),
    "double-quoted-multiline": _s('"', _DQ_MULTI),
    "single-quoted-multiline": _s("'", _SQ_MULTI),
    "triple-double-quoted": _s('"""', _TRIPLE_DQ),
    "triple-single-quoted": _s("'''", _TRIPLE_SQ),
}


def _token(spec: LexerPreset | LexerToken) -> _Token:
    if isinstance(spec, str):
        return PRESETS[spec]
    first, slow_if = spec.start_chars or "", spec.slow_if or ""
    if spec.comment is not None:
        return _Token("comment", "", spec.comment, first, slow_if)
    return _Token("string", spec.string or "", spec.body or "", first, slow_if)


Compiled = tuple[re.Pattern[str], re.Pattern[str], str]  # the lexer, its start characters, its slow_if


@cache
def _compile(spec: LexerSpec) -> Compiled | None:
    """One regex for all the tokens (each a named group), and a class of the characters they start with."""
    tokens = [_token(t) for t in spec]
    if not tokens:
        return None
    parts = []
    for i, tok in enumerate(tokens):
        if tok.kind == "comment":
            parts.append(f"(?P<c{i}>{tok.body})")
        else:
            parts.append(f"(?P<s{i}>(?P<o{i}>{tok.opener}){tok.body})")
    first = "".join(dict.fromkeys("".join(t.first for t in tokens)))
    slow_if = next((t.slow_if for t in tokens if t.slow_if), "")  # the registry allows one per language
    hops = re.compile(f"[{re.escape(first)}]" if first else "(?!)")  # (?!): only a slow_if token, no hops
    return re.compile("|".join(parts), re.MULTILINE), hops, slow_if


def _spec(language: str | LexerSpec) -> LexerSpec:
    if not isinstance(language, str):
        return language
    found = get_registry().languages.get(language)
    return found.lexer if found is not None else ()


def _compiled(language: str | LexerSpec) -> Compiled | None:
    """The compiled lexer for a language's `lexer` (or a registry language's name); None: no lexer."""
    return _compile(_spec(language))


def has_lexer(language: str | LexerSpec) -> bool:
    return bool(_spec(language))


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

    def __init__(self, text: str, language: str | LexerSpec) -> None:
        """`language`: a registry language's `lexer`, or its name (looked up in `get_registry()`)."""
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
