"""The comment and string forms of languages.yaml (`lexer:`): presets exist for every name the
schema allows, declared start characters are honest, and malformed tokens fail at load."""

from __future__ import annotations

import copy
from typing import Any, get_args

import pytest
import yaml

from runtime.errors import RegistryError
from runtime.registry import DEFAULT_REGISTRY_PATH, LexerPreset, get_registry, parse_registry
from runtime.validation import lexical

RAW: dict[str, Any] = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())

# Every delimiter any language uses, in odd company: a token that starts at a character its
# `start_chars` omit would be found by the plain scan and missed by the hopping one.
MIXED = (
    'a = "x \\" y" # c\nb = \'it\\\'s\' /* x * y */ // z\n@"ver ""q"" " $"i{1}" $@"v" """raw""" \'\'\'r\'\'\'\n'
    "<# bl #> @\"\nhere\n\"@\n@'\nlit\n'@\n`tick ${x}` #[attr] `cmd`\n'unterminated\n\"open\n/* open\n"
)


def texts() -> list[str]:
    hellos = [lang.hello.code for lang in get_registry().languages.values()]
    return [MIXED, *hellos, "\n".join(hellos) + MIXED]


def test_every_preset_name_the_schema_allows_has_a_token() -> None:
    assert set(lexical.PRESETS) == set(get_args(LexerPreset))


@pytest.mark.parametrize("language", sorted(get_registry().languages))
def test_hopping_between_declared_start_characters_finds_what_a_plain_scan_finds(language: str) -> None:
    compiled = lexical._compiled(get_registry().languages[language].lexer)
    assert compiled is not None, f"{language} declares no lexer"
    lexer, first, slow_if = compiled
    for text in texts():
        plain = [m.span() for m in lexer.finditer(text)]
        if slow_if and slow_if in text:
            continue  # such texts take the plain scan anyway
        assert [m.span() for m in lexical._jump(text, lexer, first)] == plain


def test_a_language_without_a_lexer_masks_nothing() -> None:
    mask = lexical.CodeMask('x = "eval(y)"  # eval(z)\n', ())
    assert not mask.hidden(6) and not mask.hidden(17)


def load_with_token(token: Any, language: str = "go") -> None:
    data = copy.deepcopy(RAW)
    data["languages"][language]["lexer"].append(token)
    parse_registry(data)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ({"comment": "--[^\n]*", "string": "'", "body": "x"}, "exactly one of `comment` or `string`"),
        ({"string": "'", "start_chars": "'"}, "`body` goes with `string`"),
        ({"comment": "--[^\n]*"}, "give `start_chars`"),
        ({"comment": "--[^\n]*", "start_chars": "-", "slow_if": "--"}, "give `start_chars`"),
        ({"comment": "--(", "start_chars": "-"}, "comment: bad regex"),
        ({"comment": "(?i)--", "start_chars": "-"}, "comment: bad regex"),  # flags would apply to every token
        ({"comment": "(?P<c0>--)", "start_chars": "-"}, "comment: named groups are not allowed"),
        ("c-line-coment", r"languages\.go\.lexer\[5\]: expected one of 'c-line-comment'"),
    ],
)
def test_malformed_lexer_token_fails_at_load_with_its_path(token: Any, message: str) -> None:
    with pytest.raises(RegistryError, match=message) as caught:
        load_with_token(token)
    assert "languages.go.lexer[5]" in str(caught.value)


def test_only_one_token_of_a_language_may_rely_on_slow_if() -> None:
    with pytest.raises(RegistryError, match=r"languages\.ruby\.lexer: at most one token may use slow_if"):
        load_with_token({"comment": "^=doc[\\s\\S]*?^=cut", "slow_if": "=doc"}, "ruby")


def test_a_lexer_of_only_a_slow_if_token_masks_where_its_text_occurs() -> None:
    data = copy.deepcopy(RAW)
    data["languages"]["ruby"]["lexer"] = [data["languages"]["ruby"]["lexer"][0]]  # =begin ... =end alone
    ruby = parse_registry(data).languages["ruby"]
    code = "x = 1\n=begin\nsystem('ls')\n=end\n"
    assert lexical.CodeMask(code, ruby.lexer).hidden(code.index("system"))
    assert not lexical.CodeMask("system('ls') # no block comment\n", ruby.lexer).hidden(0)
