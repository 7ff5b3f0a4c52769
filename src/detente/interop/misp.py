"""MISP events both ways: a MISP event into a notification, a notification into a MISP event.

Import (:func:`convert_event`): an event as MISP exports it
(``{"Event": {...}}``, or the bare event ``pymisp`` writes) becomes a
``notification`` form and its TLP:

* attributes — the event's and those of its MISP objects — with ``to_ids``
  become STIX Indicators (``indicator--<attribute uuid>``) whose pattern
  compares the matching cyber-observable (``ip-dst`` →
  ``[ipv4-addr:value = '…']``, ``sha256`` → ``[file:hashes.'SHA-256' = '…']``,
  ``domain|ip``, ``filename|sha256``, ``ip-dst|port`` … as ANDed
  comparisons; ``stix2-pattern``, ``snort``, ``yara``, ``sigma`` carried as
  patterns of that type); without ``to_ids`` they become cyber-observables.
  MISP's type and category travel in ``labels`` as ``misp:type="…"`` and
  ``misp:category="…"`` (the convention of MISP's own STIX converter), so an
  event exported back has the same attribute types;
* ``tlp:`` tags (TLP 1.0 and 2.0 taxonomies) give the message TLP (the most
  restrictive event tag; AMBER when the event has none) and each object's
  TLP marking (its attribute's tag if more restrictive); ``PAP:`` tags give
  the form's ``pap``;
* ``threat_level_id`` gives the severity (High 3, Medium 2, Low 1,
  Undefined 0 on the NCISS scale), ``info`` the activity text, ``date`` the
  observed time; the category is read from tags and ``info`` (ransomware,
  ddos, phishing, botnet/C2 …; ``other`` if nothing says).

Attributes that map to nothing in STIX (free text, links, comments) or whose
value cannot be a valid pattern are listed in :attr:`MispConversion.skipped`
with the reason, never silently dropped.

Export (:func:`notification_to_event`): a notification as a MISP event MISP
can import with ``POST /events/add``: ``tlp:``/``PAP:`` tags, threat level
from severity, an attribute per indicator (simple patterns as their MISP
type, any other pattern as ``stix2-pattern``) and per cyber-observable.
Not here: talking to a MISP server (:mod:`.misp_push`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detente.core.envelope import Content
from detente.core.forms import MAX_TEXT
from detente.core.policy import tlp_rank
from detente.core.timefmt import format_time
from detente.errors import EncodingError
from detente.interop.index import stable_uuid4
from detente.interop.tlp import marking_tlp, max_tlp, object_tlp, tlp2_marking, tlp_marking_id
from detente.interop.validate import StixError, check_object

__all__ = ["MispConversion", "convert_event", "event_to_notification", "notification_to_event"]

_NAMESPACE = uuid.UUID("2ad8a1c4-5a7e-4f4b-b0a6-6d6973703221")
_SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # STIX 2.1 section 2.9
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)
_TLP_TAGS = {
    "tlp:white": "CLEAR",
    "tlp:clear": "CLEAR",
    "tlp:green": "GREEN",
    "tlp:amber": "AMBER",
    "tlp:amber+strict": "AMBER+STRICT",
    "tlp:red": "RED",
}
_PAP_TAGS = {
    "pap:white": "CLEAR",
    "pap:clear": "CLEAR",
    "pap:green": "GREEN",
    "pap:amber": "AMBER",
    "pap:red": "RED",
}
_SEVERITY = {"1": 3, "2": 2, "3": 1, "4": 0}
_THREAT_LEVEL = {0: "4", 1: "3", 2: "2", 3: "1", 4: "1", 5: "1"}
# Words in tags or info -> form category (first match wins, most specific first).
_CATEGORY_WORDS: tuple[tuple[str, str], ...] = (
    ("ransom", "ransomware"),
    ("ddos", "ddos"),
    ("denial-of-service", "ddos"),
    ("denial of service", "ddos"),
    ("phish", "phishing"),
    ("botnet", "botnet-c2"),
    ("c2", "botnet-c2"),
    ("command-and-control", "botnet-c2"),
    ("spyware", "spyware-against-citizens"),
    ("data-breach", "data-breach"),
    ("data leak", "data-breach"),
    ("exfiltration", "data-breach"),
    ("vulnerab", "vulnerability"),
    ("cve-", "vulnerability"),
    ("malware", "malware-hosting"),
    ("intrusion", "intrusion-government"),
)
_HASH_NAMES = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha224": "SHA-224",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
    "sha3-256": "SHA3-256",
    "sha3-512": "SHA3-512",
    "ssdeep": "SSDEEP",
}
_CATEGORY_OF = {
    "ip-dst": "Network activity",
    "ip-src": "Network activity",
    "domain": "Network activity",
    "hostname": "Network activity",
    "url": "Network activity",
    "uri": "Network activity",
    "email-src": "Payload delivery",
    "email-dst": "Network activity",
    "email": "Payload delivery",
    "filename": "Payload delivery",
    "mutex": "Artifacts dropped",
    "AS": "Network activity",
    "mac-address": "Network activity",
    "regkey": "Persistence mechanism",
    "stix2-pattern": "Payload installation",
    "snort": "Network activity",
    "yara": "Payload installation",
    "sigma": "Payload installation",
    "user-agent": "Network activity",
    **dict.fromkeys(_HASH_NAMES, "Payload delivery"),
}
_PATTERN_TYPES = {"snort": "snort", "yara": "yara", "sigma": "sigma", "stix2-pattern": "stix"}


@dataclass
class MispConversion:
    tlp: str
    body: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)


def _q(value: str) -> str:
    """A STIX pattern string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ip_type(value: str) -> str:
    return "ipv6-addr" if ":" in value else "ipv4-addr"


