"""STIX 2.1 Patterning: a hand-written lexer and recursive-descent parser.

Implements the grammar of STIX Version 2.1 (OASIS Standard), Part 9
"STIX Patterning", as the OASIS reference validator (``stix2-patterns``, the
ANTLR grammar ``STIXPattern.g4``) accepts it, tens of times faster (hundreds
for the one-comparison patterns most feeds are made of), so that ingest can
check every pattern of a million-indicator bundle.

:func:`check_pattern` returns nothing or raises :class:`PatternError` naming
the character offset and what was expected.  It refuses every pattern the
reference refuses; ``tests/interop/test_pattern.py`` runs both on a corpus of
valid and invalid patterns and on generated ones and requires them to agree.
Besides the grammar it applies the reference's two semantic rules:

* an observation expression in brackets takes at most one qualifier of each
  kind (``WITHIN``, ``REPEATS``, ``START``/``STOP``), section 9.5;
* a comparison on ``hashes.<algorithm>`` for an algorithm of the hash
  vocabulary (section 10.3) must compare with a well-formed digest.

Deliberately stricter than the reference (each case pinned by a test): a
digest followed by a newline (the reference's ``re.match(r"...$")`` lets a
trailing ``\\n`` through) and an MD6 value that merely *starts* with a
digest (a misplaced alternation in the reference's regular expression).

Lexing follows ANTLR's rule: the longest match wins, and on a tie the rule
defined first (so ``AND`` is a keyword, ``ANDY`` an identifier, ``true`` a
boolean).  Not here: evaluating patterns against observed data.
"""

from __future__ import annotations

import re

__all__ = ["MAX_PATTERN", "PatternError", "check_pattern"]

# A pattern longer than this is refused before it is read: real patterns are
# well under a kilobyte, and the bound keeps the parser's recursion (one level
# per parenthesis) and time small for any input.
MAX_PATTERN = 64 * 1024
_MAX_NESTING = 100


class PatternError(ValueError):
    """A STIX pattern that does not parse; ``offset`` is where reading stopped."""

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"at offset {offset}: {problem}")
        self.offset = offset
        self.problem = problem


# -- lexer ----------------------------------------------------------------------------

# Token kinds (small ints compare fastest).
(
    T_INT_NEG,
    T_INT_POS,
    T_FLOAT_NEG,
    T_FLOAT_POS,
    T_HEX,
    T_BINARY,
    T_STRING,
    T_BOOL,
    T_TIMESTAMP,
    T_KEYWORD,
    T_ID,  # identifier without a hyphen
    T_ID_HYPHEN,
    T_OP,  # = == != <> < <= > >=
    T_PUNCT,  # : . , ( ) [ ] + - ^ / * and the lone quote
    T_INVALID,
    T_EOF,
) = range(16)

_KEYWORDS = frozenset(
    (
        "AND",
        "OR",
        "NOT",
        "FOLLOWEDBY",
        "LIKE",
        "MATCHES",
        "ISSUPERSET",
        "ISSUBSET",
        "EXISTS",
        "LAST",
        "IN",
        "START",
        "STOP",
        "SECONDS",
        "WITHIN",
        "REPEATS",
        "TIMES",
    )
)
_WS = "\t\n\r\x0b\x0c \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# One alternation, tried in order at each position.  The order reproduces
# ANTLR's longest match: the prefixed literals (t'..', h'..', b'..') before the
# identifier they start with; floats before integers before the sign
# characters; comments before '/'; two-character operators before their prefix.
_TOKEN = re.compile(
    rf"(?P<ws>[{_WS}]+)"
    r"|(?P<comment>/\*.*?\*/|//[^\r\n]*)"
    r"|(?P<ts>t'\d{4}-(?:0[1-9]|1[012])-(?:0[1-9]|[12]\d|3[01])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?Z')"
    r"|(?P<hex>h'(?:[0-9A-Fa-f]{2})*')"
    r"|(?P<bin>b'(?:[A-Za-z0-9+/]{4})*"
    r"(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)')"
    r"|(?P<str>'(?:[^'\\]|\\['\\])*')"
    r"|(?P<float>[+-]?[0-9]*\.[0-9]+)"
    r"|(?P<int>[+-]?(?:0|[1-9][0-9]*))"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|(?P<op>==|=|!=|<>|<=|>=|<|>)"
    r"|(?P<punct>[:.,()\[\]+\-^/*'])",
    re.DOTALL,
)
_KIND = {
    "ts": T_TIMESTAMP,
    "hex": T_HEX,
    "bin": T_BINARY,
    "str": T_STRING,
    "op": T_OP,
    "punct": T_PUNCT,
}


