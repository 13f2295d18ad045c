"""``python -m flowschema_core`` is the ``flowschema`` command."""

import sys

from .cli import main

sys.exit(main())
