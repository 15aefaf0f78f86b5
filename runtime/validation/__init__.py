"""Code validation before execution: dangerous patterns, syntax, size, hardcoded secrets."""

from runtime.validation.findings import Finding, Severity
from runtime.validation.secrets import SECRET_RULES
from runtime.validation.validator import MAX_CODE_BYTES, CodeValidator, blocking

__all__ = ["MAX_CODE_BYTES", "SECRET_RULES", "CodeValidator", "Finding", "Severity", "blocking"]
