# -*- test-case-name: nutshim.test.test_dstate -*-
"""
The messages of NUT's driver socket protocol, without any I/O.

NUT's upsd never talks to a UPS: it connects to each driver's Unix socket
(C{<statepath>/<driver>-<upsname>}), sends C{DUMPALL} and then mirrors every
C{SETINFO}/C{ADDENUM}/... line the driver sends (C{server/sstate.c}); the
driver answers C{PING}, carries out C{SET}/C{INSTCMD} and reports tracked
results as C{TRACKING <id> <n>} (C{drivers/dstate.c}).  Speaking this
protocol in both directions lets nutshim's daemon use NUT's C drivers, and
NUT's C upsd use nutshim's drivers.

This module only turns tokenized words into messages, messages into
L{DeviceState} changes, and messages back into lines, so that both sides
(L{nutshim.drivers.socketdriver}, L{nutshim.drivers.socketserver}) and the
tests share one definition.  It imports nothing from Twisted.

Where NUT 2.8.0 writes bytes its own reader would misparse (a live
C{SETINFO} broadcast sends the value unescaped; C{SETFLAGS} with no flag
left sends a line upsd ignores; an C{INSTCMD} parameter with a space is
split in two) the formatters here escape, add C{NONE} or quote instead.
Everything else is byte-identical to NUT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

from nutshim.protocol._tokenizer import encode, quote
from nutshim.protocol.replies import escape_value
from nutshim.state import DeviceState, atoi

__all__ = [
    "SetInfo", "DelInfo", "AddEnum", "DelEnum", "AddRange", "DelRange",
    "AddCmd", "DelCmd", "SetFlags", "SetAux", "DataOK", "DataStale",
    "DumpDone", "Ping", "Pong", "Tracking", "DriverMessage",
    "DumpAll", "SetVar", "InstCmd", "UpsdMessage",
    "parse_driver_line", "parse_upsd_line", "apply",
    "format_driver_words", "format_driver_message", "dump_lines",
    "DUMPALL", "PING", "PONG", "format_set", "format_instcmd",
    "format_tracking", "RateLimiter",
]


# Driver -> upsd.

@dataclass(frozen=True)
class SetInfo:
    """C{SETINFO <var> <value>}: create or update a variable."""
    name: str
    value: str


@dataclass(frozen=True)
class DelInfo:
    """C{DELINFO <var>}."""
    name: str


@dataclass(frozen=True)
class AddEnum:
    """C{ADDENUM <var> <value>}."""
    name: str
    value: str


@dataclass(frozen=True)
class DelEnum:
    """C{DELENUM <var> <value>}."""
    name: str
    value: str


@dataclass(frozen=True)
class AddRange:
    """C{ADDRANGE <var> <min> <max>} (C{atoi} values)."""
    name: str
    low: int
    high: int


@dataclass(frozen=True)
class DelRange:
    """C{DELRANGE <var> <min> <max>}."""
    name: str
    low: int
    high: int


@dataclass(frozen=True)
class AddCmd:
    """C{ADDCMD <cmd>}."""
    name: str


@dataclass(frozen=True)
class DelCmd:
    """C{DELCMD <cmd>}."""
    name: str


@dataclass(frozen=True)
class SetFlags:
    """C{SETFLAGS <var> <flag>...}: replaces the flags; unknown words ignored."""
    name: str
    flags: Tuple[str, ...]


@dataclass(frozen=True)
class SetAux:
    """C{SETAUX <var> <n>} (C{strtol}: C{12x} is 12)."""
    name: str
    aux: int


@dataclass(frozen=True)
class DataOK:
    """C{DATAOK}: the driver's data are fresh (counts after C{DUMPDONE})."""


@dataclass(frozen=True)
class DataStale:
    """C{DATASTALE}: the driver lost its device (counts after C{DUMPDONE})."""


@dataclass(frozen=True)
class DumpDone:
    """C{DUMPDONE}: the answer to C{DUMPALL} is complete."""


@dataclass(frozen=True)
class Ping:
    """
    C{PING}.  Parsed for completeness; NUT's upsd does not recognise it from a
    driver (it neither answers nor counts it as a sign of life).
    """


@dataclass(frozen=True)
class Pong:
    """C{PONG}: the answer to upsd's C{PING}."""


@dataclass(frozen=True)
class Tracking:
    """C{TRACKING <id> <n>}: the result of a tracked C{SET}/C{INSTCMD}."""
    tracking_id: str
    result: int


DriverMessage = Union[
    SetInfo, DelInfo, AddEnum, DelEnum, AddRange, DelRange, AddCmd, DelCmd,
    SetFlags, SetAux, DataOK, DataStale, DumpDone, Ping, Pong, Tracking,
]

_NO_ARGS: Dict[str, DriverMessage] = {
    "PONG": Pong(), "PING": Ping(), "DUMPDONE": DumpDone(),
    "DATASTALE": DataStale(), "DATAOK": DataOK(),
}


