"""``python -m cohortlake``: the same command line as the ``cohortlake`` script."""

import sys

from cohortlake.cli import main

sys.exit(main())
