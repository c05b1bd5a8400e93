"""``python -m finite_memory`` runs the ``finite-memory`` command."""

import sys

from .cli import main

sys.exit(main())
