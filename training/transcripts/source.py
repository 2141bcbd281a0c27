"""A transcript file being read: gzip, encodings line by line, progress, and errors naming file and line.

Everything streams: CSV row by row, and JSON as a sequence of records whatever its shape (one array,
an object holding the array under a known key, JSON lines, or concatenated documents), so a 200 MB
export is never held in memory whole. Lines that are not UTF-8 are decoded as Windows-1252 and counted.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

_PIECE = 1 << 16  # bytes per read; longer lines arrive in several pieces
_WS = re.compile(r"[ \t\r\n]*")


class TranscriptError(ValueError):
    """Bad input: the message names the file and, where known, the line."""

    def __init__(self, file: str, line: int, message: str):
        self.file, self.line, self.reason = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


class SourceFile:
    """One input file; `lines()`, `csv_rows()` and `json_records()` stream it."""

    def __init__(self, path: str | Path, on_progress: Callable[[int, int], None] | None = None):
        self.path = Path(path)
        self.name = str(path)
        if not self.path.is_file():
            raise TranscriptError(self.name, 0, "no such file")
        self.size = self.path.stat().st_size
        self.on_progress = on_progress
        self.fallback_lines = 0  # lines (or pieces of long lines) that were not UTF-8
        self.first_fallback_line = 0

    def error(self, line: int, message: str) -> TranscriptError:
        return TranscriptError(self.name, line, message)

    # -- decoding ---------------------------------------------------------------------------------
    def _pieces(self) -> Iterator[tuple[int, str]]:
        """(line number, text) pieces: whole lines with their newline, or parts of very long lines."""
        with open(self.path, "rb") as raw:
            stream: Any = raw
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                stream = gzip.GzipFile(fileobj=raw)
            else:
                raw.seek(0)
            head = stream.peek(4)[:4]
            if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
                for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-16"), 1):
                    yield number, line
                    self._progress(raw)
                return
            if head[:3] == b"\xef\xbb\xbf":
                stream.read(3)
            yield from self._utf8_pieces(stream, raw)

    def _utf8_pieces(self, stream: Any, raw: Any) -> Iterator[tuple[int, str]]:
        number, carry, since_report = 1, b"", 0
        while True:
            piece = stream.readline(_PIECE)
            data = carry + piece
            if not data:
                break
            complete = data.endswith(b"\n") or not piece
            text, carry = self._decode(data, number, complete)
            if text:
                yield number, text
            if data.endswith(b"\n"):
                number += 1
            since_report += len(data)
            if since_report > 1 << 20:
                self._progress(raw)
                since_report = 0
        self._progress(raw)

    def _decode(self, data: bytes, number: int, complete: bool) -> tuple[str, bytes]:
        try:
            return data.decode("utf-8"), b""
        except UnicodeDecodeError as e:
            if not complete and e.reason == "unexpected end of data" and e.start >= len(data) - 3:
                try:  # a multi-byte character split across two pieces of a long line
                    return data[: e.start].decode("utf-8"), data[e.start:]
                except UnicodeDecodeError:
                    pass
            self.fallback_lines += 1
            self.first_fallback_line = self.first_fallback_line or number
            return data.decode("cp1252", errors="replace"), b""

    def _progress(self, raw: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(raw.tell(), self.size)

    def lines(self) -> Iterator[tuple[int, str]]:
        """(line number from 1, text with its newline), each line whole."""
        parts: list[str] = []
        start = 0
        for number, piece in self._pieces():
            if not parts:
                start = number
            parts.append(piece)
            if piece.endswith("\n"):
                yield start, "".join(parts)
                parts = []
        if parts:
            yield start, "".join(parts)

    # -- CSV --------------------------------------------------------------------------------------
    def csv_rows(self, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
        """(line where the row starts, fields); quoted fields may span lines."""
        texts = (text for _, text in self.lines())
        reader = csv.reader(texts, delimiter=delimiter)
        last = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise self.error(last + 1, f"malformed CSV in the row starting here: {e}") from e
            start, last = last + 1, reader.line_num
            if row:
                yield start, row

    # -- JSON -------------------------------------------------------------------------------------
    def json_records(self, list_keys: Sequence[str] = ()) -> Iterator[tuple[int, Any]]:
        """(line where the record starts, record) for every record in the file.

        A top-level array yields its items; a top-level object holding an array under one of `list_keys`
        yields that array's items (streamed, other keys ignored); any other top-level value is a record.
        Several top-level values (JSON lines) are read one after the other.
        """
        yield from _JsonStream(self, set(list_keys)).records()


class _JsonStream:
    """Incremental JSON reader over a SourceFile: a buffer that is trimmed as records are consumed."""

    _WHOLE = 1 << 20  # objects larger than this are walked key by key instead of decoded at once

    def __init__(self, source: SourceFile, list_keys: set[str]):
        self.source, self.list_keys = source, list_keys
        self.pieces = source._pieces()
        self.buf, self.pos, self.eof = "", 0, False
        self.base_line, self.counted_to, self.line_at = 1, 0, 1
        self.decoder = json.JSONDecoder()

    # buffer handling
    def line(self) -> int:
        """Line number at the current position (counted incrementally)."""
        self.line_at += self.buf.count("\n", self.counted_to, self.pos)
        self.counted_to = self.pos
        return self.line_at

    def fill(self, want: int = _PIECE) -> None:
        self.line()
        self.buf, self.pos, self.counted_to = self.buf[self.pos:], 0, 0
        parts, got = [self.buf], 0
        while got < want:
            piece = next(self.pieces, None)
            if piece is None:
                self.eof = True
                break
            parts.append(piece[1])
            got += len(piece[1])
        self.buf = "".join(parts)

    def peek(self) -> str:
        """Next non-whitespace character ("" at end of file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos: self.pos + 1]
            self.fill()

    def expect(self, chars: str, where: str) -> str:
        ch = self.peek()
        if not ch:
            raise self.source.error(self.line(), f"unexpected end of file {where} (truncated JSON?)")
        if ch not in chars:
            raise self.source.error(self.line(), f"invalid JSON: expected {' or '.join(chars)} {where}, found {ch!r}")
        self.pos += 1
        return ch

    def value(self, limit: int | None = None) -> tuple[bool, Any]:
        """Decode the value at the position; (False, None) if it is larger than `limit` characters."""
        want = _PIECE
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return True, obj
            except json.JSONDecodeError as e:
                at_end = e.pos >= len(self.buf) - 1 or e.msg.startswith("Unterminated string")
                if self.eof or not at_end:
                    line = self.line() + self.buf.count("\n", self.pos, e.pos)
                    hint = " (truncated file?)" if self.eof and at_end else ""
                    raise self.source.error(line, f"invalid JSON: {e.msg}{hint}") from None
            if limit is not None and len(self.buf) - self.pos > limit:
                return False, None
            self.fill(want if limit is None else min(want, limit))
            want *= 2  # a large value: read more at a time so retries stay few

    # structure
    def records(self) -> Iterator[tuple[int, Any]]:
        while self.peek():
            line = self.line()
            ch = self.peek()
            if ch == "[":
                self.pos += 1
                yield from self.array_items()
            elif ch == "{":
                start = self.pos
                whole, obj = self.value(limit=self._WHOLE)
                if not whole or (isinstance(obj, dict) and any(isinstance(obj.get(k), list) for k in self.list_keys)):
                    # walk it key by key: streams a large object, and gives each listed record its own line
                    self.pos, self.counted_to, self.line_at = start, start, line
                    yield from self.object_walk(line)
                else:
                    yield line, obj
            else:
                _, obj = self.value()
                yield line, obj

    def array_items(self) -> Iterator[tuple[int, Any]]:
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            if not self.peek():
                raise self.source.error(self.line(), "unexpected end of file inside a JSON array (truncated JSON?)")
            line = self.line()
            _, item = self.value()
            yield line, item
            if self.expect(",]", "after an array item") == "]":
                return

    def object_walk(self, line: int) -> Iterator[tuple[int, Any]]:
        """A top-level object too large to decode at once: stream arrays under `list_keys`, skip the rest."""
        self.pos += 1  # "{"
        rest, streamed = {}, False
        if self.peek() == "}":
            self.pos += 1
            yield line, rest
            return
        while True:
            if self.peek() != '"':
                self.expect('"', "(an object key)")
            _, key = self.value()
            self.expect(":", "after an object key")
            if not self.peek():
                raise self.source.error(self.line(), "unexpected end of file inside a JSON object (truncated JSON?)")
            if key in self.list_keys and self.peek() == "[":
                self.pos += 1
                streamed = True
                yield from self.array_items()
            else:
                _, rest[key] = self.value()
            if self.expect(",}", "after an object member") == "}":
                break
        if not streamed:
            yield line, rest
