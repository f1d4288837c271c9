# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
UPS events: what a change of C{ups.status} means (RFC 9271, section 5.2).

A Management Daemon learns about the UPS only by comparing one
C{ups.status} with the previous one, so the whole event vocabulary lives
here, as a pure function of two sets of status symbols, plus the names and
default messages NUT's upsmon gives to the events it notifies.

Why names matter: administrators configure C{NOTIFYMSG} and C{NOTIFYFLAG}
by event name and their C{NOTIFYCMD} scripts switch on C{$NOTIFYTYPE}, so
the ten names of NUT 2.8.0 (C{ONLINE}, C{ONBATT}, C{LOWBATT}, C{FSD},
C{COMMOK}, C{COMMBAD}, C{SHUTDOWN}, C{REPLBATT}, C{NOCOMM}, C{NOPARENT})
keep their meaning and their stock messages exactly.  RFC 9271 lists more
changes than NUT 2.8.0 names; nutshim names each of them too, by one rule:
a symbol that appears is named after the symbol (C{BYPASS}, C{CAL},
C{OFF}... as later NUT releases do), one that disappears is C{NOT} and the
symbol (C{NOTBYPASS}, C{NOTLB}, C{NOTFSD}).  The exceptions are the table's
own NUT names: C{OB} to C{OL} is C{ONLINE}, C{OL} to C{OB} is C{ONBATT},
C{LB} appearing is C{LOWBATT}, C{RB} appearing is C{REPLBATT}.

C{NOCOMM} in the status is not a symbol event: it means "no contact", and
feeds the same contact tracking as a failed poll (C{COMMBAD}, then
C{NOCOMM} every C{NOCOMMWARNTIME}; C{COMMOK} once contact is back), which
is how the RFC's rows for C{COMM} and C{NOCOMM} are read by NUT's upsmon.

The heartbeat (RFC 9271, section 5.2, note 3) adds two names of the watch
in L{nutshim.upsmon.heartbeat}, not of a status change: C{HEARTBEATLOST}
(no C{TICK}/C{TOCK} change within the window) and C{HEARTBEATOK} (one
came again).  The symbol events of a beating heartbeat (C{TICK},
C{NOTTOCK}, ... at every flip) only make a debug line by default, or a
5-minute heartbeat would log a pair of warnings 288 times a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Tuple

__all__ = [
    "SYMBOLS",
    "NUT_NOTIFY_TYPES",
    "NOTIFY_TYPES",
    "SYMBOL_EVENTS",
    "HEARTBEAT_TYPES",
    "StatusEvent",
    "parse_status",
    "status_events",
    "default_message",
    "default_flags",
    "contact_lost",
    "line_state",
]

#: The status symbols of RFC 9271, section 5.1.
SYMBOLS: FrozenSet[str] = frozenset(
    "ALARM BOOST BYPASS CAL CHRG COMM DISCHRG FSD LB NOCOMM OB OFF OL OVER RB "
    "TEST TICK TOCK TRIM".split()
)

#: NUT 2.8.0's notification types and their stock messages (upsmon.h).
NUT_NOTIFY_TYPES: Dict[str, str] = {
    "ONLINE": "UPS %s on line power",
    "ONBATT": "UPS %s on battery",
    "LOWBATT": "UPS %s battery is low",
    "FSD": "UPS %s: forced shutdown in progress",
    "COMMOK": "Communications with UPS %s established",
    "COMMBAD": "Communications with UPS %s lost",
    "SHUTDOWN": "Auto logout and shutdown proceeding",
    "REPLBATT": "UPS %s battery needs to be replaced",
    "NOCOMM": "UPS %s is unavailable",
    "NOPARENT": "upsmon parent process died - shutdown impossible",
}

# (symbol, name when it appears, message, name when it goes, message).
# Messages follow the RFC's wording; CAL/OFF/BYPASS those of later NUT.
_TABLE: Tuple[Tuple[str, str, str, str, str], ...] = (
    ("ALARM", "ALARM", "UPS %s: alarm on", "NOTALARM", "UPS %s: alarm off"),
    ("BOOST", "BOOST", "UPS %s: boosting voltage", "NOTBOOST", "UPS %s: not boosting"),
    ("BYPASS", "BYPASS", "UPS %s: on bypass (powered, not protecting)",
     "NOTBYPASS", "UPS %s: no longer on bypass"),
    ("CAL", "CAL", "UPS %s: calibration in progress", "NOTCAL", "UPS %s: calibration finished"),
    ("CHRG", "CHRG", "UPS %s: battery charging", "NOTCHRG", "UPS %s: battery not charging"),
    ("COMM", "COMM", "UPS %s: communicating", "NOTCOMM", "UPS %s: COMM status gone"),
    ("DISCHRG", "DISCHRG", "UPS %s: battery discharging",
     "NOTDISCHRG", "UPS %s: battery not discharging"),
    ("FSD", "FSD", NUT_NOTIFY_TYPES["FSD"], "NOTFSD", "UPS %s: forced shutdown abandoned"),
    ("LB", "LOWBATT", NUT_NOTIFY_TYPES["LOWBATT"], "NOTLB", "UPS %s: battery no longer low"),
    ("OFF", "OFF", "UPS %s: administratively OFF or asleep",
     "NOTOFF", "UPS %s: no longer administratively OFF or asleep"),
    ("OVER", "OVER", "UPS %s: overloaded", "NOTOVER", "UPS %s: overload gone"),
    ("RB", "REPLBATT", NUT_NOTIFY_TYPES["REPLBATT"],
     "NOTRB", "UPS %s: battery replacement canceled"),
    ("TEST", "TEST", "UPS %s: test started", "NOTTEST", "UPS %s: test finished"),
    ("TICK", "TICK", "UPS %s: heartbeat (TICK)", "NOTTICK", "UPS %s: no heartbeat (TICK)"),
    ("TOCK", "TOCK", "UPS %s: heartbeat (TOCK)", "NOTTOCK", "UPS %s: no heartbeat (TOCK)"),
    ("TRIM", "TRIM", "UPS %s: trimming voltage", "NOTTRIM", "UPS %s: not trimming"),
)

