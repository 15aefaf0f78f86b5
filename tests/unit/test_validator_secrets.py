"""Hardcoded secrets are found and masked. Sample tokens are assembled at run time so
this file holds no string that a secret scanner would (rightly) flag."""

from __future__ import annotations

import pytest

from runtime.registry import get_registry
from runtime.validation import SECRET_RULES, CodeValidator

AWS_ID = "AKIA" + "Z7Q2" * 4
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzQ2x8vK3mL"
GITHUB = "gh" + "p_" + "A1b2" * 9
GITLAB = "gl" + "pat-" + "x1Y2z3" * 4
ANTHROPIC = "sk-" + "ant-api03-" + "Ab1_" * 10
OPENAI = "sk-" + "proj-" + "Ab1x" * 10
SLACK = "xo" + "xb-" + "1234567890-1234567890-" + "AbCd" * 6
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA " + "PRIVATE KEY-----"
JWT = "ey" + "JhbGciOiJIUzI1NiJ9" + ".ey" + "JzdWIiOiIxMjM0In0" + ".c2lnbmF0dXJlX2J5dGVz"
URL_PASSWORD = "s3cr3t" + "Pw9"
ASSIGNED = "Tr0ub4" + "dor&3x"

# rule id -> (positive, close negative, the secret text that must never be echoed)
EXAMPLES: dict[str, tuple[str, str, str]] = {
    "aws-access-key": (f'key_id = "{AWS_ID}"\n', f'key_id = "{AWS_ID[:16]}"\n', AWS_ID),
    "aws-secret-key": (
        f'aws_secret_access_key = "{AWS_SECRET}"\n',
        'aws_secret_access_key = os.environ["AWS_SECRET_ACCESS_KEY"]\n',
        AWS_SECRET,
    ),
    "github-token": (f'token = "{GITHUB}"\n', f'token = "{GITHUB[:20]}"\n', GITHUB),
    "gitlab-token": (f'token = "{GITLAB}"\n', 'token = "glpat-short"\n', GITLAB),
    "anthropic-key": (f'key = "{ANTHROPIC}"\n', 'key = "sk-ant-xxxxx"\n', ANTHROPIC),
    "openai-key": (f'key = "{OPENAI}"\n', 'key = "sk-abc123"\nrisk_level = "high"\n', OPENAI),
    "slack-token": (f'token = "{SLACK}"\n', 'token = "xoxb-123"\n', SLACK),
    "private-key": (f'KEY = """{PEM}"""\n', 'KEY = """-----BEGIN PUBLIC KEY-----"""\n', "MIIEowIBAAKCAQEA"),
    "jwt": (f'auth = "{JWT}"\n', f'auth = "{JWT.rsplit(".", 1)[0]}"\n', JWT),
    "url-password": (
        f'DB = "postgres://app:{URL_PASSWORD}@db.internal:5432/app"\n',
        'DB = "postgres://app:${DB_PASSWORD}@db.internal:5432/app"\nU = "https://user@example.org/x"\n',
        URL_PASSWORD,
    ),
    "password-assignment": (
        f'db_password = "{ASSIGNED}"\n',
        'db_password = os.environ["DB_PASSWORD"]\nif password == "xxxxxxxx": pass\n',
        ASSIGNED,
    ),
}


@pytest.fixture(scope="module")
def validator() -> CodeValidator:
    return CodeValidator(get_registry())


def secret_findings(validator: CodeValidator, code: str, language: str = "python") -> dict[str, str]:
    return {f.rule_id: f.message for f in validator.validate(code, language) if f.rule_id.startswith("secret.")}


def test_every_secret_rule_has_examples() -> None:
    assert {r.id for r in SECRET_RULES} == set(EXAMPLES)


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_secret_rule_fires_and_masks(validator: CodeValidator, rule_id: str) -> None:
    positive, _, secret = EXAMPLES[rule_id]
    found = secret_findings(validator, positive)
    assert f"secret.{rule_id}" in found
    assert secret not in found[f"secret.{rule_id}"]
    assert "****" in found[f"secret.{rule_id}"] or rule_id == "private-key"


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_secret_rule_silent_on_close_negative(validator: CodeValidator, rule_id: str) -> None:
    _, negative, _ = EXAMPLES[rule_id]
    assert f"secret.{rule_id}" not in secret_findings(validator, negative)


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_no_message_echoes_any_secret(validator: CodeValidator, rule_id: str) -> None:
    positive, _, secret = EXAMPLES[rule_id]
    for finding in validator.validate(positive, "python"):
        assert secret not in finding.message


def test_secrets_are_found_in_comments_too(validator: CodeValidator) -> None:
    assert "secret.github-token" in secret_findings(validator, f"// old token: {GITHUB}\n", "node")


def test_anthropic_key_is_not_also_reported_as_openai(validator: CodeValidator) -> None:
    found = secret_findings(validator, f'k = "{ANTHROPIC}"\n')
    assert "secret.anthropic-key" in found and "secret.openai-key" not in found


def test_generic_assignment_rule_defers_to_the_specific_one(validator: CodeValidator) -> None:
    found = secret_findings(validator, f'api_key = "{OPENAI}"\n')
    assert set(found) == {"secret.openai-key"}


def test_assignment_message_names_the_variable(validator: CodeValidator) -> None:
    found = secret_findings(validator, f'$dbPassword = "{ASSIGNED}"\n', "powershell")
    assert "$dbPassword" in found["secret.password-assignment"]


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("node", f'const config = {{ password: "{ASSIGNED}" }};\n'),
        ("php", f"<?php $cfg = ['password' => '{ASSIGNED}'];\n"),
        ("go", f'password := "{ASSIGNED}"\n'),
        ("ruby", f'login(password: "{ASSIGNED}")\n'),
    ],
)
def test_assignment_forms_across_languages(validator: CodeValidator, language: str, code: str) -> None:
    assert "secret.password-assignment" in secret_findings(validator, code, language)


def test_secret_severities(validator: CodeValidator) -> None:
    by_rule = {f.rule_id: f.severity for f in validator.validate(f'k = "{AWS_ID}"\nj = "{JWT}"\n', "python")}
    assert by_rule == {"secret.aws-access-key": "error", "secret.jwt": "warning"}
