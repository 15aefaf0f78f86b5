"""Labels changed after creation, for an engine that cannot change them: Docker.

A task's owner is in its labels (cleanup removes a task whose owner process is gone). When
a new manager takes over a dead manager's live task, the owner labels must change, and
Docker has no call for that. So the changed labels are kept beside the engine, one JSON
file per container in a host directory, and the backend reports every container with its
record merged over the engine's labels. The owner-liveness check that reads them is a
same-host check anyway (the owner labels name the host and its pid namespace).

A change is a compare-and-set under a lock: it applies only if the container's current
values of the changed labels are the expected ones, so two managers taking over one task
at once cannot both win. A Kubernetes backend patches the pod's labels instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

_ID = re.compile(r"[0-9a-f]{12,64}")


def default_directory() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "theappapp-sandbox" / "labels"


class LabelRecords:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_directory()

    def _file(self, container_id: str) -> Path:
        if not _ID.fullmatch(container_id):
            raise ValueError(f"not a container id: {container_id!r}")
        return self.directory / f"{container_id}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def read(self, container_id: str) -> dict[str, str]:
        try:
            data = json.loads(self._file(container_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def merged(self, container_id: str, labels: Mapping[str, str]) -> dict[str, str]:
        """The engine's labels with this container's changes over them."""
        return {**labels, **self.read(container_id)}

    def change(
        self, container_id: str, engine_labels: Mapping[str, str], expect: Mapping[str, str],
        new: Mapping[str, str],
    ) -> bool:
        """Set `new` if the container's current labels hold every value in `expect`; False otherwise."""
        with self._locked():
            current = self.merged(container_id, engine_labels)
            if any(current.get(k) != v for k, v in expect.items()):
                return False
            record = {**self.read(container_id), **new}
            file = self._file(container_id)
            temporary = file.with_suffix(".tmp")
            temporary.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
            temporary.replace(file)
            return True

    def keys(self) -> set[str]:
        """Every label some container's record changes."""
        found: set[str] = set()
        with contextlib.suppress(OSError):
            for file in self.directory.glob("*.json"):
                found.update(self.read(file.stem))
        return found

    def forget(self, container_id: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._file(container_id).unlink()

    def prune(self, live_ids: Iterable[str]) -> None:
        """Drop the records of containers that no longer exist."""
        live = set(live_ids)
        with contextlib.suppress(OSError):
            for file in self.directory.glob("*.json"):
                if file.stem not in live:
                    file.unlink(missing_ok=True)
