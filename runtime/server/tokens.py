"""Bearer tokens: stored as SHA-256 hashes in a JSON file, each scoped to project-id patterns and limits.

A token is 32 random bytes (urlsafe base64), so a fast hash is enough: there is nothing to guess
that a slow hash would protect. The plain token is printed once by `token add` and never stored
or logged. `TokenStore.authenticate` compares the presented token's hash with every stored hash
(no early exit), so the time it takes does not say how close a guess was.

The file is re-read when it changes (checked at each call: one stat): tokens added while `serve` runs work
without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.errors import ConfigError

DEFAULT_MAX_BODY = 64 * 1024 * 1024  # as the library's archive limit (limits.max_archive_bytes)


@dataclass(frozen=True)
class Scope:
    """What a caller may do. The local scope (no token) allows every project and has no limits."""

    name: str
    projects: tuple[str, ...] = ("*",)  # fnmatch patterns of project ids
    max_tasks: int | None = None  # live tasks at once
    max_timeout: float | None = None  # seconds, per command
    max_body_bytes: int = DEFAULT_MAX_BODY

    def allows(self, project_id: str) -> bool:
        return any(fnmatch.fnmatchcase(project_id, pattern) for pattern in self.projects)


LOCAL = Scope("local")


@dataclass(frozen=True)
class StoredToken:
    sha256: str
    scope: Scope = field(default_factory=lambda: LOCAL)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The tokens of one file; `authenticate` maps a presented token to its scope (or None)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime) of the file last read
        self._tokens: tuple[StoredToken, ...] = ()
        self._reload()

    def __len__(self) -> int:
        self._reload()
        return len(self._tokens)

    def authenticate(self, presented: str | None) -> Scope | None:
        self._reload()
        digest = token_hash(presented or "")
        found: Scope | None = None
        for stored in self._tokens:  # every entry is compared: no early exit
            if hmac.compare_digest(digest, stored.sha256) and presented:
                found = stored.scope
        return found

    def _reload(self) -> None:
        try:
            st = self.path.stat()
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            seen = None
        with self._lock:
            if seen == self._seen:
                return
            # `add_token` replaces the file (a new inode), so a change is never missed within one mtime tick.
            self._tokens = tuple(read_tokens(self.path)) if seen is not None else ()
            self._seen = seen


def read_tokens(path: Path) -> list[StoredToken]:
    """The stored tokens; `ConfigError` naming the file and the problem when it is malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tokens = []
        for entry in data["tokens"]:
            scope = Scope(
                name=str(entry["name"]),
                projects=tuple(str(p) for p in entry["projects"]),
                max_tasks=None if entry.get("max_tasks") is None else int(entry["max_tasks"]),
                max_timeout=None if entry.get("max_timeout") is None else float(entry["max_timeout"]),
                max_body_bytes=int(entry.get("max_body_bytes", DEFAULT_MAX_BODY)),
            )
            digest = str(entry["sha256"])
            if len(digest) != 64:
                raise ValueError(f"token {scope.name!r}: sha256 must be 64 hex digits")
            tokens.append(StoredToken(digest, scope))
        return tokens
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"token file {path}: {err}") from err


def add_token(path: Path, scope: Scope) -> str:
    """Store a new token's hash with its scope (the file is created 0600); returns the token, once."""
    if scope.max_tasks is not None and scope.max_tasks < 1:
        raise ConfigError("max tasks must be at least 1")
    if scope.max_timeout is not None and scope.max_timeout <= 0:
        raise ConfigError("max timeout must be positive")
    if scope.max_body_bytes < 1:
        raise ConfigError("max body must be at least 1 byte")
    with _locked(path):
        existing, revoked = read_tokens(path), _revoked_names(path)
        if any(t.scope.name == scope.name for t in existing):
            raise ConfigError(f"token file {path} already has a token named {scope.name!r}")
        if scope.name in revoked:
            # The service knows a token's tasks by its name: a new token of that name would own them.
            raise ConfigError(f"token name {scope.name!r} was revoked in {path}; a new token needs a new name")
        token = "tap_" + secrets.token_urlsafe(32)
        _write_tokens(path, [*existing, StoredToken(token_hash(token), scope)], revoked)
    return token


def revoke_token(path: Path, name: str) -> None:
    """Remove the token named `name`, and keep its name from being used again; a running `serve`
    refuses the token from its next call on."""
    with _locked(path):
        existing, revoked = read_tokens(path), _revoked_names(path)
        kept = [t for t in existing if t.scope.name != name]
        if len(kept) == len(existing):
            known = ", ".join(repr(t.scope.name) for t in existing) or "none"
            raise ConfigError(f"token file {path} has no token named {name!r} (it has: {known})")
        _write_tokens(path, kept, [*revoked, name])


def token_names(path: Path) -> set[str]:
    """Every name in the file, revoked ones included: none may be given to a new token."""
    return {t.scope.name for t in read_tokens(path)} | set(_revoked_names(path))


def _revoked_names(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [str(name) for name in data.get("revoked", [])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise ConfigError(f"token file {path}: {err}") from err


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (`token add` and `revoke` read, change and rewrite the whole file)."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_tokens(path: Path, tokens: list[StoredToken], revoked: list[str]) -> None:
    """Replace the file whole: readers see the old one or the new one, never half of one. A file that
    exists keeps its mode and owner (a service user may read it); a new one is 0600."""
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"tokens": [_entry(t) for t in tokens], "revoked": revoked}, out, indent=2)
            out.write("\n")
            out.flush()
            if old is not None:
                os.fchmod(out.fileno(), stat.S_IMODE(old.st_mode))
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    os.fchown(out.fileno(), old.st_uid, old.st_gid)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _entry(token: StoredToken) -> dict[str, object]:
    scope = asdict(token.scope)
    scope["projects"] = list(token.scope.projects)
    return {"sha256": token.sha256, **scope}
