"""`python -m mqtt_tokend` runs the command line."""

import sys

from mqtt_tokend.cli.main import main

sys.exit(main())
