"""`python -m mqtt_tokend.emulator` runs the emulator on its own."""

import sys

from mqtt_tokend.emulator.cli import main

sys.exit(main())
