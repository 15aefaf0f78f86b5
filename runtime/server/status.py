"""Which error is which HTTP status, both ways: the server answers with it, `runtime.remote` raises from it.

The body of every error answer is `{"error": "<class name>", "detail": "<message>"}`; the class
name is one of `runtime.errors`, so a remote caller gets the same exception the library raises.
Plain module (no FastAPI): the remote client imports it with only httpx2 installed.
"""

from __future__ import annotations

from runtime import errors

# Most specific first: the first class an error is an instance of decides.
STATUS: tuple[tuple[type[errors.SandboxError], int], ...] = (
    (errors.TaskNotFound, 404),
    (errors.FileMissing, 404),
    (errors.TaskExists, 409),
    (errors.AccessDenied, 403),
    (errors.BodyTooLarge, 413),
    (errors.LimitExceeded, 429),
    (errors.CallerError, 422),
    (errors.EngineUnavailable, 503),
    (errors.ImageMissing, 503),
    (errors.SandboxGone, 410),
    (errors.SessionClosed, 409),
    (errors.SandboxError, 500),
)

BY_NAME: dict[str, type[errors.SandboxError]] = {
    name: cls for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, errors.SandboxError)
}

# Statuses the server gives without an error class of its own (authentication, HTTP-level checks).
FALLBACK: dict[int, type[errors.SandboxError]] = {
    401: errors.AccessDenied,
    403: errors.AccessDenied,
    404: errors.TaskNotFound,
    413: errors.BodyTooLarge,
    422: errors.InvalidRequest,
    429: errors.LimitExceeded,
    503: errors.EngineUnavailable,
}


def status_of(err: errors.SandboxError) -> int:
    return next(code for cls, code in STATUS if isinstance(err, cls))


def error_from(status: int, body: object) -> errors.SandboxError:
    """The exception an error answer stands for (by its class name, else by its status)."""
    name = detail = None
    if isinstance(body, dict):
        name, detail = body.get("error"), body.get("detail")
    cls = BY_NAME.get(name) if isinstance(name, str) else None
    cls = cls or FALLBACK.get(status, errors.SandboxError)
    message = str(detail) if detail is not None else f"HTTP {status}"
    if cls is errors.ValidationFailed and isinstance(body, dict):
        from runtime.validation.findings import Finding

        return errors.ValidationFailed(message, tuple(Finding(**f) for f in body.get("findings", ())))
    return cls(message)