def _tokens(text: str) -> list[tuple[int, str, int]]:
    """(kind, text, offset) for each token, then an EOF token."""
    out: list[tuple[int, str, int]] = []
    append = out.append
    match = _TOKEN.match
    pos, end = 0, len(text)
    while pos < end:
        m = match(text, pos)
        if m is None:
            append((T_INVALID, text[pos], pos))
            pos += 1
            continue
        group = m.lastgroup
        value = m.group()
        if group == "id":
            if value in _KEYWORDS:
                kind = T_KEYWORD
            elif value in ("true", "false"):
                kind = T_BOOL
            elif "-" in value:
                kind = T_ID_HYPHEN
            else:
                kind = T_ID
            append((kind, value, pos))
        elif group == "int":
            append((T_INT_NEG if value[0] == "-" else T_INT_POS, value, pos))
        elif group == "float":
            append((T_FLOAT_NEG if value[0] == "-" else T_FLOAT_POS, value, pos))
        elif group not in ("ws", "comment"):
            append((_KIND[group], value, pos))  # type: ignore[index]
        pos = m.end()
    append((T_EOF, "", end))
    return out


# -- parser ---------------------------------------------------------------------------

_ORDERABLE = frozenset(
    (T_INT_POS, T_INT_NEG, T_FLOAT_POS, T_FLOAT_NEG, T_STRING, T_BINARY, T_HEX, T_TIMESTAMP)
)
_PRIMITIVE = _ORDERABLE | {T_BOOL}
_EQUALITY = frozenset(("=", "==", "!=", "<>"))
_STRING_OPS = frozenset(("LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"))
_QUALIFIERS = frozenset(("WITHIN", "REPEATS", "START"))
_STAR = object()  # the [*] index step

# Hash algorithms of the hash-algorithm-ov vocabulary, as the reference names
# them (upper case, hyphens and quotes dropped), with the digest forms allowed.
_HEX = "[a-fA-F0-9]"
_HASHES: dict[str, re.Pattern[str]] = {
    name: re.compile(rx)
    for name, rx in {
        "MD5": f"{_HEX}{{32}}",
        "MD6": f"{_HEX}{{32}}|{_HEX}{{40}}|{_HEX}{{56}}|{_HEX}{{64}}|{_HEX}{{96}}|{_HEX}{{128}}",
        "RIPEMD160": f"{_HEX}{{40}}",
        "SHA1": f"{_HEX}{{40}}",
        "SHA224": f"{_HEX}{{56}}",
        "SHA256": f"{_HEX}{{64}}",
        "SHA384": f"{_HEX}{{96}}",
        "SHA512": f"{_HEX}{{128}}",
        "SHA3224": f"{_HEX}{{56}}",
        "SHA3256": f"{_HEX}{{64}}",
        "SHA3384": f"{_HEX}{{96}}",
        "SHA3512": f"{_HEX}{{128}}",
        "SSDEEP": "[a-zA-Z0-9/+:.]{1,128}",
        "WHIRLPOOL": f"{_HEX}{{128}}",
    }.items()
}


def _unquote(literal: str) -> str:
    return literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")


