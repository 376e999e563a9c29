"""`python -m core ...`: the command-line entry; see core/cli.py."""

from core.cli import main

if __name__ == "__main__":  # also imported (and then idle) by the upload parser's forkserver
    raise SystemExit(main())
