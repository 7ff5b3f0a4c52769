"""STIX bundles in forms: a bundle made by stix2 passes; each kind of bad bundle is named."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import stix2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detente.core.forms import FormError
from detente.stix import MAX_DEPTH, MAX_OBJECTS, validate_bundle, validate_form_stix

UUID = "c6bbed0b-fe9e-43dc-9693-12551f1b5350"
EXT_DEF = "extension-definition--6c453e0f-9895-498f-a273-2e2dda473377"


def _valid_bundle() -> dict[str, Any]:
    indicator = stix2.Indicator(
        name="C2 server",
        pattern="[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'c2.example']",
        pattern_type="stix",
        valid_from="2026-11-24T12:00:00Z",
        object_marking_refs=[stix2.TLP_AMBER],
    )
    malware = stix2.Malware(name="Example locker", is_family=True, malware_types=["ransomware"])
    relationship = stix2.Relationship(indicator, "indicates", malware)
    address = stix2.IPv4Address(value="198.51.100.7")
    bundle = stix2.Bundle(indicator, malware, relationship, address, stix2.TLP_AMBER)
    parsed: dict[str, Any] = json.loads(bundle.serialize())
    return parsed


VALID = _valid_bundle()
IND = VALID["objects"][0]["id"]  # indicator
MAL = VALID["objects"][1]["id"]  # malware


def _bundle() -> dict[str, Any]:
    return copy.deepcopy(VALID)


def _problem(bundle: Any, field: str = "indicators") -> FormError:
    with pytest.raises(FormError) as caught:
        validate_bundle(bundle, field)
    error = caught.value
    assert str(error).isprintable()
    assert error.field.startswith(field)
    return error


def test_a_bundle_made_by_stix2_passes() -> None:
    assert [o["type"] for o in VALID["objects"]] == [
        "indicator",
        "malware",
        "relationship",
        "ipv4-addr",
        "marking-definition",
    ]
    validate_bundle(_bundle(), "indicators")


def test_an_empty_bundle_passes() -> None:
    validate_bundle({"type": "bundle", "id": f"bundle--{UUID}"}, "indicators")
    validate_bundle({"type": "bundle", "id": f"bundle--{UUID}", "objects": []}, "indicators")


def test_a_toplevel_property_extension_is_not_custom_content() -> None:
    bundle = _bundle()
    bundle["objects"][0]["extensions"] = {
        EXT_DEF: {"extension_type": "toplevel-property-extension"}
    }
    bundle["objects"][0]["rank"] = 5
    validate_bundle(bundle, "indicators")


def test_a_pattern_declared_2_0_must_also_be_a_2_1_pattern() -> None:
    bundle = _bundle()
    bundle["objects"][0]["pattern_version"] = "2.0"
    validate_bundle(bundle, "indicators")
    # The 2.0 grammar lets a qualifier repeat; 2.1 does not.
    pattern = "[ipv4-addr:value = '198.51.100.7'] WITHIN 5 SECONDS WITHIN 6 SECONDS"
    bundle["objects"][0]["pattern"] = pattern
    with pytest.raises(FormError, match=rf"^indicators\.objects\[0\] \({IND}\)\.pattern: "):
        validate_bundle(bundle, "indicators")
    bundle["objects"][0]["pattern_version"] = "2.1"
    with pytest.raises(FormError, match=rf"^indicators\.objects\[0\] \({IND}\)\.pattern: "):
        validate_bundle(bundle, "indicators")
    bundle["objects"][0]["pattern"] = pattern.removesuffix(" WITHIN 6 SECONDS")
    validate_bundle(bundle, "indicators")


def test_forms_with_bundles_are_checked_and_others_ignored() -> None:
    validate_form_stix("notification", {"indicators": _bundle()})
    validate_form_stix("request", {"evidence": _bundle()})
    validate_form_stix("request", {})
    validate_form_stix("response", {"indicators": "not looked at"})
    bad = _bundle()
    bad["objects"][1]["is_family"] = "yes"
    with pytest.raises(FormError, match=rf"^evidence\.objects\[1\] \({MAL}\)\.is_family: "):
        validate_form_stix("request", {"evidence": bad})
    with pytest.raises(FormError, match=rf"^indicators\.objects\[1\] \({MAL}\)\.is_family: "):
        validate_form_stix("notification", {"indicators": bad})


# -- one case per kind of bad object: (change to objects[0], property named, words) ----------


def _set(key: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        obj[key] = value

    return change


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        for key in keys:
            del obj[key]

    return change


BAD_INDICATOR = {
    "malformed pattern": (_set("pattern", "[ipv4-addr:value = ]"), "pattern", "mismatched input"),
    "pattern without brackets": (
        _set("pattern", "ipv4-addr:value = '1.2.3.4'"),
        "pattern",
        "missing square brackets",
    ),
    "pattern not a string": (_set("pattern", 5), "pattern", ""),
    "no pattern_type": (_drop("pattern_type"), "pattern_type", "is required"),
    # stix2 would fill in these four with "now" or a fresh id.
    "no valid_from": (_drop("valid_from"), "valid_from", "is required"),
    "no created": (_drop("created"), "created", "is required"),
    "no modified": (_drop("modified"), "modified", "is required"),
    "no spec_version": (_drop("spec_version"), "spec_version", "is required"),
    "no pattern_type nor valid_from": (
        _drop("pattern_type", "valid_from"),
        "pattern_type",
        "is required",
    ),
    "spec_version 2.0": (_set("spec_version", "2.0"), "spec_version", "2.1"),
    "timestamp out of range": (_set("created", "2026-13-01T00:00:00Z"), "created", "UTC time"),
    "timestamp loosely written": (_set("created", "2026-1-1T0:0:0Z"), "created", "UTC time"),
    "timestamp with an offset": (
        _set("modified", "2026-11-24T12:00:00+01:00"),
        "modified",
        "UTC time",
    ),
    "timestamp not a string": (_set("valid_from", 1_700_000_000), "valid_from", "UTC time"),
    "valid_until before valid_from": (
        _set("valid_until", "2020-01-01T00:00:00Z"),
        "",
        "valid_until",
    ),
    "custom property": (_set("x_acme_score", 7), "x_acme_score", "not a STIX 2.1 property"),
    "custom property without x_": (_set("score", 7), "score", "not a STIX 2.1 property"),
    # The library's constructors take custom_properties and then allow custom content.
    "custom_properties keyword": (
        _set("custom_properties", {"x_acme_score": 7}),
        "custom_properties",
        "not a STIX 2.1 property",
    ),
    "constructor keyword as property": (
        _set("allow_custom", True),
        "allow_custom",
        "not a STIX 2.1 property",
    ),
    "property name that is not a name": (_set("x-acme", 1), "x-acme", "not a property name"),
    "property name that is not a string": (_set(1, 1), "1", "not a property name"),
    "custom property inside external_references": (
        _set("external_references", [{"source_name": "acme", "url": "https://a.example", "x": 1}]),
        "external_references",
        "Unexpected properties",
    ),
    "unknown extension": (_set("extensions", {"acme-ext": {}}), "extensions", "acme-ext"),
    "reference to a non-marking": (_set("object_marking_refs", [MAL]), "object_marking_refs", ""),
    "unknown vocabulary in an enum": (_set("revoked", "maybe"), "revoked", ""),
}


@pytest.mark.parametrize("case", BAD_INDICATOR, ids=list(BAD_INDICATOR))
def test_a_bad_indicator_is_named_by_field_object_and_property(case: str) -> None:
    change, prop, words = BAD_INDICATOR[case]
    bundle = _bundle()
    change(bundle["objects"][0])
    error = _problem(bundle)
    where = f"indicators.objects[0] ({IND})" + (f".{prop}" if prop else "")
    assert error.field == where
    assert str(error).startswith(f"{where}: ")
    assert words in str(error)


BAD_ID = {
    "wrong type prefix": f"malware--{IND.split('--')[1]}",
    "not a UUID": "indicator--1234",
    "UUID in braces": f"indicator--{{{IND.split('--')[1]}}}",
    "UUID without hyphens": "indicator--" + IND.split("--")[1].replace("-", ""),
    "UUID as a URN": f"indicator--urn:uuid:{IND.split('--')[1]}",
    "UUID of the wrong variant": "indicator--c6bbed0b-fe9e-43dc-1693-12551f1b5350",
}


@pytest.mark.parametrize("case", BAD_ID, ids=list(BAD_ID))
def test_a_bad_id_is_named(case: str) -> None:
    bundle = _bundle()
    bundle["objects"][0]["id"] = BAD_ID[case]
    error = _problem(bundle)
    assert error.field == f"indicators.objects[0] ({BAD_ID[case]}).id"


def test_a_missing_id_is_named() -> None:
    bundle = _bundle()
    del bundle["objects"][2]["id"]
    error = _problem(bundle)
    assert str(error) == "indicators.objects[2].id: is required"


def test_a_non_string_id_is_named() -> None:
    bundle = _bundle()
    bundle["objects"][2]["id"] = 5
    assert _problem(bundle).field == "indicators.objects[2].id"


def test_an_unprintable_id_is_shown_escaped() -> None:
    bundle = _bundle()
    bundle["objects"][0]["id"] = "indicator--\u202e" + "a" * 500
    error = _problem(bundle)
    assert "\u202e" not in str(error)
    assert "\\u202e" in str(error)
    assert len(str(error)) < 300


@pytest.mark.parametrize("name", ["\n", "x\u202eevil", "a\x1b[2J"], ids=repr)
def test_an_unprintable_property_name_is_shown_escaped(name: str) -> None:
    bundle = _bundle()
    bundle["objects"][0][name] = 1
    error = _problem(bundle)
    assert error.field.startswith(f"indicators.objects[0] ({IND}).")
    assert str(error).isprintable()


def test_duplicate_ids_are_refused() -> None:
    bundle = _bundle()
    bundle["objects"].append(copy.deepcopy(bundle["objects"][1]))
    error = _problem(bundle)
    assert str(error) == f"indicators.objects[5] ({MAL}).id: appears twice in the bundle"


def test_duplicate_ids_differing_in_case_are_refused() -> None:
    bundle = _bundle()
    twin = copy.deepcopy(bundle["objects"][1])
    twin["id"] = twin["id"].upper().replace("MALWARE--", "malware--")
    bundle["objects"].append(twin)
    assert _problem(bundle).field == f"indicators.objects[5] ({twin['id']}).id"


def test_too_many_objects_are_refused() -> None:
    bundle = _bundle()
    bundle["objects"] = [VALID["objects"][1]] * (MAX_OBJECTS + 1)
    error = _problem(bundle)
    assert error.field == "indicators.objects"
    assert str(MAX_OBJECTS) in str(error)


def test_as_many_objects_as_allowed_are_counted_not_refused() -> None:
    # At the limit, the count passes and the first duplicate is what fails.
    bundle = _bundle()
    bundle["objects"] = [VALID["objects"][1]] * MAX_OBJECTS
    assert _problem(bundle).field == f"indicators.objects[1] ({MAL}).id"


@pytest.mark.parametrize("bundle", [None, "bundle", ["bundle"], 7], ids=repr)
def test_a_bundle_that_is_not_an_object_is_refused(bundle: Any) -> None:
    assert str(_problem(bundle)).startswith("indicators: ")


def test_a_bundle_of_another_type_is_refused() -> None:
    bundle = _bundle()
    bundle["type"] = "report"
    assert _problem(bundle).field == "indicators.type"


@pytest.mark.parametrize("objects", [{}, "x", None, VALID["objects"][0]], ids=repr)
def test_objects_that_are_not_a_list_are_refused(objects: Any) -> None:
    bundle = _bundle()
    bundle["objects"] = objects
    assert _problem(bundle).field == "indicators.objects"


@pytest.mark.parametrize("obj", [None, "indicator", [], {"id": IND}, {"type": 3}], ids=repr)
def test_an_object_that_is_not_a_stix_object_is_refused(obj: Any) -> None:
    bundle = _bundle()
    bundle["objects"][3] = obj
    assert _problem(bundle).field == "indicators.objects[3]"


def test_a_bundle_property_is_checked() -> None:
    bundle = _bundle()
    bundle["spec_version"] = "2.0"  # a STIX 2.0 bundle
    assert _problem(bundle).field == "indicators.spec_version"
    bundle = _bundle()
    bundle["id"] = "bundle--1"
    assert _problem(bundle).field == "indicators.id"


def test_a_bundle_inside_a_bundle_is_refused() -> None:
    bundle = _bundle()
    inner = _bundle()
    bundle["objects"].append(inner)
    assert _problem(bundle).field == f"indicators.objects[5] ({inner['id']}).type"


def test_an_unknown_type_is_refused() -> None:
    bundle = _bundle()
    bundle["objects"].append({"type": "x-acme-case", "id": f"x-acme-case--{UUID}"})
    error = _problem(bundle)
    assert error.field == f"indicators.objects[5] (x-acme-case--{UUID}).type"
    assert "x-acme-case" in str(error)


def test_a_type_only_an_extension_definition_declares_is_refused() -> None:
    # stix2.parse returns such an object as it came, without any check.
    bundle = _bundle()
    bundle["objects"].append(
        {
            "type": "x-acme-case",
            "spec_version": "1.0",
            "id": f"x-acme-case--{UUID}",
            "extensions": {EXT_DEF: {"extension_type": "new-sdo"}},
        }
    )
    assert _problem(bundle).field == f"indicators.objects[5] (x-acme-case--{UUID}).type"


def test_deep_nesting_is_refused_before_the_library_recurses() -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(MAX_DEPTH * 100):
        inner["a"] = {}
        inner = inner["a"]
    bundle = _bundle()
    bundle["objects"][0]["extensions"] = {
        EXT_DEF: {"extension_type": "property-extension", "a": nested}
    }
    error = _problem(bundle)
    assert error.field == "indicators"
    assert "nested" in str(error)


def test_nesting_just_within_the_limit_is_checked_by_the_library() -> None:
    bundle = _bundle()
    # bundle(1) > objects(2) > indicator(3) > extensions(4) > extension(5) > ... list
    depth_left = MAX_DEPTH - 5
    value: Any = "leaf"
    for _ in range(depth_left):
        value = [value]
    bundle["objects"][0]["extensions"] = {
        EXT_DEF: {"extension_type": "property-extension", "a": value}
    }
    validate_bundle(bundle, "indicators")
    bundle["objects"][0]["extensions"][EXT_DEF]["a"] = [value]
    assert _problem(bundle).field == "indicators"


def test_a_pattern_too_complex_for_the_parser_is_refused() -> None:
    bundle = _bundle()
    terms = [f"ipv4-addr:value = '10.0.{i // 250}.{i % 250}'" for i in range(3000)]
    bundle["objects"][0]["pattern"] = "[" + " OR ".join(terms) + "]"
    error = _problem(bundle)
    assert str(error) == f"indicators.objects[0] ({IND}).pattern: is too complex to check"


def test_a_long_pattern_error_is_cut_to_one_short_line() -> None:
    bundle = _bundle()
    bundle["objects"][0]["pattern"] = "[file:name = 'a'\n" + "x" * 10_000 + "]"
    error = _problem(bundle)
    assert error.field == f"indicators.objects[0] ({IND}).pattern"
    assert len(str(error)) < 400


def test_an_error_in_another_object_names_that_object() -> None:
    bundle = _bundle()
    bundle["objects"][2]["relationship_type"] = ""
    rel = bundle["objects"][2]["id"]
    assert _problem(bundle).field == f"indicators.objects[2] ({rel}).relationship_type"
    bundle = _bundle()
    bundle["objects"][4]["definition"] = {"tlp": "clear"}  # not the mandated TLP:AMBER
    assert _problem(bundle).field == f"indicators.objects[4] ({stix2.TLP_AMBER.id})"


def test_the_observable_may_omit_spec_version_but_not_its_id() -> None:
    bundle = _bundle()
    del bundle["objects"][3]["spec_version"]
    validate_bundle(bundle, "indicators")
    del bundle["objects"][3]["id"]
    assert _problem(bundle).field == "indicators.objects[3].id"


def test_the_input_is_not_changed() -> None:
    bundle = _bundle()
    bundle["objects"][0]["extensions"] = {EXT_DEF: {"extension_type": "property-extension"}}
    before = copy.deepcopy(bundle)
    validate_bundle(bundle, "indicators")
    assert bundle == before


def test_importing_the_module_does_not_import_stix2() -> None:
    code = "import sys, detente.stix; assert 'stix2' not in sys.modules, 'stix2 imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- whatever a peer sends, only FormError comes out ---------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(sorted({k for o in VALID["objects"] for k in o} | {"extensions", "x"}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(VALID["objects"]) - 1), key=_keys | st.text(max_size=8), value=_json
)
def test_any_changed_property_passes_or_raises_form_error(index: int, key: str, value: Any) -> None:
    bundle = _bundle()
    bundle["objects"][index][key] = value
    error: FormError | None = None
    try:
        validate_bundle(bundle, "evidence")
    except FormError as exc:
        error = exc
    if error is not None:
        assert error.field.startswith(f"evidence.objects[{index}]")
        assert str(error).isprintable()
