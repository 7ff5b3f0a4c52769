"""Interoperability: STIX 2.1 in, TAXII 2.1 out, MISP both ways.

A national CERT already runs MISP, OpenCTI or a TAXII feed; this package
lets a node plug into it in the standards' own terms:

* :mod:`.pattern` — STIX Patterning, a hand-written recursive-descent parser
  that agrees with the OASIS reference (``stix2-patterns``), tens of times faster;
* :mod:`.validate` — the STIX 2.1 MUSTs per object type, on plain JSON;
* :mod:`.stream` — bundles read one object at a time, any size, flat memory;
* :mod:`.ingest` — check-then-store imports (``detente indicators import``);
* :mod:`.store` — the ``stix_objects`` table: idempotent inserts, TAXII reads;
* :mod:`.index` — notifications, requests and sightings indexed as STIX when
  their messages are committed (the node's writer calls it);
* :mod:`.tlp` and :mod:`.access` — TLP 1.0/2.0 markings, and what each API
  user is served;
* :mod:`.misp`, :mod:`.misp_push` — MISP events to notifications and back,
  and MISP's REST API;
* :mod:`.sightings` — sightings reported back to the source as signed messages.

The TAXII 2.1 server itself is :mod:`detente.api.taxii`; the commands are in
:mod:`detente.cli.interop`.
"""
