# -*- test-case-name: nutshim.test.test_engine -*-
"""
Tracking of SET VAR and INSTCMD results (NUT 2.8's TRACKING).

A client that said C{SET TRACKING ON} gets an id with each request and polls
C{GET TRACKING <id>} until the driver has reported a result.  Entries expire
after TRACKINGDELAY seconds so the table never grows without bound.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Callable, Optional, Tuple

__all__ = ["TrackingTable", "PENDING"]

PENDING = -1

# NUT 2.8.0's tracking_get(): 4 (INVALID) was still reported as ERR UNKNOWN.
_TEXT = {
    PENDING: "PENDING",
    0: "SUCCESS",
    1: "ERR UNKNOWN",
    2: "ERR INVALID-ARGUMENT",
    3: "ERR FAILED",
}


class TrackingTable:
    """
    Ids in creation order, with their result and creation time.

    @param now: returns the current time (the reactor's C{seconds}).
    @param delay: seconds an entry lives (TRACKINGDELAY, default 3600).
    @param limit: most entries kept at once; the oldest go first.
    """

    def __init__(
        self, now: Callable[[], float], delay: float = 3600.0, limit: int = 100000
    ) -> None:
        self._now = now
        self.delay = delay
        self._limit = limit
        self._entries: "OrderedDict[str, Tuple[float, int]]" = OrderedDict()

    def new(self) -> str:
        """
        Make a pending entry and return its id: an upper-case UUIDv4 as NUT
        makes them.
        """
        self.expire()
        tid = str(uuid.uuid4()).upper()
        self._entries[tid] = (self._now(), PENDING)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)
        return tid

    def report(self, tid: str, result: int) -> None:
        """
        Record a driver's result for C{tid}; unknown ids are ignored.
        """
        key = tid.upper()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], result)

    def status(self, tid: str) -> str:
        """
        The text GET TRACKING answers for C{tid}.
        """
        self.expire()
        entry = self._entries.get(tid.upper())
        if entry is None:
            return "ERR UNKNOWN"
        return _TEXT.get(entry[1], "ERR UNKNOWN")

    def expire(self) -> None:
        """
        Drop entries older than C{delay}.
        """
        limit = self._now() - self.delay
        while self._entries:
            tid, (created, _) = next(iter(self._entries.items()))
            if created > limit:
                break
            del self._entries[tid]

    def get(self, tid: str) -> Optional[int]:
        entry = self._entries.get(tid.upper())
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._entries)
