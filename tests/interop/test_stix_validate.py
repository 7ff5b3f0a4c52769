"""The fast STIX validator: what stix2 makes passes; each kind of bad object is named."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import stix2

from detente.interop.ingest import check_objects
from detente.interop.validate import StixError, check_object
from interop.stix_examples import NOW, indicator, library_bundle, library_objects


def test_every_object_stix2_makes_passes() -> None:
    for obj in library_bundle()["objects"]:
        check_object(obj)


def test_a_custom_property_of_a_tool_passes_unchanged() -> None:
    # OpenCTI exports carry x_opencti_* properties: they are STIX (section 11.1).
    obj = indicator(1, x_opencti_score=80, x_opencti_labels=["c2"])
    check_object(obj)


def _error(obj: Any) -> StixError:
    with pytest.raises(StixError) as caught:
        check_object(obj, "objects[7]")
    text = str(caught.value)
    assert text.isprintable()
    return caught.value


def _bad(**changes: Any) -> dict[str, Any]:
    obj = indicator(1)
    for key, value in changes.items():
        if value is None:
            del obj[key]
        else:
            obj[key] = value
    return obj


@pytest.mark.parametrize(
    ("changes", "prop", "words"),
    [
        ({"pattern": None}, "pattern", "is required"),
        ({"valid_from": None}, "valid_from", "is required"),
        ({"created": None}, "created", "is required"),
        ({"spec_version": None}, "spec_version", "is required"),
        ({"spec_version": "2.0"}, "spec_version", "must be '2.1'"),
        ({"spec_version": "2.2"}, "spec_version", "must be '2.1'"),
        ({"id": "indicator--1234"}, "id", "RFC 4122"),
        ({"id": "malware--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"}, "id", "indicator--"),
        ({"id": "indicator--0c7b5b88-8ff7-4a4d-0a9d-feb398cd0061"}, "id", "RFC 4122"),
        ({"created": "2026-11-24 12:00:00Z"}, "created", "RFC 3339"),
        ({"modified": "2026-02-30T12:00:00Z"}, "modified", "not a real date"),
        ({"modified": "2026-11-24T12:00:00+01:00"}, "modified", "RFC 3339"),
        ({"modified": "2026-11-23T12:00:00.000Z"}, "modified", "before created"),
        ({"modified": "2026-11-24T12:00:00Z"}, "modified", "precise to the millisecond"),
        ({"valid_until": "2026-11-24T12:00:00Z"}, "valid_until", "after valid_from"),
        ({"pattern": "[ipv4-addr:value = ]"}, "pattern", "offset 19"),
        ({"pattern": "ipv4-addr:value = '1.2.3.4'"}, "pattern", "must start with"),
        ({"pattern_version": "3.0"}, "pattern_version", "2.1"),
        ({"confidence": 101}, "confidence", "0 to 100"),
        ({"labels": "c2"}, "labels", "list of strings"),
        (
            {"object_marking_refs": ["identity--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"]},
            "object_marking_refs",
            "marking-definition",
        ),
        (
            {"created_by_ref": "malware--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"},
            "created_by_ref",
            "identity",
        ),
        ({"external_references": [{"url": "http://x"}]}, "external_references", "source_name"),
        ({"granular_markings": [{"selectors": ["name"]}]}, "granular_markings", "exactly one"),
        ({"a b": 1}, "a b", "property name"),
        ({"x_deep": json.loads("[" * 40 + "]" * 40)}, "x_deep", "nested"),
        ({"extensions": {"not-an-extension": {}}}, "extensions", "-ext"),
    ],
)
def test_a_bad_indicator_is_named_by_id_and_property(
    changes: dict[str, Any], prop: str, words: str
) -> None:
    obj = _bad(**changes)
    error = _error(obj)
    assert error.prop == prop
    assert words in error.problem
    if isinstance(obj.get("id"), str):
        assert error.where == f"objects[7] ({obj['id']})"


@pytest.mark.parametrize(
    ("obj", "prop", "words"),
    [
        ({"type": "malware", "is_family": True}, "name", "is required when is_family"),
        ({"type": "malware"}, "is_family", "is required"),
        ({"type": "infrastructure"}, "name", "is required"),
        (
            {
                "type": "relationship",
                "relationship_type": "uses",
                "source_ref": "malware--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
            },
            "target_ref",
            "is required",
        ),
        (
            {
                "type": "sighting",
                "sighting_of_ref": "ipv4-addr--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
            },
            "sighting_of_ref",
            "must refer to",
        ),
        (
            {
                "type": "sighting",
                "count": -1,
                "sighting_of_ref": "indicator--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
            },
            "count",
            "0 to 999999999",
        ),
        (
            {
                "type": "sighting",
                "first_seen": "2026-11-24T12:00:00Z",
                "last_seen": "2026-11-24T11:00:00Z",
                "sighting_of_ref": "indicator--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
            },
            "last_seen",
            "at or after first_seen",
        ),
        ({"type": "location"}, "region", "one of region"),
        (
            {
                "type": "observed-data",
                "first_observed": NOW,
                "last_observed": NOW,
                "number_observed": 0,
                "object_refs": ["ipv4-addr--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"],
            },
            "number_observed",
            "1 to",
        ),
    ],
)
def test_the_rules_of_each_type(obj: dict[str, Any], prop: str, words: str) -> None:
    full = {
        "spec_version": "2.1",
        "id": f"{obj['type']}--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
        "created": NOW,
        "modified": NOW,
        **obj,
    }
    error = _error(full)
    assert error.prop == prop, error
    assert words in error.problem


def test_marking_definitions() -> None:
    tlp = json.loads(stix2.TLP_RED.serialize())
    check_object(tlp)
    bad = {**tlp, "definition": {"tlp": "purple"}}
    assert _error(bad).prop == "definition"
    statement = {**tlp, "definition_type": "statement", "definition": {}}
    assert _error(statement).prop == "definition"
    no_definition = {k: v for k, v in tlp.items() if k not in ("definition", "definition_type")}
    assert _error(no_definition).prop == "definition_type"


def test_observables_and_custom_objects() -> None:
    check_object(
        {
            "type": "ipv4-addr",
            "id": "ipv4-addr--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
            "value": "203.0.113.7",
        }
    )
    assert (
        _error({"type": "ipv4-addr", "id": "ipv4-addr--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"}).prop
        == "value"
    )
    assert (
        _error({"type": "file", "id": "file--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"}).prop
        == "hashes"
    )
    check_object(
        {
            "type": "x-acme-widget",
            "spec_version": "2.1",
            "id": "x-acme-widget--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
            "size": 3,
        }
    )
    assert _error({"type": "X_Bad", "id": "x--1"}).prop == "type"
    assert (
        _error({"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"}).prop
        == "type"
    )
    assert _error(["not", "an", "object"]).problem.startswith("must be a STIX object")


def test_what_we_refuse_the_reference_tools_refuse_too() -> None:
    """Each refusal is a STIX MUST, not a whim of ours: the library or the validator agrees."""
    from stix2validator import ValidationOptions, validate_instance

    for changes in (
        {"pattern": None},
        {"spec_version": "2.0"},
        {"pattern": "[ipv4-addr:value = ]"},
        {"valid_until": "2026-11-24T12:00:00Z"},
    ):
        obj = _bad(**changes)
        with pytest.raises(StixError):
            check_object(obj)
        with pytest.raises(Exception):  # noqa: B017, PT011 - the library's own error classes
            stix2.parse(copy.deepcopy(obj), allow_custom=False, version="2.1")
    # The library lets these through; the specification (sections 3.2 and 3.2's
    # confidence scale) and stix2-validator do not.
    for changes in (
        {"modified": "2026-11-23T12:00:00.000Z"},
        {"modified": "2026-11-24T12:00:00Z"},
        {"confidence": 101},
    ):
        obj = _bad(**changes)
        with pytest.raises(StixError):
            check_object(obj)
        assert not validate_instance(obj, ValidationOptions(version="2.1")).is_valid


def test_check_objects_names_the_position_and_collects_tlp_markings() -> None:
    objects = [indicator(i) for i in range(5)]
    objects[3]["pattern"] = "[x:y = 'unterminated]"
    with pytest.raises(StixError, match=r"objects\[3\] \(indicator--.*\)\.pattern: at offset"):
        check_objects(objects)
    local = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
        "created": NOW,
        "definition_type": "tlp",
        "definition": {"tlp": "red"},
    }
    assert check_objects([local, indicator(1)]) == {local["id"]: "RED"}


def test_library_objects_are_many_kinds() -> None:
    kinds = {o["type"] for o in library_bundle()["objects"]}
    assert {
        "indicator",
        "malware",
        "infrastructure",
        "sighting",
        "relationship",
        "marking-definition",
        "ipv4-addr",
        "observed-data",
    } <= kinds
    assert len(library_objects()) >= 20
