"""Fixtures shared by the interop tests: the two-node hotline."""

from interop.hotline import hotline  # noqa: F401 - a session fixture
