import sys

from runtime.cli.commands import main

sys.exit(main())
