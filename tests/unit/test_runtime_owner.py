"""Owner labels: enough for cleanup to tell a live manager from a dead one."""

from __future__ import annotations

import os
from pathlib import Path

from runtime import labels
from runtime.sandbox.owner import Owner, process_start_ticks


def test_process_start_ticks_is_field_22_of_proc_stat() -> None:
    text = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert process_start_ticks(os.getpid()) == text.rsplit(")", 1)[1].split()[19]
    assert process_start_ticks(2**22 + 12345) is None  # beyond pid_max: no such process


def test_labels_name_task_project_owner_and_installation() -> None:
    owner = Owner(installation="inst")
    got = owner.labels(task_id="t", project_id="p", language="python", ttl=60, now=1000.0, extra={"x": "y"})
    assert got[labels.MANAGED] == "true" and got["x"] == "y"
    assert (got[labels.TASK], got[labels.PROJECT], got[labels.LANGUAGE]) == ("t", "p", "python")
    assert (got[labels.CREATED_AT], got[labels.EXPIRES_AT]) == ("1000", "1060")
    assert got[labels.OWNER] == owner.manager_id and got[labels.OWNER_PID] == str(os.getpid())
    assert got[labels.OWNER_STARTED] == process_start_ticks(os.getpid()) and got[labels.INSTALLATION] == "inst"
    assert Owner(installation="inst").manager_id != owner.manager_id
    assert owner.volume_labels("p")[labels.PROJECT] == "p"
