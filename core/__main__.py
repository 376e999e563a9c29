"""`python -m core ...`: the command-line entry; see core/cli.py."""

from core.cli import main

raise SystemExit(main())