class _Parser:
    __slots__ = ("depth", "i", "tokens", "version20")

    def __init__(self, tokens: list[tuple[int, str, int]], version20: bool) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.version20 = version20

    def fail(self, expected: str) -> PatternError:
        kind, text, offset = self.tokens[self.i]
        found = "the end of the pattern" if kind == T_EOF else repr(text)
        return PatternError(offset, f"expected {expected}, found {found}")

    def punct(self, char: str) -> bool:
        kind, text, _ = self.tokens[self.i]
        if kind == T_PUNCT and text == char:
            self.i += 1
            return True
        return False

    def keyword(self, word: str) -> bool:
        kind, text, _ = self.tokens[self.i]
        if kind == T_KEYWORD and text == word:
            self.i += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.punct(char):
            raise self.fail(repr(char))

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.fail(word)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise PatternError(self.tokens[self.i][2], f"nested more than {_MAX_NESTING} deep")

    # pattern : observationExpressions EOF
    def pattern(self) -> None:
        self.observations()
        if self.tokens[self.i][0] != T_EOF:
            raise self.fail("AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern")

    # FOLLOWEDBY binds loosest, then OR, then AND (section 9.5, table of precedence).
    def observations(self) -> None:
        self.observation_or()
        while self.keyword("FOLLOWEDBY"):
            self.observation_or()

    def observation_or(self) -> None:
        self.observation_and()
        while self.keyword("OR"):
            self.observation_and()

    def observation_and(self) -> None:
        self.observation()
        while self.keyword("AND"):
            self.observation()

    def observation(self) -> None:
        if self.punct("["):
            self.comparison()
            self.expect_punct("]")
            simple = True
        elif self.punct("("):
            self.nest()
            self.observations()
            self.expect_punct(")")
            self.depth -= 1
            simple = False
        else:
            raise self.fail("'[' or '('")
        seen: set[str] = set()
        while True:
            kind, text, offset = self.tokens[self.i]
            if kind != T_KEYWORD or text not in _QUALIFIERS:
                return
            self.i += 1
            if text == "WITHIN":
                if self.tokens[self.i][0] not in (T_INT_POS, T_FLOAT_POS):
                    raise self.fail("a positive number of seconds")
                self.i += 1
                self.expect_keyword("SECONDS")
            elif text == "REPEATS":
                if self.tokens[self.i][0] != T_INT_POS:
                    raise self.fail("a positive integer")
                self.i += 1
                self.expect_keyword("TIMES")
            else:
                if self.tokens[self.i][0] != T_TIMESTAMP:
                    raise self.fail("a timestamp t'YYYY-MM-DDTHH:MM:SSZ'")
                self.i += 1
                self.expect_keyword("STOP")
                if self.tokens[self.i][0] != T_TIMESTAMP:
                    raise self.fail("a timestamp t'YYYY-MM-DDTHH:MM:SSZ'")
                self.i += 1
            # The reference refuses two qualifiers of one kind directly on a
            # bracketed expression; on a parenthesised group it allows them.
            if simple:
                if text in seen:
                    raise PatternError(offset, f"{text} qualifier given twice")
                seen.add(text)

    def comparison(self) -> None:
        self.comparison_and()
        while self.keyword("OR"):
            self.comparison_and()

    def comparison_and(self) -> None:
        self.prop_test()
        while self.keyword("AND"):
            self.prop_test()

    def prop_test(self) -> None:
        if self.punct("("):
            self.nest()
            self.comparison()
            self.expect_punct(")")
            self.depth -= 1
            return
        negated = self.keyword("NOT")
        if self.keyword("EXISTS"):
            if self.version20:
                raise PatternError(self.tokens[self.i - 1][2], "EXISTS is not STIX 2.0 patterning")
            self.object_path()
            return
        if negated:
            raise self.fail("EXISTS")
        path = self.object_path()
        self.keyword("NOT")
        kind, text, offset = self.tokens[self.i]
        if kind == T_OP:
            self.i += 1
            allowed = _PRIMITIVE if text in _EQUALITY else _ORDERABLE
            kind, value, _ = self.tokens[self.i]
            if kind not in allowed:
                raise self.fail("a literal" if allowed is _PRIMITIVE else "an orderable literal")
            self.i += 1
        elif kind == T_KEYWORD and text == "IN":
            self.i += 1
            value = self.set_literal()
        elif kind == T_KEYWORD and text in _STRING_OPS:
            self.i += 1
            kind, value, _ = self.tokens[self.i]
            if kind != T_STRING:
                raise self.fail("a string literal")
            self.i += 1
        else:
            raise self.fail("a comparison operator")
        if "hashes" in path:
            self.check_hash(path, value, offset)

    def set_literal(self) -> str:
        self.expect_punct("(")
        parts = ["("]
        if not self.punct(")"):
            while True:
                kind, text, _ = self.tokens[self.i]
                if kind not in _PRIMITIVE:
                    raise self.fail("a literal")
                self.i += 1
                parts.append(text)
                if self.punct(")"):
                    break
                self.expect_punct(",")
                parts.append(",")
        parts.append(")")
        return "".join(parts)

    def object_path(self) -> list[object]:
        kind, text, _ = self.tokens[self.i]
        if kind not in (T_ID, T_ID_HYPHEN):
            raise self.fail("an object type")
        self.i += 1
        self.expect_punct(":")
        kind, text, _ = self.tokens[self.i]
        if kind == T_ID:
            path: list[object] = [text]
        elif kind == T_STRING:
            path = [_unquote(text)]
        else:
            raise self.fail("a property name")
        self.i += 1
        while True:
            if self.punct("."):
                kind, text, _ = self.tokens[self.i]
                if kind == T_ID:
                    path.append(text)
                elif kind == T_STRING:
                    path.append(_unquote(text))
                else:
                    raise self.fail("a property name")
                self.i += 1
            elif self.punct("["):
                kind, text, offset = self.tokens[self.i]
                if kind == T_PUNCT and text == "*":
                    path.append(_STAR)
                elif kind == T_INT_POS:
                    path.append(int(text))
                elif kind == T_INT_NEG:
                    # The grammar admits [-1]; the reference then fails on it
                    # (its inspector reads only a positive index), so no STIX
                    # tool downstream could take it either.
                    raise PatternError(offset, "a list index must not be negative")
                else:
                    raise self.fail("a list index or '*'")
                self.i += 1
                self.expect_punct("]")
            else:
                return path

    def check_hash(self, path: list[object], value: str, offset: int) -> None:
        selector = path[-1]
        if selector is _STAR:
            return
        if isinstance(selector, int):
            raise PatternError(offset, "a hash must be selected by algorithm name, not index")
        assert isinstance(selector, str)  # noqa: S101 - for the type checker
        algorithm = selector.upper().replace("-", "").replace("'", "")
        digest = _HASHES.get(algorithm)
        if digest is not None and digest.fullmatch(value.replace("'", "")) is None:
            raise PatternError(offset, f"{value[:80]!r} is not a valid {selector[:40]} hash")


