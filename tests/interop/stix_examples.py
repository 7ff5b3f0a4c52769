"""STIX 2.1 content built with the stix2 library (a real producer), for the interop tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import stix2

from detente.interop.tlp import tlp2_marking, tlp_marking_id

NOW = "2026-11-24T12:00:00.000Z"


def library_objects() -> list[Any]:
    """One object of every kind the issue names (and more), as stix2 makes them."""
    identity = stix2.Identity(name="Example CERT", identity_class="organization")
    indicator = stix2.Indicator(
        name="C2 server",
        description="Command and control of a ransomware operation",
        pattern="[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'c2.example']",
        pattern_type="stix",
        valid_from="2026-11-24T12:00:00Z",
        indicator_types=["malicious-activity"],
        created_by_ref=identity,
        object_marking_refs=[stix2.TLP_AMBER],
        kill_chain_phases=[
            stix2.KillChainPhase(kill_chain_name="mitre-attack", phase_name="command-and-control")
        ],
    )
    hashed = stix2.Indicator(
        name="Dropper",
        pattern="[file:hashes.'SHA-256' = "
        "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']",
        pattern_type="stix",
        valid_from="2026-11-24T12:00:00Z",
        object_marking_refs=[tlp_marking_id("GREEN")],
    )
    yara = stix2.Indicator(
        name="YARA rule",
        pattern="rule x { condition: true }",
        pattern_type="yara",
        valid_from="2026-11-24T12:00:00Z",
    )
    malware = stix2.Malware(name="Example locker", is_family=True, malware_types=["ransomware"])
    infrastructure = stix2.Infrastructure(
        name="C2 cluster", infrastructure_types=["command-and-control"]
    )
    address = stix2.IPv4Address(value="198.51.100.7")
    domain = stix2.DomainName(value="c2.example")
    url = stix2.URL(value="http://c2.example/gate.php")
    file = stix2.File(name="locker.exe", hashes={"SHA-256": "a" * 64})
    traffic = stix2.NetworkTraffic(dst_ref=address, protocols=["tcp"], dst_port=443)
    observed = stix2.ObservedData(
        first_observed="2026-11-24T10:00:00Z",
        last_observed="2026-11-24T11:00:00Z",
        number_observed=3,
        object_refs=[address, traffic],
    )
    sighting = stix2.Sighting(
        sighting_of_ref=indicator,
        count=5,
        first_seen="2026-11-24T10:00:00Z",
        last_seen="2026-11-24T11:00:00Z",
        where_sighted_refs=[identity],
        observed_data_refs=[observed],
    )
    return [
        identity,
        indicator,
        hashed,
        yara,
        malware,
        infrastructure,
        stix2.Relationship(indicator, "indicates", malware),
        stix2.Relationship(malware, "uses", infrastructure),
        stix2.Relationship(infrastructure, "consists-of", address),
        address,
        domain,
        url,
        file,
        traffic,
        observed,
        sighting,
        stix2.AttackPattern(name="Phishing"),
        stix2.Campaign(name="Operation X", first_seen="2026-01-01T00:00:00Z"),
        stix2.CourseOfAction(name="Block the C2"),
        stix2.ThreatActor(name="Group X", threat_actor_types=["crime-syndicate"]),
        stix2.Tool(name="rclone"),
        stix2.Vulnerability(name="CVE-2026-0001"),
        stix2.Location(country="ZZ"),
        stix2.Note(content="seen before", object_refs=[indicator]),
        stix2.Report(name="Weekly", published="2026-11-24T12:00:00Z", object_refs=[indicator]),
        stix2.TLP_AMBER,
    ]


def library_bundle() -> dict[str, Any]:
    """A stix2 bundle of :func:`library_objects` plus the TLP 2.0 markings, as JSON."""
    bundle: dict[str, Any] = json.loads(stix2.Bundle(*library_objects()).serialize())
    bundle["objects"].extend(tlp2_marking(label) for label in ("GREEN", "AMBER"))
    return bundle


def indicator(n: int, **extra: Any) -> dict[str, Any]:
    """A plain indicator as JSON (fast to make by the thousand)."""
    obj = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": NOW,
        "modified": NOW,
        "name": f"C2 server {n}",
        "indicator_types": ["malicious-activity"],
        "pattern": f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']",
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": NOW,
    }
    obj.update(extra)
    return obj


def bundle_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}
