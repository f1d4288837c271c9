# -*- test-case-name: nutshim.test.test_web -*-
"""
C{ups.status} in words and in a colour, for people.

NUT's status is a list of flags (C{OL CHRG}, C{OB DISCHRG LB}); the page
and the JSON view both need the same reading of it, so it lives here:
what each flag means (NUT's docs/new-drivers.txt) and how serious a set
of flags is.
"""

from __future__ import annotations

import enum
from typing import Dict, Sequence, Tuple

__all__ = ["Severity", "FLAG_WORDS", "split_flags", "describe", "severity"]


class Severity(enum.Enum):
    """
    How a UPS is doing, worst last.
    """

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    #: No data: the driver is not connected, or its data are stale.
    UNKNOWN = "unknown"


#: What each flag of NUT's new-drivers.txt means.
FLAG_WORDS: Dict[str, str] = {
    "OL": "on line",
    "OB": "on battery",
    "LB": "low battery",
    "HB": "high battery",
    "RB": "replace battery",
    "CHRG": "charging",
    "DISCHRG": "discharging",
    "BYPASS": "on bypass",
    "CAL": "calibrating",
    "OFF": "off",
    "OVER": "overloaded",
    "TRIM": "trimming voltage",
    "BOOST": "boosting voltage",
    "FSD": "forced shutdown",
    "SD": "shutting down",
    "ALARM": "alarm",
    "TEST": "testing",
    "WAIT": "waiting for the driver",
}

#: Power is lost or about to be: the machines behind this UPS go down.
_CRITICAL = frozenset({"LB", "FSD", "OFF", "SD"})
#: Not normal, needs a look.
_WARNING = frozenset({"OB", "DISCHRG", "BYPASS", "OVER", "RB", "CAL", "ALARM", "WAIT"})


def split_flags(status: str, fsd: bool = False) -> Tuple[str, ...]:
    """
    The flags of a C{ups.status} value, with the daemon's FSD latch first
    (as GET VAR shows it).
    """
    flags = tuple(status.split())
    if fsd and "FSD" not in flags:
        flags = ("FSD",) + flags
    return flags


def describe(flags: Sequence[str]) -> str:
    """
    C{("OL", "CHRG")} as C{"On line, charging"}; unknown flags as they are.
    """
    if not flags:
        return "No status"
    words = [FLAG_WORDS.get(flag.upper(), flag) for flag in flags]
    text = ", ".join(words)
    return text[:1].upper() + text[1:]


def severity(flags: Sequence[str], available: bool = True) -> Severity:
    """
    The colour of a status: L{Severity.UNKNOWN} without data, critical
    when power is lost or going, warning when anything is not normal.
    """
    if not available or not flags:
        return Severity.UNKNOWN
    upper = {flag.upper() for flag in flags}
    if upper & _CRITICAL:
        return Severity.CRITICAL
    if upper & _WARNING or "OL" not in upper:
        return Severity.WARNING
    return Severity.OK
