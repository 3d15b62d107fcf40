"""``python -m equinets ...`` (and ``torchrun -m equinets ...``) runs the command line."""

import sys

from equinets.train.cli import main

sys.exit(main())