def parse_driver_line(words: Sequence[str]) -> Optional[DriverMessage]:
    """
    A tokenized driver line as C{server/sstate.c:parse_args} reads it: verbs
    are case-insensitive, extra words are ignored, too few words (the minimum
    depends on the verb) or an unknown verb give L{None}.
    """
    if not words:
        return None
    verb = words[0].upper()
    n = len(words)
    simple = _NO_ARGS.get(verb)
    if simple is not None:
        return simple
    if n < 2:
        return None
    name = words[1]
    if verb == "ADDCMD":
        return AddCmd(name)
    if verb == "DELCMD":
        return DelCmd(name)
    if verb == "DELINFO":
        return DelInfo(name)
    if n < 3:
        return None
    if verb == "SETFLAGS":
        return SetFlags(name, tuple(words[2:]))
    if verb == "SETINFO":
        return SetInfo(name, words[2])
    if verb == "ADDENUM":
        return AddEnum(name, words[2])
    if verb == "DELENUM":
        return DelEnum(name, words[2])
    if verb == "SETAUX":
        return SetAux(name, atoi(words[2]))
    if verb == "TRACKING":
        return Tracking(name, atoi(words[2]))
    if n < 4:
        return None
    if verb == "ADDRANGE":
        return AddRange(name, atoi(words[2]), atoi(words[3]))
    if verb == "DELRANGE":
        return DelRange(name, atoi(words[2]), atoi(words[3]))
    return None


def apply(state: DeviceState, msg: DriverMessage) -> bool:
    """
    Apply one message to C{state} as upsd does.

    @return: whether the tree changed; always C{False} for the messages that
        are not about the tree (C{PONG}, C{DATAOK}, C{TRACKING}, ...).
    """
    if isinstance(msg, SetInfo):
        return state.set_info(msg.name, msg.value)
    if isinstance(msg, DelInfo):
        return state.del_info(msg.name)
    if isinstance(msg, AddEnum):
        return state.add_enum(msg.name, msg.value)
    if isinstance(msg, DelEnum):
        return state.del_enum(msg.name, msg.value)
    if isinstance(msg, AddRange):
        return state.add_range(msg.name, msg.low, msg.high)
    if isinstance(msg, DelRange):
        return state.del_range(msg.name, msg.low, msg.high)
    if isinstance(msg, AddCmd):
        return state.add_command(msg.name)
    if isinstance(msg, DelCmd):
        return state.del_command(msg.name)
    if isinstance(msg, SetFlags):
        return state.set_flags(msg.name, msg.flags)
    if isinstance(msg, SetAux):
        return state.set_aux(msg.name, msg.aux)
    return False


# upsd -> driver.

@dataclass(frozen=True)
class DumpAll:
    """C{DUMPALL}: send the whole tree, then C{DUMPDONE}."""


@dataclass(frozen=True)
class SetVar:
    """C{SET <var> <value> [TRACKING <id>]}."""
    name: str
    value: str
    tracking_id: Optional[str] = None


@dataclass(frozen=True)
class InstCmd:
    """C{INSTCMD <cmd> [<param>] [TRACKING <id>]}."""
    name: str
    param: Optional[str] = None
    tracking_id: Optional[str] = None


UpsdMessage = Union[DumpAll, Ping, SetVar, InstCmd]


def parse_upsd_line(words: Sequence[str]) -> Optional[UpsdMessage]:
    """
    A tokenized line from upsd as a 2.8.0 driver (C{drivers/dstate.c:
    sock_arg}) reads it.  L{None} for what it ignores: unknown verbs
    (including C{GETPID}, C{DUMPVALUE}, C{LOGOUT}, C{NOBROADCAST}, which
    2.8.0 drivers do not know), an C{INSTCMD} with a word count other than
    2-5 or without C{TRACKING} in the right place, a C{SET} with five words
    whose fourth is not C{TRACKING}.
    """
    if not words:
        return None
    verb = words[0].upper()
    n = len(words)
    if verb == "DUMPALL":
        return DumpAll()
    if verb == "PING":
        return Ping()
    if verb == "INSTCMD" and n >= 2:
        if n == 2:
            return InstCmd(words[1])
        if n == 3:
            return InstCmd(words[1], words[2])
        if n == 4 and words[2].upper() == "TRACKING":
            return InstCmd(words[1], None, words[3])
        if n == 5 and words[3].upper() == "TRACKING":
            return InstCmd(words[1], words[2], words[4])
        return None
    if verb == "SET" and n >= 3:
        if n == 5:
            if words[3].upper() != "TRACKING":
                return None
            return SetVar(words[1], words[2], words[4])
        return SetVar(words[1], words[2])
    return None


# Formatting.

#: Words NUT writes bare; anything else is quoted so that it survives.
_BARE = re.compile(r"[!$-<>-\[\]-~]+\Z")
# Control characters would break the line; every NUT reader deletes them.
_CONTROL = re.compile(r"[\x00-\x1f]")


