# -*- test-case-name: nutshim.test.test_web -*-
"""
What every view reads of one UPS, in one place: whether its data may be
shown, how old they are, its status flags and its numbers.

A view reads the L{UpsEntry} the daemon already holds and never asks the
driver for anything: a scrape costs no driver round trip and cannot stall
on one.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple, Union

from nutshim.upsd.registry import UpsEntry

__all__ = ["available", "data_age", "delivered", "status_flags", "number", "INT64"]

_NUMERIC = re.compile(r"-?[0-9.]+\Z")
INT64 = (-(2**63), 2**63 - 1)


def available(entry: UpsEntry) -> bool:
    """
    Whether the daemon would answer C{GET VAR} for this UPS: a connected
    driver with fresh data (else C{DRIVER-NOT-CONNECTED}/C{DATA-STALE},
    and the views show no values either).
    """
    driver = entry.driver
    return bool(driver.connected) and not driver.stale


def delivered(entry: UpsEntry) -> bool:
    """
    Whether the driver has delivered its first data: available, and past
    the C{WAIT} a driver socket shows until its dump is complete.
    """
    if not available(entry):
        return False
    done = getattr(entry.driver, "dump_done", None)
    if done is not None:
        return bool(done)
    return len(entry.driver.state) > 0


def data_age(entry: UpsEntry, now: float) -> Optional[float]:
    """
    Seconds since the driver last spoke, as upsd's MAXAGE counts them
    (any line from a NUT driver socket, PONG included); L{None} while it
    is not connected.  nutshim's in-process drivers publish into the
    daemon's memory directly, so their data are as old as 0 s.
    """
    driver = entry.driver
    if not driver.connected:
        return None
    heard = getattr(driver, "last_heard", None)
    if heard is None:
        return 0.0
    return max(0.0, now - float(heard))


def status_flags(entry: UpsEntry) -> Tuple[str, ...]:
    """
    C{ups.status} as flags, with the FSD latch first as GET VAR shows it;
    empty when the UPS has no status or no data.
    """
    var = entry.driver.state.get("ups.status")
    flags = tuple(var.value.split()) if var is not None else ()
    if entry.fsd and "FSD" not in flags:
        flags = ("FSD",) + flags
    return flags


def number(text: str) -> Optional[Union[int, float]]:
    """
    A NUT value as the number DRuggeri/nut_exporter's client library
    (go.nut) reads it: blanks trimmed, then C{-?[0-9.]+}; with one dot a
    float, else a 64-bit integer; anything else is not a number.
    """
    text = text.strip(" ")
    if not _NUMERIC.match(text):
        return None
    try:
        if text.count(".") == 1:
            return float(text)
        value = int(text)
    except ValueError:
        return None
    if not INT64[0] <= value <= INT64[1]:
        return None
    return value
