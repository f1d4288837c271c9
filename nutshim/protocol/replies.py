# -*- test-case-name: nutshim.test.test_replies -*-
"""
Reply lines exactly as NUT 2.8.0's upsd formats them.

Every function returns complete lines as C{bytes}, so that a LIST reply is
assembled once and written with one call: NUT writes each line separately
and meets the client's delayed ACK (~44 ms a list).
"""

from __future__ import annotations

from typing import Iterable, Sequence, Tuple

from nutshim.protocol._tokenizer import encode
from nutshim.protocol.errors import NutError

__all__ = [
    "ok",
    "err",
    "escape_value",
    "var_line",
    "list_block",
    "OK",
    "OK_GOODBYE",
    "OK_STARTTLS",
]

OK = b"OK\n"
OK_GOODBYE = b"OK Goodbye\n"
OK_STARTTLS = b"OK STARTTLS\n"

#: NUT escapes values into a 256-byte buffer: at most 255 bytes survive.
MAX_ESCAPED_VALUE = 255


def ok(text: str = "") -> bytes:
    """
    C{OK} or C{OK <text>}.
    """
    if not text:
        return OK
    return b"OK " + text.encode("ascii") + b"\n"


def err(error: NutError) -> bytes:
    """
    C{ERR <NAME>}.
    """
    return error.line


def escape_value(raw: str) -> str:
    """
    A variable value as NUT sends it: escaped, cut to 255 bytes without
    splitting an escape pair.
    """
    enc = encode(raw)
    if len(enc) <= MAX_ESCAPED_VALUE:
        return enc
    out = []
    size = 0
    for ch in raw:
        piece = "\\" + ch if ch in '#\\"' else ch
        if size + len(piece) > MAX_ESCAPED_VALUE:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def var_line(kind: str, ups: str, name: str, escaped: str) -> bytes:
    """
    C{<kind> <ups> <name> "<escaped value>"}.
    """
    return f'{kind} {ups} {name} "{escaped}"\n'.encode("ascii", "replace")


def line(*parts: str) -> bytes:
    """
    Words joined by spaces, with a newline.
    """
    return (" ".join(parts) + "\n").encode("ascii", "replace")


def list_block(query: Sequence[str], body: Iterable[bytes]) -> bytes:
    """
    C{BEGIN LIST <query>}, the body lines, C{END LIST <query>}.
    """
    q = " ".join(query).encode("ascii", "replace")
    return b"BEGIN LIST " + q + b"\n" + b"".join(body) + b"END LIST " + q + b"\n"


def split_reply(data: bytes) -> Tuple[bytes, ...]:
    """
    Split a reply buffer into lines (without newlines); for tests and tools.
    """
    return tuple(data.split(b"\n")[:-1])
