"""The ``detente`` command. Exit codes and user-facing wording live here only."""
