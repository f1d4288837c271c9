# -*- test-case-name: nutshim.test.test_web -*-
"""
The last hours of each UPS, kept in memory for the status page's charts.

Prometheus is the place for long history; the page only needs enough to
show what happened during the last outage without a Prometheus at hand.
So the daemon samples battery charge, load and input voltage at a fixed
interval (default every 30 s, 720 samples: 6 hours) into a fixed-size
ring per UPS: memory is bounded (a few kB per UPS) whatever runs.  A UPS
without data is sampled as a gap, so a chart shows the outage of a
driver as one.

Besides the fixed interval, a UPS is sampled at once (checked every
second) when its status flags or the availability of its data change,
so a chart shows when an outage began to the second.

The timers run on the injected clock: tests step them with
L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Dict, List, Optional, Tuple

from nutshim.upsd.registry import Registry, UpsEntry
from nutshim.web.snapshot import available, number, status_flags

__all__ = ["Ring", "History", "SERIES", "Point"]

#: The variables charted, in this order.
SERIES = ("battery.charge", "ups.load", "input.voltage")
#: C{(time, charge, load, input voltage, on battery)}; NaN where unknown.
Point = Tuple[float, float, float, float, bool]
_NAN = float("nan")


class Ring:
    """
    The last C{capacity} points of one UPS, oldest first.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a ring holds at least one point")
        self.capacity = capacity
        self._times = array("d", [0.0]) * capacity
        self._values = [array("d", [_NAN]) * capacity for _ in SERIES]
        self._battery = array("b", [0]) * capacity
        self._next = 0
        self._count = 0
        #: Points ever appended: a new point makes a new version.
        self.version = 0

    def __len__(self) -> int:
        return self._count

    def append(self, when: float, values: Tuple[float, ...], on_battery: bool) -> None:
        i = self._next
        self._times[i] = when
        for series, value in zip(self._values, values):
            series[i] = value
        self._battery[i] = 1 if on_battery else 0
        self._next = (i + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)
        self.version += 1

    def points(self, since: Optional[float] = None) -> List[Point]:
        """
        The points, oldest first; only those at or after C{since} if given.
        """
        start = (self._next - self._count) % self.capacity
        out: List[Point] = []
        for k in range(self._count):
            i = (start + k) % self.capacity
            when = self._times[i]
            if since is not None and when < since:
                continue
            out.append((when, self._values[0][i], self._values[1][i], self._values[2][i],
                        bool(self._battery[i])))
        return out


def _value(entry: UpsEntry, name: str) -> float:
    var = entry.driver.state.get(name)
    if var is None:
        return _NAN
    value = number(var.value)
    return _NAN if value is None else float(value)


def current_point(entry: UpsEntry, now: float) -> Point:
    """
    What a sample of C{entry} taken now would hold.
    """
    if not available(entry):
        return (now, _NAN, _NAN, _NAN, False)
    charge, load, voltage = (_value(entry, name) for name in SERIES)
    return (now, charge, load, voltage, "OB" in status_flags(entry))


def _condition(entry: UpsEntry) -> object:
    return (available(entry), status_flags(entry))


class History:
    """
    Samples every UPS of the registry on a timer.

    @param clock: provides C{callLater} and C{seconds}.
    @param interval: seconds between samples.
    @param capacity: samples kept per UPS.
    """

    #: Seconds between checks for a changed status.
    WATCH = 1.0

    def __init__(self, registry: Registry, clock: Any, interval: float = 30.0,
                 capacity: int = 720) -> None:
        if interval <= 0:
            raise ValueError("the sampling interval must be positive")
        self.registry = registry
        self.clock = clock
        self.interval = interval
        self.capacity = capacity
        self._rings: Dict[str, Ring] = {}
        self._seen: Dict[str, object] = {}
        self._call: Any = None
        self._watch: Any = None

    @property
    def span(self) -> float:
        """
        Seconds of history a full ring holds.
        """
        return self.interval * self.capacity

    def start(self) -> None:
        """
        Take a sample now and then every C{interval} seconds.
        """
        if self._call is None:
            self._tick()
            self._check()

    def stop(self) -> None:
        for call in (self._call, self._watch):
            if call is not None and call.active():
                call.cancel()
        self._call = self._watch = None

    def _tick(self) -> None:
        self._call = self.clock.callLater(self.interval, self._tick)
        self.sample()

    def _check(self) -> None:
        self._watch = self.clock.callLater(self.WATCH, self._check)
        now = self.clock.seconds()
        for entry in self.registry:
            key = entry.name.lower()
            ring = self._rings.get(key)
            if ring is not None and self._seen.get(key) != _condition(entry):
                self._record(entry, key, ring, now)

    def sample(self) -> None:
        """
        Record one point per UPS; forget UPSes gone from the registry.
        """
        now = self.clock.seconds()
        seen = set()
        for entry in self.registry:
            key = entry.name.lower()
            seen.add(key)
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = Ring(self.capacity)
            self._record(entry, key, ring, now)
        for key in [k for k in self._rings if k not in seen]:
            del self._rings[key]
            self._seen.pop(key, None)

    def _record(self, entry: UpsEntry, key: str, ring: Ring, now: float) -> None:
        self._seen[key] = _condition(entry)
        if not len(ring) and not available(entry):
            return  # no leading gap: the driver has not delivered yet
        point = current_point(entry, now)
        ring.append(now, point[1:4], point[4])

    def points(self, name: str) -> List[Point]:
        ring = self._rings.get(name.lower())
        return ring.points() if ring is not None else []

    def version(self, name: str) -> object:
        """
        Changes whenever the points of C{name} do (for caching charts).
        """
        ring = self._rings.get(name.lower())
        return (id(ring), ring.version) if ring is not None else None


def finite(value: float) -> Optional[float]:
    """
    C{value}, or L{None} for NaN (for JSON).
    """
    return None if math.isnan(value) else value