# The commonest pattern by far, one equality on a plain property path:
# [ipv4-addr:value = '203.0.113.7'].  When the whole pattern has exactly this
# shape it is valid (each piece lexes as the grammar's token: lower-case names
# are never keywords, a quoted string ends at its first unescaped quote), so it
# skips the tokenizer.  Excluded: ``true``/``false`` as names (they lex as
# booleans) and hash paths (their values have rules of their own).
_SIMPLE = re.compile(
    r"\[[a-z][a-z0-9-]*:([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*) = '(?:[^'\\]|\\['\\])*'\]"
)
_NOT_SIMPLE = re.compile(r"\b(?:true|false|hashes)\b")


def check_pattern(pattern: object, *, version: str = "2.1") -> None:
    """Raise :class:`PatternError` unless ``pattern`` is a valid STIX 2.1 pattern.

    ``version`` "2.0" also refuses what STIX 2.0 patterning lacks (``EXISTS``).
    """
    if not isinstance(pattern, str):
        raise PatternError(0, "a pattern must be a string")
    if len(pattern) > MAX_PATTERN:
        raise PatternError(MAX_PATTERN, f"longer than {MAX_PATTERN} characters")
    simple = _SIMPLE.fullmatch(pattern)
    if simple is not None and _NOT_SIMPLE.search(pattern, 0, simple.end(1)) is None:
        return
    # The reference first checks that the pattern opens with '[' after any
    # parentheses and white space (so a leading comment is refused).
    for offset, char in enumerate(pattern):
        if char != "(" and not char.isspace():
            if char != "[":
                raise PatternError(offset, "a pattern must start with '[' (or '(' then '[')")
            break
    else:
        raise PatternError(len(pattern), "the pattern is empty")
    _Parser(_tokens(pattern), version == "2.0").pattern()
