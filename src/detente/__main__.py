"""``python -m detente``: the same as the ``detente`` command."""

from detente.cli.main import main

if __name__ == "__main__":  # a spawned worker process re-imports this module
    main()
