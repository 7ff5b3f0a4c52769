"""One running party: send, receive, receipt, witness, deliver, retry.

The node orchestrates the pure core (``detente.core``) around I/O: the store
(``detente.store``), the network (httpx, in :mod:`detente.node.delivery` and
:mod:`detente.node.witness`) and the clock, which is injected everywhere.
"""
