"""`python -m runtime.cleanup`: the orphan cleanup job, under the name the docs give it.

The job itself lives in `runtime.ops.cleanup`; this module only keeps the short command
(and the old import path) working.
"""

import sys

from runtime.ops.cleanup import CleanupReport, cleanup, main
from runtime.ops.scheduler import CleanupScheduler

__all__ = ["CleanupReport", "CleanupScheduler", "cleanup", "main"]

if __name__ == "__main__":
    sys.exit(main())
