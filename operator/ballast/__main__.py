"""Allow ``python -m ballast``."""

from ballast.cli import main

raise SystemExit(main())
