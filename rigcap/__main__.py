import sys

from rigcap.cli import main

sys.exit(main())
