"""``python -m srs.cli``: the ``srs`` command, for when the console script is not on PATH."""

from srs.cli import main

main()
