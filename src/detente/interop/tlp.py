"""Handling labels in STIX: TLP 1.0 and TLP 2.0 marking definitions, and MISP tags.

STIX 2.1 predefines the four TLP 1.0 marking definitions (section 7.2.1.4);
TLP 2.0 (FIRST, 2022) is published by OASIS as marking definitions carrying
the extension ``extension-definition--60a3c5c5-…`` with a ``tlp_2_0``
property.  Both map onto Détente's TLP 2.0 labels (``core.policy.TLP_LABELS``):
TLP:WHITE is TLP:CLEAR.

The label of a STIX object is the most restrictive TLP marking it carries,
at object level or in a granular marking (a part marked RED makes the whole
object RED for serving: conservative), and never less restrictive than the
label of the message or import it came in.  Not here: PAP in STIX (no
standard marking exists); MISP's ``PAP:`` tags are read in :mod:`.misp`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from detente.core.policy import TLP_LABELS

__all__ = [
    "TLP2_EXTENSION",
    "TLP_MARKING_IDS",
    "marking_tlp",
    "max_tlp",
    "object_tlp",
    "tlp2_marking",
    "tlp_marking_id",
]

TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
_TLP2_CREATED = "2022-10-01T00:00:00.000Z"
_TLP2 = {
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
_TLP1 = {
    "CLEAR": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",  # TLP:WHITE
    "GREEN": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "AMBER": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "RED": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
# Every predefined TLP marking id -> Détente label.
TLP_MARKING_IDS: Mapping[str, str] = {
    **{v: k for k, v in _TLP1.items()},
    **{v: k for k, v in _TLP2.items()},
}
_RANK = {label: i for i, label in enumerate(TLP_LABELS)}
_TLP1_NAMES = {"white": "CLEAR", "green": "GREEN", "amber": "AMBER", "red": "RED"}
_TLP2_NAMES = {"clear": "CLEAR", "green": "GREEN", "amber": "AMBER", "amber+strict": "AMBER+STRICT"}
_TLP2_NAMES["red"] = "RED"


def max_tlp(labels: Iterable[str]) -> str | None:
    """The most restrictive of ``labels`` (None if there are none)."""
    best: str | None = None
    for label in labels:
        if best is None or _RANK[label] > _RANK[best]:
            best = label
    return best


def tlp_marking_id(label: str) -> str:
    """The TLP 2.0 marking definition id for a Détente label."""
    return _TLP2[label]


def tlp2_marking(label: str) -> dict[str, Any]:
    """The published TLP 2.0 marking definition object for ``label``."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": _TLP2[label],
        "created": _TLP2_CREATED,
        "name": f"TLP:{label}",
        "extensions": {
            TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": label.lower()}
        },
    }


def marking_tlp(obj: Mapping[str, Any]) -> str | None:
    """The TLP label a marking-definition object defines, if it is a TLP marking."""
    known = TLP_MARKING_IDS.get(obj.get("id", ""))
    if known is not None:
        return known
    if obj.get("definition_type") == "tlp":
        definition = obj.get("definition")
        if isinstance(definition, Mapping):
            return _TLP1_NAMES.get(str(definition.get("tlp", "")).lower())
    extensions = obj.get("extensions")
    if isinstance(extensions, Mapping):
        ext = extensions.get(TLP2_EXTENSION)
        if isinstance(ext, Mapping):
            return _TLP2_NAMES.get(str(ext.get("tlp_2_0", "")).lower())
    return None


def object_tlp(obj: Mapping[str, Any], local: Mapping[str, str] | None = None) -> str | None:
    """The most restrictive TLP marking on ``obj`` (object and granular markings).

    ``local`` maps the ids of TLP marking definitions defined in the same
    bundle (not one of the predefined ones) to their labels.
    """
    if obj.get("type") == "marking-definition":
        return "CLEAR"  # a marking definition itself is public (it says what a label means)
    best: str | None = None
    refs = obj.get("object_marking_refs")
    if refs:
        for ref in refs:
            label = TLP_MARKING_IDS.get(ref) or (local.get(ref) if local else None)
            if label is not None and (best is None or _RANK[label] > _RANK[best]):
                best = label
    granular = obj.get("granular_markings")
    if granular:
        for marking in granular:
            ref = marking.get("marking_ref")
            label = TLP_MARKING_IDS.get(ref) or (local.get(ref) if local else None)
            if label is not None and (best is None or _RANK[label] > _RANK[best]):
                best = label
    return best
