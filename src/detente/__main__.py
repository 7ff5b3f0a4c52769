"""``python -m detente``: the same as the ``detente`` command."""

from detente.cli.main import main

main()
