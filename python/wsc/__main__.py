"""``python -m wsc``: the same as the ``wsc`` command."""

from wsc.cli import main

raise SystemExit(main())
