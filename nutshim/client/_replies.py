# -*- test-case-name: nutshim.test.test_client -*-
"""
Parsers for the client side of each reply, and the fallback helper.

Kept apart from the protocol class so that each reply's shape is checked in
one small, pure function: a reply whose words do not echo the request
(C{VAR <ups> <var> ...} for C{GET VAR <ups> <var>}) raises L{ProtocolError},
which makes the protocol drop the connection, as NUT's C{libupsclient}
rejects such answers (C{verify_resp}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from twisted.internet.defer import Deferred

from nutshim.client.errors import NUTError, ProtocolError
from nutshim.protocol.errors import NutError

T = TypeVar("T")
Words = List[str]
LineParser = Callable[[str, Optional[Words]], T]


@dataclass(frozen=True)
class VarType:
    """
    The flags of C{GET TYPE}, e.g. C{("RW", "STRING:16")} or
    C{("RW", "ENUM", "NUMBER")}.
    """

    flags: Tuple[str, ...]

    def _has(self, flag: str) -> bool:
        return any(f.upper() == flag for f in self.flags)

    @property
    def writable(self) -> bool:
        """C{RW} is set."""
        return self._has("RW")

    @property
    def is_enum(self) -> bool:
        """The variable has a list of accepted values."""
        return self._has("ENUM")

    @property
    def is_range(self) -> bool:
        """The variable has accepted ranges."""
        return self._has("RANGE")

    @property
    def is_number(self) -> bool:
        """Typed C{NUMBER}."""
        return self._has("NUMBER")

    @property
    def max_length(self) -> Optional[int]:
        """For C{STRING:<n>}, C{n}; otherwise L{None}."""
        for flag in self.flags:
            if flag.upper().startswith("STRING:"):
                try:
                    return int(flag[7:])
                except ValueError:
                    return None
        return None

    @property
    def is_string(self) -> bool:
        """Typed C{STRING:<n>}."""
        return any(f.upper().startswith("STRING:") for f in self.flags)


def same(words: Sequence[str], expected: Sequence[str]) -> bool:
    """
    Words equal to C{expected}, ignoring case (NUT echoes what was typed, and
    lower-cases C{server.*} names).
    """
    return len(words) == len(expected) and all(
        a.upper() == b.upper() for a, b in zip(words, expected)
    )


def _words(line: str, words: Optional[Words]) -> Words:
    if words is None:
        raise ProtocolError(f"unparsable reply {line!r}")
    return words


def raw_line(line: str, words: Optional[Words]) -> str:
    """The reply line itself (VER, NETVER, HELP...)."""
    return line


def _is_ok(line: str) -> bool:
    return line == "OK" or line.startswith("OK ")


def ok(line: str, words: Optional[Words]) -> None:
    """C{OK} or C{OK <anything>}."""
    if not _is_ok(line):
        raise ProtocolError(f"expected OK, got {line!r}")


def ok_text(line: str, words: Optional[Words]) -> str:
    """The text after C{OK }."""
    ok(line, words)
    return line[3:]


def tracking_id(line: str, words: Optional[Words]) -> Optional[str]:
    """C{OK TRACKING <id>} gives the id, a plain C{OK} L{None}."""
    ok(line, words)
    got = _words(line, words)
    if len(got) >= 3 and got[1].upper() == "TRACKING":
        return got[2]
    return None


def on_off(line: str, words: Optional[Words]) -> bool:
    """C{ON} or C{OFF}."""
    if line.upper() not in ("ON", "OFF"):
        raise ProtocolError(f"expected ON or OFF, got {line!r}")
    return line.upper() == "ON"


def field(prefix: Sequence[str]) -> LineParser[str]:
    """
    A parser for C{<prefix...> <value>}, returning the value.
    """

    def parse(line: str, words: Optional[Words]) -> str:
        got = _words(line, words)
        if len(got) <= len(prefix) or not same(got[: len(prefix)], prefix):
            raise ProtocolError(f"reply {line!r} does not match {' '.join(prefix)}")
        return got[len(prefix)]

    return parse


def count(prefix: Sequence[str]) -> LineParser[int]:
    """Like L{field}, for an integer."""
    text = field(prefix)

    def parse(line: str, words: Optional[Words]) -> int:
        try:
            return int(text(line, words))
        except ValueError:
            raise ProtocolError(f"expected a number in {line!r}") from None

    return parse


def var_type(ups: str, var: str) -> LineParser[VarType]:
    """C{TYPE <ups> <var> <flag>...}."""

    def parse(line: str, words: Optional[Words]) -> VarType:
        got = _words(line, words)
        if len(got) < 4 or not same(got[:3], ("TYPE", ups, var)):
            raise ProtocolError(f"reply {line!r} does not match TYPE {ups} {var}")
        return VarType(tuple(got[3:]))

    return parse


def _items(body: List[Words], keyword: str, need: int) -> List[Words]:
    for words in body:
        if len(words) < need or words[0].upper() != keyword:
            raise ProtocolError(f"unexpected list item {' '.join(words)!r}")
    return body


def mapping(keyword: str, key: int) -> Callable[[List[Words]], Dict[str, str]]:
    """List items C{<keyword> ... <name> <value>} as an ordered dict."""

    def parse(body: List[Words]) -> Dict[str, str]:
        return {w[key]: w[key + 1] for w in _items(body, keyword, key + 2)}

    return parse


def column(keyword: str, index: int) -> Callable[[List[Words]], List[str]]:
    """One word of each list item."""

    def parse(body: List[Words]) -> List[str]:
        return [w[index] for w in _items(body, keyword, index + 1)]

    return parse


def ranges(body: List[Words]) -> List[Tuple[str, str]]:
    """C{RANGE <ups> <var> <min> <max>} items."""
    return [(w[3], w[4]) for w in _items(body, "RANGE", 5)]


_TRACKING_RESULTS = ("UNKNOWN", "FAILED", NutError.INVALID_ARGUMENT)


def tracking_status(d: Deferred[str]) -> Deferred[str]:
    """
    Turn the C{ERR} lines that are tracking results into status strings.
    """

    async def run() -> str:
        try:
            return await d
        except NUTError as e:
            if e.error in _TRACKING_RESULTS:
                return e.line
            raise

    return Deferred.fromCoroutine(run())


def fallback(d: Deferred[T], retry: Callable[[], Deferred[T]], *errors: NutError) -> Deferred[T]:
    """
    On a L{NUTError} among C{errors}, replace the result with C{retry()}:
    the legacy spelling of an RFC 9271 command.
    """

    async def run() -> T:
        try:
            return await d
        except NUTError as e:
            if e.error in errors:
                return await retry()
            raise

    return Deferred.fromCoroutine(run())