def _word(word: str) -> str:
    word = _CONTROL.sub("", word)
    return word if _BARE.match(word) else quote(word)


def _quoted(value: str, limit: bool = False) -> str:
    value = _CONTROL.sub("", value)
    return '"' + (escape_value(value) if limit else encode(value)) + '"'


def _line(text: str) -> bytes:
    return text.encode("ascii", "replace") + b"\n"


def format_driver_words(words: Sequence[str]) -> bytes:
    """
    One driver-to-upsd line from a message tuple as L{DeviceState.dump} and
    L{DeviceState.subscribe} give them, e.g. C{("SETINFO", "ups.status",
    "OL")} gives C{SETINFO ups.status "OL"}.

    Values of C{SETINFO} (escaped, at most 255 bytes, as NUT stores them),
    C{ADDENUM} and C{DELENUM} are quoted; names are written bare unless they
    contain something that needs quoting.  A C{SETFLAGS} without flags gets
    the word C{NONE}, which every upsd reads as "no flags" (NUT would send
    a line that upsd ignores).
    """
    verb = words[0]
    if verb in ("SETINFO", "ADDENUM", "DELENUM") and len(words) >= 3:
        return _line("%s %s %s" % (verb, _word(words[1]), _quoted(words[2], verb == "SETINFO")))
    rest = list(words[1:])
    if verb == "SETFLAGS" and len(rest) == 1:
        rest.append("NONE")
    return _line(" ".join([verb] + [_word(w) for w in rest]))


def _message_words(msg: DriverMessage) -> Tuple[str, ...]:
    if isinstance(msg, (SetInfo, AddEnum, DelEnum)):
        return (type(msg).__name__.upper(), msg.name, msg.value)
    if isinstance(msg, (AddRange, DelRange)):
        return (type(msg).__name__.upper(), msg.name, str(msg.low), str(msg.high))
    if isinstance(msg, (DelInfo, AddCmd, DelCmd)):
        return (type(msg).__name__.upper(), msg.name)
    if isinstance(msg, SetFlags):
        return ("SETFLAGS", msg.name) + msg.flags
    if isinstance(msg, SetAux):
        return ("SETAUX", msg.name, str(msg.aux))
    if isinstance(msg, Tracking):
        return ("TRACKING", msg.tracking_id, str(msg.result))
    return (type(msg).__name__.upper(),)


def format_driver_message(msg: DriverMessage) -> bytes:
    """
    One driver-to-upsd line from a parsed message; the inverse of
    L{parse_driver_line} for every message it returns.
    """
    return format_driver_words(_message_words(msg))


def dump_lines(state: DeviceState, stale: bool) -> Iterator[bytes]:
    """
    A driver's answer to C{DUMPALL}, as C{drivers/dstate.c} writes it:
    C{DATASTALE} first if stale, the tree, C{DATAOK} if not stale, then
    C{DUMPDONE}.
    """
    if stale:
        yield b"DATASTALE\n"
    for words in state.dump():
        yield format_driver_words(words)
    if not stale:
        yield b"DATAOK\n"
    yield b"DUMPDONE\n"


DUMPALL = b"DUMPALL\n"
PING = b"PING\n"
PONG = b"PONG\n"


def _tracking(tracking_id: Optional[str]) -> str:
    return "" if tracking_id is None else " TRACKING " + _word(tracking_id)


def format_set(name: str, value: str, tracking_id: Optional[str] = None) -> bytes:
    """
    upsd's C{SET <var> "<escaped value>"[ TRACKING <id>]}.
    """
    return _line("SET %s %s%s" % (_word(name), _quoted(value), _tracking(tracking_id)))


def format_instcmd(
    cmd: str, param: Optional[str] = None, tracking_id: Optional[str] = None
) -> bytes:
    """
    upsd's C{INSTCMD <cmd>[ <escaped param>][ TRACKING <id>]}.

    NUT writes the parameter escaped but bare; it is quoted here only when
    it could not survive bare (spaces, empty is dropped as in NUT).
    """
    text = "INSTCMD " + _word(cmd)
    param = _CONTROL.sub("", param or "")
    if param:
        enc = encode(param)
        text += " " + (enc if _BARE.match(enc) else quote(param))
    return _line(text + _tracking(tracking_id))


def format_tracking(tracking_id: str, result: int) -> bytes:
    """
    A driver's C{TRACKING <id> <n>}.
    """
    return _line("TRACKING %s %d" % (_word(tracking_id), result))


class RateLimiter:
    """
    A token bucket: at most C{burst} lines at once, C{rate} lines per second
    sustained.  Both sides use it to cut off a peer that floods them.

    @ivar rate: tokens added per second.
    @ivar burst: the bucket's size.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """
        Take C{cost} tokens at time C{now}; C{False} when the bucket is empty.
        """
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

