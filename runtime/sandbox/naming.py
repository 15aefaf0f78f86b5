"""Task and project ids, and the Docker names built from them.

Ids are validated, never mangled: an id Docker cannot use as a name, or that could
inject into a name or a label filter, raises `InvalidIdentifier`.

Why '-' is still allowed (the user's own example is `proj-456`/`task-123`): the
container name `theappapp-{project}-{task}` is then ambiguous — project "a-b" with
task "c" and project "a" with task "b-c" both give `theappapp-a-b-c`. The name is
therefore never parsed back: identity lives in labels, and the engine's name
uniqueness makes the second `create` fail atomically; the manager then reads the
holder's labels and reports the collision (`InvalidIdentifier`) rather than
`TaskExists`. Volume names have a single id in them and cannot collide; a cache volume's
also has a language name, which has no '.', so the first '.' after the prefix ends it.
"""

from __future__ import annotations

import re

from runtime.errors import InvalidIdentifier

PREFIX = "theappapp"
# Docker's own name rule is [a-zA-Z0-9][a-zA-Z0-9_.-]+; we cap the length so the
# composed names stay well inside filesystem and label limits.
_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")


def validate_id(kind: str, value: object) -> str:
    """`value` if it is a safe id, else `InvalidIdentifier` saying what is allowed."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidIdentifier(
            f"invalid {kind} {value!r}: use 1-63 characters from letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return value


def container_name(project_id: str, task_id: str) -> str:
    return f"{PREFIX}-{validate_id('project id', project_id)}-{validate_id('task id', task_id)}"


VOLUME_PREFIX = f"{PREFIX}-project-"


def volume_name(project_id: str) -> str:
    return f"{VOLUME_PREFIX}{validate_id('project id', project_id)}"


def cache_volume_name(project_id: str, language: str) -> str:
    return f"{PREFIX}-cache.{language}.{validate_id('project id', project_id)}"
