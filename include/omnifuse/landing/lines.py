"""Physical lines of a landed file, read block by block with a bound on each line's length, and the checks a
line needs before PostgreSQL parses it.

A line longer than the bound (``OMNIFUSE_INGEST_MAX_LINE_KB``) is not held whole: its first bytes are kept as a
:class:`BadLine` with the reason ``line_too_long`` and the rest is skipped up to its newline, so one 200 MB line
costs the bound, not 200 MB. Readers (NDJSON, GA4, CSV records) pass a :class:`BadLine` on to quarantine with
its reason; every other line loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

#: The deepest JSON nesting a line may have: PostgreSQL's jsonb parser recurses per level and fails the whole
#: statement ("stack depth limit exceeded") on a line nested some ten thousand deep, so deeper lines are
#: quarantined ``json_too_deep`` before they reach it. No event of any export nests near this.
MAX_JSON_DEPTH = 512

_JSON_TOKENS = re.compile(rb'[\[\]{}"\\]')


class BadLine(bytes):
    """A line (or CSV record) that is not read as data: its bytes (cut to the line bound) and ``reason``
    (``line_too_long``, ``unbalanced_quote``)."""

    reason: str

    def __new__(cls, data: bytes, reason: str) -> BadLine:
        line = super().__new__(cls, data)
        line.reason = reason
        return line


def split_lines(blocks: Iterable[bytes], limit: int) -> Iterator[list[bytes]]:
    """The lines of a stream of byte blocks (without their ``\\n``), as one list per block that ends at least one
    line. A line longer than ``limit`` bytes is yielded as a :class:`BadLine` of its first ``limit`` bytes and
    the rest of it is skipped: memory stays bounded by the block size plus ``limit``. The empty rest after a
    final newline is not a line."""
    carry = b""  # the start of an unfinished line (never longer than limit)
    skipping: BadLine | None = None  # a too-long line whose rest is skipped up to its newline
    for block in blocks:
        parts = block.split(b"\n")
        last = parts.pop()
        if not parts:  # no newline in this block: the line goes on
            if skipping is None:
                carry += last
                if len(carry) > limit:
                    skipping, carry = BadLine(carry[:limit], "line_too_long"), b""
            continue
        if skipping is not None:
            out: list[bytes] = [skipping]
            skipping = None
        else:
            head = carry + parts[0]
            out = [head if len(head) <= limit else BadLine(head[:limit], "line_too_long")]
        middle = parts[1:]
        if len(block) > limit:  # only a block longer than the bound can hold a line that breaks it
            out.extend(p if len(p) <= limit else BadLine(p[:limit], "line_too_long") for p in middle)
        else:
            out.extend(middle)
        if len(last) > limit:
            skipping, carry = BadLine(last[:limit], "line_too_long"), b""
        else:
            carry = last
        yield out
    if skipping is not None:
        yield [skipping]
    elif carry:
        yield [carry]


def json_depth(line: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON line (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1  # the position a backslash escapes
    for found in _JSON_TOKENS.finditer(line):
        char, at = found.group(), found.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == b"\\":
                escaped_at = at + 1
            elif char == b'"':
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def any_too_deep(lines: list[bytes]) -> bool:
    """True when one of ``lines`` nests JSON deeper than :data:`MAX_JSON_DEPTH`. Only a line longer than that many
    bytes can, so a block of ordinary lines costs one ``max(map(len, ...))``."""
    if max(map(len, lines), default=0) <= MAX_JSON_DEPTH:
        return False
    return any(too_deep(line) for line in lines if len(line) > MAX_JSON_DEPTH)


def too_deep(line: bytes) -> bool:
    """True when ``line`` nests JSON deeper than :data:`MAX_JSON_DEPTH` (counted only when it holds more
    opening brackets than that: the usual line costs two ``bytes.count``)."""
    if line.count(b"[") + line.count(b"{") <= MAX_JSON_DEPTH:
        return False
    return json_depth(line) > MAX_JSON_DEPTH