#: The heartbeat watch's notification types (nutshim's).
HEARTBEAT_TYPES: Dict[str, str] = {
    "HEARTBEATLOST": "UPS %s: heartbeat lost (no TICK/TOCK change within the window)",
    "HEARTBEATOK": "UPS %s: heartbeat back",
}

#: symbol -> (name when it appears, name when it disappears).
SYMBOL_EVENTS: Dict[str, Tuple[str, str]] = {row[0]: (row[1], row[3]) for row in _TABLE}
SYMBOL_EVENTS["OB"] = ("ONBATT", "ONLINE")
SYMBOL_EVENTS["OL"] = ("ONLINE", "ONBATT")

_EXTENDED: Dict[str, str] = {}
for _row in _TABLE:
    _EXTENDED.setdefault(_row[1], _row[2])
    _EXTENDED.setdefault(_row[3], _row[4])

#: Every notification type nutshim knows, with its default message.
NOTIFY_TYPES: Dict[str, str] = {**_EXTENDED, **HEARTBEAT_TYPES, **NUT_NOTIFY_TYPES}

#: NUT's default flags (NOTIFY_DEFAULT); nutshim's extra events only log.
_NUT_DEFAULT_FLAGS = frozenset(["SYSLOG", "WALL"])
_EXTENDED_DEFAULT_FLAGS = frozenset(["SYSLOG"])
#: The flips of a beating heartbeat: a debug line only.
_QUIET = frozenset(["TICK", "TOCK", "NOTTICK", "NOTTOCK"])


def default_message(name: str) -> str:
    """
    The message of a notification type when C{NOTIFYMSG} does not set one;
    C{%s} stands for the UPS (as in NUT, its C{MONITOR} system name).
    """
    return NOTIFY_TYPES[name]


def default_flags(name: str) -> FrozenSet[str]:
    """
    The flags of a notification type when C{NOTIFYFLAG} does not set them:
    NUT's C{SYSLOG+WALL} for NUT's types, C{SYSLOG} for nutshim's own, none
    (a debug line) for the heartbeat's C{TICK}/C{TOCK} flips.
    """
    if name in _QUIET:
        return frozenset()
    return _NUT_DEFAULT_FLAGS if name in NUT_NOTIFY_TYPES else _EXTENDED_DEFAULT_FLAGS


@dataclass(frozen=True)
class StatusEvent:
    """
    One change of one status symbol.

    @ivar name: the notification type (C{ONBATT}, C{NOTCHRG}...).
    @ivar symbol: the symbol that changed.
    @ivar appeared: whether it appeared (else it disappeared).
    """

    name: str
    symbol: str
    appeared: bool


def parse_status(text: str) -> FrozenSet[str]:
    """
    The symbols of a C{ups.status} value (NUT compares them without regard
    to case).
    """
    return frozenset(word.upper() for word in text.split())


def contact_lost(symbols: FrozenSet[str]) -> bool:
    """
    Whether a status means the Attachment Daemon has no contact with the
    UPS: it says C{NOCOMM}, or it is empty (NUT's upsmon treats an empty
    status as a dead UPS).
    """
    return not symbols or "NOCOMM" in symbols


def line_state(symbols: FrozenSet[str]) -> Optional[str]:
    """
    C{"OB"} or C{"OL"} (C{OB} wins if a driver sends both), or L{None}.
    """
    if "OB" in symbols:
        return "OB"
    if "OL" in symbols:
        return "OL"
    return None


def status_events(
    old: Optional[FrozenSet[str]], new: FrozenSet[str], old_line: Optional[str] = None
) -> List[StatusEvent]:
    """
    The events of one status change, in a stable order (the table's).

    @param old: the previous status, or L{None} for the first one: then
        every symbol present counts as appearing, except C{OL} (NUT does not
        announce line power at startup).
    @param old_line: the last known C{OL}/C{OB} state, which outlives
        statuses that carry neither (a transition is then announced when
        the next one arrives, as NUT's upsmon does).
    @return: C{ONLINE}/C{ONBATT} for line changes, then the others.
    """
    events: List[StatusEvent] = []
    line = line_state(new)
    if line is not None and line != old_line:
        if line == "OB":
            events.append(StatusEvent("ONBATT", "OB", True))
        elif old_line is not None:
            events.append(StatusEvent("ONLINE", "OL", True))
    previous = old if old is not None else frozenset()
    for symbol, appeared_name, _, gone_name, _ in _TABLE:
        if symbol in new and symbol not in previous:
            events.append(StatusEvent(appeared_name, symbol, True))
        elif symbol in previous and symbol not in new:
            events.append(StatusEvent(gone_name, symbol, False))
    return events
