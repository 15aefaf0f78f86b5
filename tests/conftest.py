"""Settings every test runs under, set before any manager exists.

Managers record to the monitor by default and keep relabel records beside the engine:
tests keep both in a directory of this session's, never in the user's own files.
"""

from __future__ import annotations

import os
import tempfile

_STATE = tempfile.mkdtemp(prefix="theappapp-tests-")
os.environ.setdefault("THEAPPAPP_MONITOR_DB", os.path.join(_STATE, "monitor.sqlite3"))
os.environ.setdefault("XDG_STATE_HOME", os.path.join(_STATE, "state"))
