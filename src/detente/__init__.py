"""Détente: a cyber hotline for states.

Signed, end-to-end encrypted, receipted messages between the authorised cyber
agencies of different states, under agreements every member signed, recorded
in append-only Merkle logs that each side witnesses for the other.
"""

__version__ = "0.1.0"