def _pattern(misp_type: str, value: str) -> str | None:
    """A STIX pattern for an attribute, or None if its type has none."""
    t = misp_type
    if t in ("ip-dst", "ip-src"):
        return f"[{_ip_type(value)}:value = {_q(value)}]"
    if t in ("ip-dst|port", "ip-src|port"):
        ip, _, port = value.rpartition("|")
        side = "dst" if t.startswith("ip-dst") else "src"
        if not port.isdigit() or not ip:
            return None
        return (
            f"[network-traffic:{side}_ref.type = '{_ip_type(ip)}' AND "
            f"network-traffic:{side}_ref.value = {_q(ip)} AND "
            f"network-traffic:{side}_port = {int(port)}]"
        )
    if t in ("domain", "hostname"):
        return f"[domain-name:value = {_q(value)}]"
    if t == "domain|ip":
        domain, _, ip = value.partition("|")
        return (
            f"[domain-name:value = {_q(domain)} AND "
            f"domain-name:resolves_to_refs[*].value = {_q(ip)}]"
        )
    if t in ("url", "uri"):
        return f"[url:value = {_q(value)}]"
    if t in _HASH_NAMES:
        return f"[file:hashes.{_q(_HASH_NAMES[t])} = {_q(value)}]"
    if t.startswith("filename|") and t[9:] in _HASH_NAMES:
        name, _, digest = value.partition("|")
        return f"[file:name = {_q(name)} AND file:hashes.{_q(_HASH_NAMES[t[9:]])} = {_q(digest)}]"
    if t == "filename":
        return f"[file:name = {_q(value)}]"
    if t in ("email-src", "email-dst", "email"):
        return f"[email-addr:value = {_q(value)}]"
    if t == "mutex":
        return f"[mutex:name = {_q(value)}]"
    if t == "AS":
        number = value.upper().removeprefix("AS")
        return f"[autonomous-system:number = {int(number)}]" if number.isdigit() else None
    if t == "mac-address":
        return f"[mac-addr:value = {_q(value.lower())}]"
    if t == "regkey":
        return f"[windows-registry-key:key = {_q(value)}]"
    if t == "user-agent":
        return (
            "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = "
            f"{_q(value)}]"
        )
    return None


