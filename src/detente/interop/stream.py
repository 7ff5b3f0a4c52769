"""Reading a STIX 2.1 bundle from a file one object at a time, in constant memory.

A bundle of a million indicators is half a gigabyte of JSON; it is read in
chunks and each element of ``objects`` is decoded on its own with the
standard library's C decoder (``json.JSONDecoder.raw_decode``), so memory
holds one chunk and one object whatever the bundle's size.

Why not ``ijson``: its C backend builds nested containers without a depth
limit, and two megabytes of ``[`` took the whole process down in our test.
The standard decoder refuses nesting past the interpreter's recursion limit
with an exception (caught here), and :mod:`detente.interop.validate` bounds
depth further per object.  ``NaN`` and ``Infinity`` (not JSON) are refused,
as are an object over :data:`MAX_OBJECT_CHARS` and a file that is not
UTF-8.

The bundle's own properties (``type``, ``id``) may come before or after
``objects``; :class:`BundleReader` checks each when it reads it, so a
caller that must store nothing from a bad bundle reads it through once
before storing (``detente indicators import`` does: a validating pass, then
a storing pass).  Not here: checking the objects (:mod:`.validate`).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from detente.interop.validate import StixError, safe

__all__ = ["MAX_OBJECT_CHARS", "BundleReader"]

MAX_OBJECT_CHARS = 8 * 1024 * 1024
_CHUNK = 1 << 20
_WS = re.compile(r"[ \t\n\r]*")
_BUNDLE_ID = re.compile(
    r"bundle--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


class BundleReader:
    """Iterate over the objects of a bundle read from ``source`` (bytes)."""

    def __init__(self, source: IO[bytes], *, max_bytes: int | None = None) -> None:
        self._source = source
        self._max_bytes = max_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0
        self._base = 0  # characters dropped from the front of the buffer
        self._eof = False
        self.bytes_read = 0
        self.bundle_id: str | None = None
        self.count = 0

    # -- buffer -----------------------------------------------------------------

    def _more(self) -> bool:
        """Read one more chunk into the buffer (dropping what was consumed)."""
        if self._eof:
            return False
        data = self._source.read(_CHUNK)
        if not data:
            self._eof = True
            try:
                tail = self._decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise self._error("the file is not valid UTF-8") from exc
            self._buf = self._buf[self._pos :] + tail
            self._base += self._pos
            self._pos = 0
            return bool(tail)
        self.bytes_read += len(data)
        if self._max_bytes is not None and self.bytes_read > self._max_bytes:
            raise StixError("bundle", None, f"is larger than {self._max_bytes} bytes")
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise self._error("the file is not valid UTF-8") from exc
        self._buf = self._buf[self._pos :] + text
        self._base += self._pos
        self._pos = 0
        return True

    def _error(self, problem: str) -> StixError:
        return StixError("bundle", None, f"{problem} (at character {self._base + self._pos})")

    def _skip_ws(self) -> str:
        """Skip white space; the next character ('' at the end of the input)."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more():
                return ""

    def _expect(self, char: str, what: str) -> None:
        found = self._skip_ws()
        if found != char:
            shown = repr(found) if found else "the end of the file"
            raise self._error(f"expected {what}, found {safe(shown, 20)}")
        self._pos += 1

    def _value(self, what: str) -> Any:
        """Decode one JSON value at the current position, reading more as needed."""
        self._skip_ws()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if len(self._buf) - self._pos > MAX_OBJECT_CHARS:
                    raise self._error(
                        f"{what} is larger than {MAX_OBJECT_CHARS} characters"
                    ) from None
                if self._more():
                    continue
                raise self._error(f"{what} is not valid JSON: {exc.msg}") from None
            except RecursionError:
                raise self._error(f"{what} is nested too deeply") from None
            except ValueError as exc:  # NaN, Infinity; an integer of thousands of digits
                raise self._error(f"{what}: {safe(str(exc))}") from None
            # A number (or anything) that ends exactly at the end of the buffer may
            # continue in the next chunk: read on and decode again.
            if end == len(self._buf) and not self._eof and self._more():
                continue
            self._pos = end
            return value

    # -- the bundle -----------------------------------------------------------------

    def _key(self) -> str:
        if self._skip_ws() != '"':
            raise self._error("expected a property name")
        key = self._value("a property name")
        self._expect(":", "':'")
        return str(key)

    def _outer(self, key: str, value: Any) -> None:
        if key == "type":
            if value != "bundle":
                raise StixError("bundle", "type", 'must be "bundle"')
        elif key == "id":
            if not isinstance(value, str) or not _BUNDLE_ID.fullmatch(value):
                raise StixError("bundle", "id", "must be bundle--<RFC 4122 UUID>")
            self.bundle_id = value
        elif key == "spec_version":
            # A STIX 2.1 bundle has no spec_version; 2.0 bundles carry "2.0".
            raise StixError(
                "bundle",
                "spec_version",
                f"a STIX 2.1 bundle has none (this is a STIX {safe(str(value), 10)} bundle?)",
            )
        else:
            raise StixError("bundle", safe(key), "is not a property of a STIX 2.1 bundle")

    def __iter__(self) -> Iterator[Any]:
        """Each element of ``objects`` (decoded, not checked), in order."""
        if self._skip_ws() == "\ufeff":
            self._pos += 1
        self._expect("{", "a STIX bundle (a JSON object)")
        seen: set[str] = set()
        if self._skip_ws() == "}":
            self._pos += 1
        else:
            while True:
                key = self._key()
                if key in seen:
                    raise StixError("bundle", safe(key), "appears twice")
                seen.add(key)
                if key == "objects":
                    yield from self._objects()
                else:
                    self._outer(key, self._value(f"bundle.{safe(key, 40)}"))
                after = self._skip_ws()
                self._pos += 1
                if after == "}":
                    break
                if after != ",":
                    self._pos -= 1
                    raise self._error("expected ',' or '}' in the bundle")
        if self._skip_ws() != "":
            raise self._error("unexpected data after the bundle")
        if "type" not in seen:
            raise StixError("bundle", "type", "is required")
        if "id" not in seen:
            raise StixError("bundle", "id", "is required")

    def _objects(self) -> Iterator[Any]:
        self._expect("[", "the list of objects")
        if self._skip_ws() == "]":
            self._pos += 1
            return
        decode = _DECODER.raw_decode
        while True:
            found = self._skip_ws()
            if found == "":
                raise self._error("the file ends inside the list of objects (truncated?)")
            if found != "{":
                raise self._error(f"objects[{self.count}] must be a JSON object")
            # The hot path: the object is whole in the buffer and a separator
            # follows it; anything else (the buffer's end, white space, errors)
            # takes the careful path of _value.
            buf, pos = self._buf, self._pos
            try:
                obj, end = decode(buf, pos)
            except (ValueError, RecursionError):
                end = -1
            if 0 <= end < len(buf) - 1 and buf[end] == "," and buf[end + 1] == "{":
                self._pos = end + 1
                yield obj
                self.count += 1
                continue
            obj = self._value(f"objects[{self.count}]")
            yield obj
            self.count += 1
            after = self._skip_ws()
            self._pos += 1
            if after == "]":
                return
            if after != ",":
                self._pos -= 1
                raise self._error(f"expected ',' or ']' after objects[{self.count - 1}]")
