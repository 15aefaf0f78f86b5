"""Ids are validated, never mangled; names are built from them the user's way."""

from __future__ import annotations

import pytest

from runtime.errors import InvalidIdentifier
from runtime.sandbox.naming import container_name, validate_id, volume_name


@pytest.mark.parametrize("good", ["task-123", "proj-456", "a", "A.b_c-9", "x" * 63])
def test_safe_ids_pass_unchanged(good: str) -> None:
    assert validate_id("task id", good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "-a", ".a", "_a", "a b", "a/b", "a:b", "a\nb", "a\0b", "ünï", "x" * 64, "a;b", "a$b", "a=b", "a,b", 7, None],
)
def test_unsafe_ids_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidIdentifier, match="task id"):
        validate_id("task id", bad)


def test_names_follow_the_convention() -> None:
    assert container_name("proj-456", "task-123") == "theappapp-proj-456-task-123"
    assert volume_name("proj-456") == "theappapp-project-proj-456"
    with pytest.raises(InvalidIdentifier, match="project id"):
        volume_name("../x")


def test_dash_split_ambiguity_exists_so_identity_lives_in_labels() -> None:
    # Why the manager checks the holder's labels on a name conflict instead of trusting the name.
    assert container_name("a-b", "c") == container_name("a", "b-c")
