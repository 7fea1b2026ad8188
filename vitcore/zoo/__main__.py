"""``python -m vitcore.zoo``: the zoo's command line (``vitcore.zoo.full.main``)."""

import sys

from .full import main

sys.exit(main())
