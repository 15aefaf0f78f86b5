"""Hardcoded credentials. Messages name the kind and where, never the secret itself.

Each rule has cheap "hints" (substrings one of which must occur) so a 1 MB file
without, say, `AKIA` in it costs one substring search for that rule, not a regex pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.validation.findings import Finding, LineIndex, Severity

_ADVICE = "read it from the environment or a secret store instead"
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?[\w.]+\}?|\{\{?\s*[\w.]+\s*\}?\}|<[^>]*>|%\(?\w*\)?s?|\*+|x+|X+|\.\.\.|_+"
    r"|(?i:password|passwd|secret|token|none|null|nil|undefined|example|placeholder|redacted|your[\w-]*))$"
)


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value))


def _prefix(keep: int) -> Callable[[re.Match[str]], str]:
    def render(m: re.Match[str]) -> str:
        secret = m.group("secret")
        return f"{secret[:keep]}**** ({len(secret)} characters)"

    return render


def _url(m: re.Match[str]) -> str:
    return f"{m.group('scheme')}://{m.group('user')}:****@{m.group('host')}"


def _private_key(m: re.Match[str]) -> str:
    return "a PEM private key block"


@dataclass(frozen=True)
class SecretRule:
    id: str
    what: str
    regex: re.Pattern[str]
    hints: tuple[str, ...]
    render: Callable[[re.Match[str]], str]
    severity: Severity = "error"
    hints_any_case: bool = False
    generic: bool = False  # reported only where no specific rule already found the secret
    accept: Callable[[re.Match[str]], bool] = field(default=lambda m: True)

    @property
    def rule_id(self) -> str:
        return f"secret.{self.id}"


def _not_placeholder(m: re.Match[str]) -> bool:
    return not is_placeholder(m.group("secret"))


SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule(
        "aws-access-key", "AWS access key id",
        re.compile(r"(?<![A-Z0-9])(?P<secret>(?:AKIA|ASIA)[0-9A-Z]{16})(?![A-Z0-9])"),
        ("AKIA", "ASIA"), _prefix(4),
    ),
    SecretRule(
        "aws-secret-key", "AWS secret access key",
        re.compile(
            r"(?i:aws)[\w.\-]{0,20}?(?i:secret|private)[\w.\-]{0,20}['\"]?\s*(?:=>|:=|=|:)\s*['\"]?"
            r"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        ("aws",), _prefix(0), hints_any_case=True,
    ),
    SecretRule(
        "github-token", "GitHub token",
        re.compile(r"(?<![\w-])(?P<secret>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![\w-])"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), _prefix(4),
    ),
    SecretRule(
        "gitlab-token", "GitLab token",
        re.compile(r"(?<![\w-])(?P<secret>gl(?:pat|dt|ptt|rt|cbt|oas|ft|imt|soat)-[A-Za-z0-9_\-]{20,})"),
        ("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "gloas-", "glft-", "glimt-", "glsoat-"), _prefix(6),
    ),
    SecretRule(
        "anthropic-key", "Anthropic API key",
        re.compile(r"(?<![\w-])(?P<secret>sk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_\-]{32,})"),
        ("sk-ant-",), _prefix(7),
    ),
    SecretRule(
        "openai-key", "OpenAI API key",
        re.compile(r"(?<![\w-])(?P<secret>sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9][A-Za-z0-9_\-]{31,})"),
        ("sk-",), _prefix(3),
    ),
    SecretRule(
        "slack-token", "Slack token or webhook",
        re.compile(
            r"(?<![\w-])(?P<secret>xox[abposre]-(?:\d+-)+[0-9A-Za-z\-]{8,}|xox[abposre]-[0-9A-Za-z]{20,}"
            r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_\-]+/[A-Za-z0-9/_\-]{16,})"
        ),
        ("xox", "hooks.slack.com"), _prefix(5),
    ),
    SecretRule(
        "private-key", "private key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        ("PRIVATE KEY",), _private_key,
    ),
    SecretRule(
        "jwt", "JSON Web Token",
        re.compile(r"(?<![\w-])(?P<secret>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"),
        ("eyJ",), _prefix(3), severity="warning",
    ),
    SecretRule(
        "url-password", "password in a URL",
        re.compile(
            r"(?<![\w+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{1,20})://(?P<user>[^\s:/?#@'\"`]*)"
            r":(?P<secret>[^\s/?#@'\"`]+)@(?P<host>[^\s/?#'\"`:]+)"
        ),
        ("://",), _url, severity="warning", accept=_not_placeholder,
    ),
    SecretRule(
        "password-assignment", "password or secret",
        re.compile(
            r"(?P<name>(?i:password|passwd|passwort|pwd|secret|api[_-]?key|access[_-]?key|auth[_-]?token"
            r"|access[_-]?token|private[_-]?key)[\w-]*)['\"]?\s*(?:=>|:=|=|:)\s*(?P<q>['\"])(?P<secret>[^'\"\s]{6,})(?P=q)"
        ),
        ("pass", "pwd", "secret", "key", "token"), _prefix(0), severity="warning",
        hints_any_case=True, generic=True, accept=_not_placeholder,
    ),
)

_NAME_CHARS = re.compile(r"[\w.$\-]*\Z")


def _assignment_message(text: str, m: re.Match[str]) -> str:
    # The regex starts at the keyword; show the whole name (e.g. `db_password`), not the value.
    head = _NAME_CHARS.search(text, max(0, m.start() - 64), m.start())
    start = head.start() if head else m.start()
    return f"hardcoded password or secret in `{text[start:m.end('name')]}`; {_ADVICE}"


def scan_secrets(text: str, lines: LineIndex, per_rule_limit: int) -> list[Finding]:
    findings: list[Finding] = []
    lowered: str | None = None
    claimed: list[tuple[int, int]] = []
    for rule in SECRET_RULES:
        if rule.hints_any_case:
            if lowered is None:
                lowered = text.lower()
            haystack = lowered
        else:
            haystack = text
        if not any(h in haystack for h in rule.hints):
            continue
        count = 0
        for m in rule.regex.finditer(text):
            if not rule.accept(m):
                continue
            span = m.span("secret") if "secret" in rule.regex.groupindex else m.span()
            if rule.generic and any(s < span[1] and span[0] < e for s, e in claimed):
                continue
            claimed.append(span)
            line, column = lines.position(m.start())
            if rule.id == "password-assignment":
                message = _assignment_message(text, m)
            else:
                message = f"hardcoded {rule.what}: {rule.render(m)}; {_ADVICE}"
            findings.append(Finding(rule.rule_id, rule.severity, line, column, message))
            count += 1
            if count >= per_rule_limit:
                break
    return findings
