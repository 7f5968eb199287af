"""``python -m curation``: see :mod:`curation.cli`."""
import sys

from curation.cli import main

sys.exit(main())
