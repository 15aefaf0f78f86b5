"""What the registry's modules share: field documentation and checked regexes."""

from __future__ import annotations

import re


def doc(text: str) -> dict[str, str]:
    """Field metadata: the description the JSON Schema (and so editors) show for the field."""
    return {"doc": text}


def checked_regex(regex: str, what: str, flags: int = re.MULTILINE) -> re.Pattern[str]:
    """`regex` compiled, or a ValueError naming the field (`what`) it came from."""
    try:
        return re.compile(regex, flags)
    except re.error as err:
        raise ValueError(f"{what}: bad regex: {err}") from err


IMAGE_PREFIX = "theappapp-"  # every image the toolkit builds: theappapp-<language or service name>
