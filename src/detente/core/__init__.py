"""The trust core: pure functions and frozen data, no I/O and no clock reads.

Everything that decides something lives here and takes plain values (bytes,
keys, ``now``), in the manner of h11 and python-tuf's metadata API.  The node
(``detente.node``) does the I/O around it.  ``tests/core/test_purity.py``
fails if this package imports the network, a database or the clock.
"""
