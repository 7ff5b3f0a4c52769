"""The hand-written STIX pattern parser agrees with the OASIS reference (stix2-patterns).

A corpus of valid and invalid patterns (the specification's examples, each
grammar rule, each lexical edge), then generated ones: token soups from the
grammar's vocabulary and single-character mutations of valid patterns.  For
every one, ``check_pattern`` accepts exactly when ``run_validator`` (version
2.1) does.  The few places where we are deliberately stricter are pinned
separately, with the reason.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from detente.interop.pattern import MAX_PATTERN, PatternError, check_pattern

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

VALID = [
    # STIX 2.1 Part 9 examples.
    "[file:hashes.'SHA-256' = '" + SHA256 + "']",
    "[email-message:from_ref.value MATCHES '.+\\\\@example\\\\.com$' AND "
    "email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\\\.exe$']",
    "[file:hashes.'SHA-256' = '" + SHA256 + "' AND file:mime_type = 'application/x-pdf']",
    "[file:hashes.MD5 = '" + MD5 + "'] OR [file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4']",
    "[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\foo\\\\bar'] WITHIN 300 SECONDS",
    "[user-account:account_type = 'unix' AND user-account:user_id = '1007' AND "
    "user-account:account_login = 'Peter'] AND [user-account:account_type = 'unix' AND "
    "user-account:user_id = '1008']",
    "[artifact:mime_type = 'application/vnd.tcpdump.pcap' AND artifact:payload_bin MATCHES "
    "'\\\\xd4\\\\xc3\\\\xb2\\\\xa1\\\\x02\\\\x00\\\\x04\\\\x00']",
    "[file:name = 'foo.dll' AND file:parent_directory_ref.path = 'C:\\\\Windows\\\\System32']",
    "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
    "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = "
    "'203.0.113.33/32']",
    "[x509-certificate:issuer = 'CN=WEBMAIL' AND x509-certificate:serial_number = "
    "'4c:0b:1d:19:74:86:a7:66:b4:1a:bf:40:27:21:76:28']",
    "[domain-name:value = 'example.com'] FOLLOWEDBY [ipv4-addr:value = '198.51.100.1/32'] "
    "WITHIN 600 SECONDS",
    "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'x']",
    "([file:name = 'a'] AND [file:name = 'b']) REPEATS 5 TIMES",
    "[ipv4-addr:value = '203.0.113.1'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
    "[process:pid IN (1, 2, 3)]",
    "[process:name NOT IN ('a', 'b')]",
    "[process:name NOT = 'a']",
    "[x:y LIKE 'a%' OR x:y ISSUBSET '10.0.0.0/8' OR x:y ISSUPERSET '10.0.0.0/24']",
    "[EXISTS windows-registry-key:values]",
    "[NOT EXISTS x:y]",
    "[x:y = h'00ff' AND x:z = b'YWJjZA==' AND x:w = b'YWI=' AND x:v = b'YWJj']",
    "[x:y = true AND x:z != false AND x:w <> -3 AND x:u >= -.5 AND x:t <= +2]",
    "[x:y > t'2020-02-29T23:59:60.123456Z']",
    "[x:'quoted property'.'with \\'quote\\'' = 'x']",
    "[x:y[0].z[*] == 'x']",
    "  ( ( [a:b = 1] ) )  ",
    "[a:b = 1] /* trailing comment */",
    "[a:b = 1] // line comment",
    "[a:b /* inside */ = 1]",
    "[a:b = 1]\u3000AND\u00a0[c:d = 2]",
    "[a:b = 1] WITHIN 5 SECONDS REPEATS 2 TIMES START t'2020-01-01T00:00:00Z' "
    "STOP t'2020-01-02T00:00:00Z'",
    "([a:b = 1]) WITHIN 5 SECONDS WITHIN 6 SECONDS",
    "[a:b = 1] WITHIN 1.5 SECONDS",
    "[a:b = 1] REPEATS 0 TIMES",
    "[file:hashes.SSDEEP = '3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C']",
    "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']",
    "[file:hashes[*] = 'anything']",
    "[file:hashes.'UNKNOWN-ALGO' = 'anything']",
    "[file:hashes.MD5 = 12345678901234567890123456789012]",
    "[a_b-c:d_e = 'x']",
    "[AND1:b = 1]",
    "[a:b = 1] AND [c:d = 2] OR [e:f = 3] FOLLOWEDBY [g:h = 4]",
    "[a:b = 1 OR c:d = 2 AND (e:f = 3 OR g:h = 4)]",
]

INVALID = [
    "",
    "   ",
    "ipv4-addr:value = '1.2.3.4'",
    "/* leading comment */ [a:b = 1]",
    "[ipv4-addr:value = '1.2.3.4'",
    "[ipv4-addr:value = '1.2.3.4']]",
    "[ipv4-addr:value == ]",
    "[ipv4-addr:value '1.2.3.4']",
    "[ipv4-addr = '1.2.3.4']",
    "[:value = '1.2.3.4']",
    "[ipv4-addr:value = '1.2.3.4'] AND",
    "[a:b = 1] WITHIN 5 SECONDS WITHIN 6 SECONDS",
    "[a:b = 1] REPEATS 2 TIMES REPEATS 3 TIMES",
    "[a:b = 1] WITHIN -5 SECONDS",
    "[a:b = 1] WITHIN 5",
    "[a:b = 1] REPEATS 1.5 TIMES",
    "[a:b = 1] START t'2020-01-01T00:00:00Z'",
    "[a:b = 1] START '2020-01-01T00:00:00Z' STOP t'2020-01-01T00:00:00Z'",
    "[a:b > t'2020-13-01T00:00:00Z']",
    "[a:b > t'2020-01-01T24:00:00Z']",
    "[a:b > t'2020-01-01T00:00:00']",
    "[a:b = 'unterminated]",
    "[a:b = 'bad \\n escape']",
    "[a:b = h'abc']",
    "[a:b = h'zz']",
    "[a:b = b'']",
    "[a:b = b'abc']",
    "[a:b = b'YWJjZA=']",
    "[a:b > true]",
    "[a:b IN 'x']",
    "[a:b IN ('x',)]",
    "[a:b LIKE 5]",
    "[a:b MATCHES h'00']",
    "[a:b NOT EXISTS]",
    "[EXISTS]",
    "[NOT a:b = 1]",
    "[a:b-c = 1]",
    "[a:b.c-d = 1]",
    "[AND:b = 1]",
    "[a:LAST = 1]",
    "[a:b = 007]",
    "[a:b = trueX]",
    "[a:b = TRUE]",
    "[a:b = 1] and [c:d = 2]",
    "[a:b = 1] FOLLOWEDBY",
    "[a:b[-1] = 1]",
    "[a:b[x] = 1]",
    "[a:b = 1] /* unterminated",
    "[a:b = 1] #",
    "[a:b ! 1]",
    "[a:b = 1];",
    "[file:hashes.MD5 = 'not a hash']",
    "[file:hashes.'SHA-256' = '" + MD5 + "']",
    "[file:hashes.MD5 IN ('" + MD5 + "')]",
    "[file:hashes.MD5 LIKE 'd41d%']",
    "[file:hashes[0] = 'x']",
    "[file:hashes.MD5 = h'" + MD5 + "']",
    "[a:b = 1] START t'2020-01-01T00:00:00Z' STOP t'2020-01-01T00:00:00Z' "
    "START t'2020-01-01T00:00:00Z' STOP t'2020-01-01T00:00:00Z'",
    "[]",
    "()",
    "([a:b = 1]",
    "[([a:b = 1])]",
]


def reference(pattern: str) -> bool:
    try:
        return not run_validator(pattern, stix_version="2.1")
    except Exception:  # the reference crashes on some inputs ([-1] indexes): refused  # noqa: BLE001
        return False


def ours(pattern: str) -> bool:
    try:
        check_pattern(pattern)
    except PatternError:
        return False
    return True


@pytest.mark.parametrize("pattern", VALID)
def test_valid_patterns_pass_both(pattern: str) -> None:
    assert reference(pattern), "corpus error: the reference refuses it"
    assert ours(pattern)


@pytest.mark.parametrize("pattern", INVALID)
def test_invalid_patterns_fail_both(pattern: str) -> None:
    assert not reference(pattern), "corpus error: the reference accepts it"
    assert not ours(pattern)


# Fragments of the grammar's vocabulary, valid and not, for token soups.
_PIECES = [
    "[",
    "]",
    "(",
    ")",
    "a:b",
    "ipv4-addr:value",
    "file:hashes.MD5",
    "x:y[*]",
    "x:y[0]",
    ".z",
    ":",
    " = ",
    " != ",
    " > ",
    " <= ",
    " IN ",
    " LIKE ",
    " MATCHES ",
    " NOT ",
    " EXISTS ",
    " AND ",
    " OR ",
    " FOLLOWEDBY ",
    " WITHIN ",
    " SECONDS",
    " REPEATS ",
    " TIMES",
    " START ",
    " STOP ",
    "1",
    "-1",
    "1.5",
    "'s'",
    "'" + MD5 + "'",
    "h'00'",
    "b'YWJj'",
    "true",
    "t'2020-01-01T00:00:00Z'",
    ",",
    " ",
    "'",
    "/*x*/",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=14))
def test_token_soups_agree(pieces: list[str]) -> None:
    pattern = "".join(pieces)
    assert ours(pattern) == reference(pattern), pattern


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.integers(min_value=0, max_value=400),
    st.sampled_from(["delete", "insert", "replace"]),
    st.sampled_from(list("[]()':.,=<>!-+* \\/abtTZ019AN")),
)
def test_mutations_of_valid_patterns_agree(pattern: str, at: int, how: str, char: str) -> None:
    i = at % (len(pattern) + 1)
    if how == "delete":
        mutated = pattern[:i] + pattern[i + 1 :]
    elif how == "insert":
        mutated = pattern[:i] + char + pattern[i:]
    else:
        mutated = pattern[:i] + char + pattern[i + 1 :]
    assert ours(mutated) == reference(mutated), mutated


# -- deliberately stricter than the reference ----------------------------------------------


def test_a_digest_followed_by_a_newline_is_refused() -> None:
    # The reference's re.match(r"^[a-fA-F0-9]{32}$") lets "<digest>\n" through ($ matches
    # before a final newline); no MD5 has a newline in it.
    pattern = "[file:hashes.MD5 = '" + MD5 + "\n']"
    assert reference(pattern)
    assert not ours(pattern)


def test_an_md6_value_must_be_a_whole_digest() -> None:
    # The reference's MD6 expression lacks a group around its alternatives, so any value
    # that starts with 32 hex digits passes.
    pattern = "[file:hashes.MD6 = '" + MD5 + "-and-anything']"
    assert reference(pattern)
    assert not ours(pattern)


def test_size_and_nesting_are_bounded() -> None:
    with pytest.raises(PatternError, match="longer than"):
        check_pattern("[a:b = '" + "x" * MAX_PATTERN + "']")
    deep = "(" * 150 + "[a:b = 1]" + ")" * 150
    with pytest.raises(PatternError, match="nested"):
        check_pattern(deep)


def test_errors_say_where_and_what() -> None:
    with pytest.raises(PatternError) as caught:
        check_pattern("[ipv4-addr:value = ]")
    assert caught.value.offset == 19
    assert "expected a literal" in str(caught.value)


_NAMES = st.sampled_from(
    [
        "a",
        "ipv4-addr",
        "x-y",
        "true",
        "false",
        "hashes",
        "MD5",
        "AND",
        "t",
        "h",
        "b",
        "_x",
        "x_hashes",
        "x-true",
        "9a",
        "a-",
        "value",
        "name",
    ]
)
_VALUES = st.text(alphabet="ab'\\ \n%", max_size=6)


@settings(max_examples=300, deadline=None)
@given(_NAMES, st.lists(_NAMES, min_size=1, max_size=3), _VALUES)
def test_the_one_comparison_fast_path_agrees(obj_type: str, path: list[str], value: str) -> None:
    pattern = f"[{obj_type}:{'.'.join(path)} = '{value}']"
    assert ours(pattern) == reference(pattern), pattern