def _observable(misp_type: str, value: str) -> dict[str, Any] | None:
    """A cyber-observable for an attribute without to_ids (deterministic id, section 2.9)."""
    t = misp_type
    props: dict[str, Any]
    if t in ("ip-dst", "ip-src"):
        obj_type, props = _ip_type(value), {"value": value}
    elif t in ("domain", "hostname"):
        obj_type, props = "domain-name", {"value": value}
    elif t in ("url", "uri"):
        obj_type, props = "url", {"value": value}
    elif t in ("email-src", "email-dst", "email"):
        obj_type, props = "email-addr", {"value": value}
    elif t == "mac-address":
        obj_type, props = "mac-addr", {"value": value.lower()}
    elif t == "mutex":
        obj_type, props = "mutex", {"name": value}
    elif t in _HASH_NAMES:
        obj_type, props = "file", {"hashes": {_HASH_NAMES[t]: value}}
    elif t == "filename":
        obj_type, props = "file", {"name": value}
    elif t == "AS" and value.upper().removeprefix("AS").isdigit():
        obj_type, props = "autonomous-system", {"number": int(value.upper().removeprefix("AS"))}
    else:
        return None
    contributing = json.dumps(props, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {
        "type": obj_type,
        "spec_version": "2.1",
        "id": f"{obj_type}--{uuid.uuid5(_SCO_NAMESPACE, contributing)}",
        **props,
    }


def _tags(holder: Mapping[str, Any]) -> list[str]:
    tags = holder.get("Tag") or []
    return [str(t.get("name", "")) for t in tags if isinstance(t, Mapping)]


def _tlp_of(tags: Sequence[str]) -> str | None:
    return max_tlp(_TLP_TAGS[t.lower()] for t in tags if t.lower() in _TLP_TAGS)


def _stix_time(timestamp: Any, fallback: str) -> str:
    """A MISP epoch timestamp (string of seconds) as a STIX timestamp."""
    text = str(timestamp) if timestamp is not None else ""
    if text.isdigit():
        return format_time(datetime.fromtimestamp(int(text), UTC))
    return fallback


def _attribute_uuid(attribute: Mapping[str, Any]) -> str:
    raw = str(attribute.get("uuid", ""))
    if _UUID_RE.fullmatch(raw):
        return raw.lower()
    # MISP always sets one; an event built by hand may not: derive one that is stable.
    return stable_uuid4(f"misp-attribute:{attribute.get('type')}|{attribute.get('value')}")


def _category(tags: Sequence[str], info: str) -> str:
    text = " ".join(tags).lower() + " " + info.lower()
    for word, category in _CATEGORY_WORDS:
        if word in text:
            return category
    return "other"


def _attributes(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [a for a in event.get("Attribute") or [] if isinstance(a, Mapping)]
    for obj in event.get("Object") or []:
        if isinstance(obj, Mapping):
            found.extend(a for a in obj.get("Attribute") or [] if isinstance(a, Mapping))
    return [a for a in found if not a.get("deleted")]


def convert_event(
    event: Any,
    *,
    lang: str = "en",
    concern: str = "other",
    now: datetime | None = None,
) -> MispConversion:
    """A MISP event as a notification form (see the module doc); nothing is sent."""
    if isinstance(event, Mapping) and isinstance(event.get("Event"), Mapping):
        event = event["Event"]
    if not isinstance(event, Mapping):
        raise EncodingError('a MISP event must be a JSON object ({"Event": {...}})')
    moment = format_time(now or datetime.now(UTC))
    event_tags = _tags(event)
    tlp = _tlp_of(event_tags) or "AMBER"
    info = str(event.get("info") or "").strip()
    event_uuid = str(event.get("uuid", ""))
    objects: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    used_tlps = {tlp}
    seen: set[str] = set()
    for attribute in _attributes(event):
        misp_type = str(attribute.get("type", ""))
        value = str(attribute.get("value", ""))
        label = max_tlp((tlp, _tlp_of(_tags(attribute)) or tlp)) or tlp
        to_ids = attribute.get("to_ids") in (True, 1, "1", "true", "True")
        category = str(attribute.get("category") or _CATEGORY_OF.get(misp_type, "Other"))
        created = _stix_time(attribute.get("timestamp"), moment)
        obj: dict[str, Any] | None
        if to_ids:
            pattern_type = _PATTERN_TYPES.get(misp_type, "stix")
            pattern = value if misp_type in _PATTERN_TYPES else _pattern(misp_type, value)
            if pattern is None:
                skipped.append({"type": misp_type, "value": value[:100], "why": "no STIX pattern"})
                continue
            obj = {
                "type": "indicator",
                "spec_version": "2.1",
                "id": f"indicator--{_attribute_uuid(attribute)}",
                "created": created,
                "modified": created,
                "name": str(attribute.get("comment") or f"{category}: {misp_type}")[:200],
                "indicator_types": ["malicious-activity"],
                "pattern": pattern,
                "pattern_type": pattern_type,
                "valid_from": _stix_time(attribute.get("first_seen"), created)
                if str(attribute.get("first_seen", "")).isdigit()
                else created,
                "labels": [f'misp:type="{misp_type}"', f'misp:category="{category}"'],
            }
            if pattern_type == "stix":
                obj["pattern_version"] = "2.1"
        else:
            obj = _observable(misp_type, value)
            if obj is None:
                skipped.append({"type": misp_type, "value": value[:100], "why": "no STIX object"})
                continue
        obj["object_marking_refs"] = [tlp_marking_id(label)]
        try:
            check_object(obj, f"attribute {misp_type}")
        except StixError as exc:
            skipped.append({"type": misp_type, "value": value[:100], "why": exc.problem})
            continue
        if obj["id"] in seen:
            continue
        seen.add(obj["id"])
        used_tlps.add(label)
        objects.append(obj)
    markings = [tlp2_marking(label) for label in sorted(used_tlps, key=tlp_rank)]
    severity = _SEVERITY.get(str(event.get("threat_level_id", "4")), 0)
    date = str(event.get("date") or "")
    observed = f"{date}T00:00:00.000Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else moment
    text = info or f"MISP event {event_uuid}".strip()
    body: dict[str, Any] = {
        "category": _category(event_tags, info),
        "severity": severity,
        "observed": observed,
        "activity": {"lang": lang, "text": text[:MAX_TEXT]},
        "concern": concern,
    }
    if objects:
        bundle_seed = event_uuid or json.dumps([o["id"] for o in objects])
        body["indicators"] = {
            "type": "bundle",
            "id": f"bundle--{stable_uuid4('misp-bundle:' + bundle_seed)}",
            "objects": [*markings, *objects],
        }
    pap = max_tlp(_PAP_TAGS[t.lower()] for t in event_tags if t.lower() in _PAP_TAGS)
    if pap is not None:
        body["pap"] = pap
    return MispConversion(tlp, body, skipped)


def event_to_notification(event: Any, **options: Any) -> tuple[str, dict[str, Any]]:
    """(TLP, notification form) for a MISP event; see :func:`convert_event`."""
    conversion = convert_event(event, **options)
    return conversion.tlp, conversion.body


# -- export -------------------------------------------------------------------------------

_SIMPLE = re.compile(r"\[([a-z0-9-]+):([A-Za-z0-9_.'\-]+) = ('(?:[^'\\]|\\['\\])*'|\d+)\]")
_PATH_TYPES = {
    ("ipv4-addr", "value"): "ip-dst",
    ("ipv6-addr", "value"): "ip-dst",
    ("domain-name", "value"): "domain",
    ("url", "value"): "url",
    ("email-addr", "value"): "email",
    ("file", "name"): "filename",
    ("mutex", "name"): "mutex",
    ("mac-addr", "value"): "mac-address",
    ("windows-registry-key", "key"): "regkey",
    ("autonomous-system", "number"): "AS",
}
_HASH_TYPES = {v.lower().replace("-", ""): k for k, v in _HASH_NAMES.items()}
_LABEL = re.compile(r'misp:(type|category)="([^"]+)"')


def _unquote(literal: str) -> str:
    if literal.startswith("'"):
        return literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return literal


def _epoch(stix_time: str) -> str:
    moment = datetime.fromisoformat(stix_time.replace("Z", "+00:00"))
    return str(int(moment.timestamp()))


def _misp_attribute(
    obj: Mapping[str, Any], event_tlp: str, local: Mapping[str, str]
) -> dict[str, Any] | None:
    labels: dict[str, str] = {}
    for label in obj.get("labels", []):
        m = _LABEL.fullmatch(str(label))
        if m is not None:
            labels[m[1]] = m[2]
    misp_type: str | None = None
    value: str | None = None
    to_ids = obj["type"] == "indicator"
    if obj["type"] == "indicator":
        pattern, pattern_type = obj["pattern"], obj["pattern_type"]
        if pattern_type in ("snort", "yara", "sigma"):
            misp_type, value = pattern_type, pattern
        else:
            m = _SIMPLE.fullmatch(pattern.strip())
            if m is not None:
                obj_type, path, literal = m.groups()
                value = _unquote(literal)
                if path.startswith("hashes."):
                    algorithm = _unquote(path[7:]).lower().replace("-", "")
                    misp_type = _HASH_TYPES.get(algorithm)
                else:
                    misp_type = _PATH_TYPES.get((obj_type, path))
                if misp_type == "ip-dst" and labels.get("type") == "ip-src":
                    misp_type = "ip-src"
                if misp_type == "domain" and labels.get("type") == "hostname":
                    misp_type = "hostname"
                if misp_type == "email" and labels.get("type") in ("email-src", "email-dst"):
                    misp_type = labels["type"]
                if misp_type == "url" and labels.get("type") == "uri":
                    misp_type = "uri"
                if misp_type == "AS":
                    value = f"AS{value}"
            if misp_type is None:
                misp_type, value = "stix2-pattern", pattern
    elif obj["type"] in ("ipv4-addr", "ipv6-addr"):
        misp_type, value = "ip-dst", obj["value"]
    elif obj["type"] == "domain-name":
        misp_type, value = "domain", obj["value"]
    elif obj["type"] == "url":
        misp_type, value = "url", obj["value"]
    elif obj["type"] == "email-addr":
        misp_type, value = "email", obj["value"]
    elif obj["type"] == "mac-addr":
        misp_type, value = "mac-address", obj["value"]
    elif obj["type"] == "mutex":
        misp_type, value = "mutex", obj["name"]
    elif obj["type"] == "autonomous-system":
        misp_type, value = "AS", f"AS{obj['number']}"
    elif obj["type"] == "file" and obj.get("hashes"):
        name, digest = next(iter(obj["hashes"].items()))
        misp_type, value = _HASH_TYPES.get(name.lower().replace("-", "")), digest
    elif obj["type"] == "file" and obj.get("name"):
        misp_type, value = "filename", obj["name"]
    if misp_type is None or value is None:
        return None
    category = labels.get("category") or _CATEGORY_OF.get(misp_type, "Other")
    attribute: dict[str, Any] = {
        "uuid": obj["id"].split("--", 1)[1].lower(),
        "type": misp_type,
        "category": category,
        "value": value,
        "to_ids": to_ids,
        "distribution": "5",
        "disable_correlation": False,
    }
    when = obj.get("modified") or obj.get("created")
    if when:
        attribute["timestamp"] = _epoch(when)
    comment = obj.get("description") or obj.get("name")
    if isinstance(comment, str) and obj["type"] == "indicator":
        attribute["comment"] = comment[:1000]
    label = object_tlp(obj, local)
    if label is not None and tlp_rank(label) > tlp_rank(event_tlp):
        attribute["Tag"] = [{"name": f"tlp:{label.lower()}"}]
    return attribute


def notification_to_event(
    content: Content, *, message_id: str, sender: str, created: str, org: str
) -> dict[str, Any]:
    """A notification as a MISP event (``{"Event": {...}}``) MISP can import."""
    if content.type != "notification":
        raise EncodingError(f"only a notification becomes a MISP event, not a {content.type}")
    body = content.body
    tags = [{"name": f"tlp:{content.tlp.lower()}"}]
    if body.get("pap"):
        tags.append({"name": f"PAP:{body['pap']}"})
    tags.append({"name": f'detente:category="{body["category"]}"'})
    tags.append({"name": f'detente:source="{sender}"'})
    attributes: list[dict[str, Any]] = []
    bundle = body.get("indicators")
    skipped_types: dict[str, int] = {}
    if isinstance(bundle, Mapping):
        objects = [o for o in bundle.get("objects", []) if isinstance(o, Mapping)]
        local = {
            o["id"]: label
            for o in objects
            if o.get("type") == "marking-definition" and (label := marking_tlp(o))
        }
        for obj in objects:
            if obj.get("type") == "marking-definition":
                continue
            attribute = _misp_attribute(obj, content.tlp, local)
            if attribute is None:
                skipped_types[str(obj.get("type"))] = skipped_types.get(str(obj.get("type")), 0) + 1
                continue
            attributes.append(attribute)
    activity = body["activity"]
    info = str(activity["text"])
    if activity.get("translated_from"):
        info = f"[translated from {activity['translated_from']}] {info}"
    event: dict[str, Any] = {
        "uuid": str(uuid.uuid5(_NAMESPACE, "event:" + message_id)),
        "info": info[:65_000],
        "date": str(body["observed"])[:10],
        "threat_level_id": _THREAT_LEVEL[int(body["severity"])],
        "analysis": "0",
        "distribution": "0",
        "published": False,
        "timestamp": _epoch(created) if created else _epoch(str(body["observed"])),
        "Tag": tags,
        "Attribute": attributes,
    }
    if skipped_types:
        shown = ", ".join(f"{n} {t}" for t, n in sorted(skipped_types.items()))
        event["Attribute"].append(
            {
                "uuid": str(uuid.uuid5(_NAMESPACE, "note:" + message_id)),
                "type": "comment",
                "category": "Other",
                "value": f"Détente {message_id} from {sender} via {org}; not mapped to MISP "
                f"attributes: {shown} (see the STIX bundle over TAXII)",
                "to_ids": False,
                "distribution": "5",
                "disable_correlation": True,
            }
        )
    return {"Event": event}
