"""The policy directory the proxy reads: one file per sandbox address, and the names only it resolves.

The directory lives on the engine's host (the proxy mounts it read-only), so a policy is in force
the moment its file is renamed into place, with no call to the engine: the ACL helper reads the
file for every request. Each file also names its container, so removing a stale task's policy
never removes the policy of another sandbox that got the same address meanwhile.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from runtime.backends.egress import EgressPolicy

DEFAULT_ROOT = Path("/run/theappapp-sandbox/egress")  # runtime state: gone after a reboot, as the containers
NO_NAMES = ".invalid\n"  # squid's dstdomain list may not be empty; a reserved name nothing resolves to


class PolicyDirectory:
    """`<root>/<network>/`: `clients/<address>` files, `hosts` and `hosts.names`."""

    def __init__(self, network: str, root: Path = DEFAULT_ROOT) -> None:
        self.path = root / network
        self.clients = self.path / "clients"

    def prepare(self, hosts: tuple[str, ...]) -> bool:
        """Create the directory (readable by the proxy's user) and write the names; True if they changed."""
        self.clients.mkdir(parents=True, exist_ok=True)
        for directory in (self.path.parent, self.path, self.clients):
            directory.chmod(0o755)
        pairs = [entry.partition("=") for entry in hosts]
        table = "".join(f"{address} {name}\n" for name, _, address in pairs)
        names = "".join(sorted({f"{name.lower()}\n" for name, _, _ in pairs})) or NO_NAMES
        changed = _replace(self.path / "hosts", table)
        return _replace(self.path / "hosts.names", names) or changed

    def write(self, address: str, container_id: str, policy: EgressPolicy) -> None:
        body = {"task": policy.task_id, "project": policy.project_id, "container": container_id,
                "hosts": list(policy.hosts)}
        _replace(self.clients / address, json.dumps(body) + "\n", force=True)

    def remove(self, container_id: str, address: str | None = None) -> bool:
        """Remove the container's policy (at `address`, else wherever it is); False if it had none."""
        candidates = [self.clients / address] if address else sorted(self.clients.glob("*"))
        for path in candidates:
            if self._owner(path) == container_id:
                path.unlink(missing_ok=True)
                return True
        return False

    def addresses(self) -> dict[str, str]:
        """Address -> container id, for every policy present."""
        return {path.name: owner for path in self.clients.glob("*") if (owner := self._owner(path))}

    @staticmethod
    def _owner(path: Path) -> str | None:
        try:
            return str(json.loads(path.read_text(encoding="utf-8")).get("container") or "") or None
        except (OSError, ValueError, AttributeError):
            return None


def _replace(path: Path, text: str, *, force: bool = False) -> bool:
    """Write `text` to `path` atomically (a temp file renamed over it); False when it already held it."""
    if not force:
        try:
            if path.read_text(encoding="utf-8") == text:
                return False
        except OSError:
            pass
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return True
