"""Hardcoded credentials. Messages name the kind and where, never the secret itself.

Every rule is searched through a "scout" (a literal-led regex, see patterns.py), so a
1 MB file without, say, `AKIA` in it costs one fast scan for that rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.validation.findings import Finding, LineIndex, Severity
from runtime.validation.patterns import iter_matches, scout_for

_ADVICE = "read it from the environment or a secret store instead"
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?[\w.]+\}?|\{\{?\s*[\w.]+\s*\}?\}|<[^>]*>|%\(?\w*\)?s?|\*+|x+|X+|\.\.\.|_+"
    r"|(?i:password|passwd|secret|token|none|null|nil|undefined|example|placeholder|redacted|your[\w-]*))$"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_NAME_CHARS = re.compile(r"[\w.$\-]*\Z")


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value))


def _not_placeholder(m: re.Match[str]) -> bool:
    return not is_placeholder(m.group("secret"))


def _prefix(keep: int) -> Callable[[re.Match[str]], str]:
    def render(m: re.Match[str]) -> str:
        secret = m.group("secret")
        return f"{secret[:keep]}**** ({len(secret)} characters)"

    return render


def _url(m: re.Match[str]) -> str:
    # The regex starts at "://" (a fast literal search); the scheme is read back from the text.
    scheme = _SCHEME.search(m.string, max(0, m.start() - 20), m.start())
    return f"{scheme.group(0) if scheme else ''}://{m.group('user')}:****@{m.group('host')}"


def _private_key(m: re.Match[str]) -> str:
    return "a PEM private key block"


def _assignment(m: re.Match[str]) -> str:
    # The regex starts at the keyword; show the whole name (e.g. `db_password`), never the value.
    head = _NAME_CHARS.search(m.string, max(0, m.start() - 64), m.start())
    start = head.start() if head else m.start()
    return f"`{m.string[start : m.end('name')]}` (****, {len(m.group('secret'))} characters)"


@dataclass(frozen=True)
class SecretRule:
    id: str
    what: str
    regex: re.Pattern[str]
    render: Callable[[re.Match[str]], str]
    severity: Severity = "error"
    generic: bool = False  # reported only where no specific rule already found the secret
    accept: Callable[[re.Match[str]], bool] = field(default=lambda m: True)
    # Finds candidates faster than `regex`; searched in the case-folded text when `scout_lowered`.
    scout: re.Pattern[str] | None = None
    scout_lowered: bool = False

    def __post_init__(self) -> None:
        if self.scout is None:
            object.__setattr__(self, "scout", scout_for(self.regex.pattern))

    @property
    def rule_id(self) -> str:
        return f"secret.{self.id}"


_ASSIGNED_NAMES = (
    r"password|passwd|passwort|pwd|secret|api[_-]?key|access[_-]?key|auth[_-]?token|access[_-]?token|private[_-]?key"
)

SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule(
        "aws-access-key", "AWS access key id",
        re.compile(r"(?<![A-Z0-9])(?P<secret>(?:AKIA|ASIA)[0-9A-Z]{16})(?![A-Z0-9])"),
        _prefix(4),
    ),
    SecretRule(
        "aws-secret-key", "AWS secret access key",
        re.compile(
            r"(?i:aws)[\w.\-]{0,20}?(?i:secret|private)[\w.\-]{0,20}['\"]?\s*(?:=>|:=|=|:)\s*['\"]?"
            r"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        _prefix(0), scout=re.compile("aws"), scout_lowered=True,
    ),
    SecretRule(
        "github-token", "GitHub token",
        re.compile(r"(?<![\w-])(?P<secret>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![\w-])"),
        _prefix(4),
    ),
    SecretRule(
        "gitlab-token", "GitLab token",
        re.compile(r"(?<![\w-])(?P<secret>gl(?:pat|dt|ptt|rt|cbt|oas|ft|imt|soat)-[A-Za-z0-9_\-]{20,})"),
        _prefix(6),
    ),
    SecretRule(
        "anthropic-key", "Anthropic API key",
        re.compile(r"(?<![\w-])(?P<secret>sk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_\-]{32,})"),
        _prefix(7),
    ),
    SecretRule(
        "openai-key", "OpenAI API key",
        re.compile(r"(?<![\w-])(?P<secret>sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9][A-Za-z0-9_\-]{31,})"),
        _prefix(3),
    ),
    SecretRule(
        "slack-token", "Slack token or webhook",
        re.compile(
            r"(?<![\w-])(?P<secret>xox[abposre]-(?:\d+-)+[0-9A-Za-z\-]{8,}|xox[abposre]-[0-9A-Za-z]{20,}"
            r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_\-]+/[A-Za-z0-9/_\-]{16,})"
        ),
        _prefix(5),
    ),
    SecretRule(
        "private-key", "private key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        _private_key,
    ),
    SecretRule(
        "jwt", "JSON Web Token",
        re.compile(r"(?<![\w-])(?P<secret>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"),
        _prefix(3), severity="warning",
    ),
    SecretRule(
        "url-password", "password in a URL",
        re.compile(r"://(?P<user>[^\s:/?#@'\"`]*):(?P<secret>[^\s/?#@'\"`]+)@(?P<host>[^\s/?#'\"`:]+)"),
        _url, severity="warning", accept=_not_placeholder,
    ),
    SecretRule(
        "password-assignment", "password or secret in",
        re.compile(
            rf"(?P<name>(?i:{_ASSIGNED_NAMES})[\w-]*)['\"]?\s*(?:=>|:=|=|:)\s*(?P<q>['\"])(?P<secret>[^'\"\s]{{6,}})(?P=q)"
        ),
        _assignment, severity="warning", generic=True, accept=_not_placeholder,
        scout=re.compile(_ASSIGNED_NAMES), scout_lowered=True,
    ),
)


def scan_secrets(text: str, lines: LineIndex, per_rule_limit: int) -> list[Finding]:
    findings: list[Finding] = []
    lowered = text.casefold()
    if len(lowered) != len(text):  # a character changed length: offsets would not line up
        lowered = ""
    claimed: list[tuple[int, int]] = []
    for rule in SECRET_RULES:
        scout, scout_text = rule.scout, None
        if rule.scout_lowered:
            scout, scout_text = (scout, lowered) if lowered else (None, None)
        count = 0
        for m in iter_matches(rule.regex, scout, text, scout_text):
            if not rule.accept(m):
                continue
            span = m.span("secret") if "secret" in rule.regex.groupindex else m.span()
            if rule.generic and any(s < span[1] and span[0] < e for s, e in claimed):
                continue
            claimed.append(span)
            line, column = lines.position(m.start())
            message = f"hardcoded {rule.what} {rule.render(m)}; {_ADVICE}"
            findings.append(Finding(rule.rule_id, rule.severity, line, column, message))
            count += 1
            if count >= per_rule_limit:
                break
    return findings
