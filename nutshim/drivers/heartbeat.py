# -*- test-case-name: nutshim.test.test_heartbeat -*-
"""
C{nutshim-heartbeat}: the heartbeat UPS of RFC 9271 (section 5.1, C{TICK}
and C{TOCK}; section 5.2, note 3).

"A software UPS in the Attachment Daemon provides a regular signal
monitored by the Management Daemon as a way of verifying effective
end-to-end management": its C{ups.status} alternates C{OL TICK} and
C{OL TOCK} every C{interval} seconds, so a Management Daemon that stops
seeing the change knows that something between the driver and itself --
the driver, upsd, the network, its own polling -- is broken, before a
power failure finds out.  C{OL} keeps every Management Daemon, NUT's
upsmon included, from reading anything else into the status.

::

    # ups.conf
    [heartbeat]
        driver = nutshim-heartbeat
        port = none            # ups.conf wants a port; this driver has none
        interval = 300         # seconds between TICK and TOCK (the default)
        desc = "Watch over NUT"

The default of 300 s is the period of the dummy-ups heartbeat of NUT's
configuration examples (C{heartbeat.conf}: C{TIMER 300} between two
statuses), which NUT does not ship.  The interval is published as
C{driver.parameter.interval}, which nut-upsmon reads to size its window.
Runs inside nut-upsd, or as C{nutshim-driver -a heartbeat} behind NUT's C
upsd.  The driver has no instant commands and no writable variables.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from twisted.logger import Logger

from nutshim import __version__
from nutshim.drivers.base import TRACKING_INVALID, TRACKING_UNKNOWN, DriverBase

__all__ = ["HeartbeatUPS", "make_heartbeat_driver", "parse_interval", "DEFAULT_INTERVAL",
           "INTERVAL_VARIABLE", "MAX_INTERVAL", "DRIVER_NAME"]

DRIVER_NAME = "nutshim-heartbeat"
#: Seconds between two statuses by default (NUT's example heartbeat).
DEFAULT_INTERVAL = 300
#: The longest interval accepted: a day.
MAX_INTERVAL = 86400
#: Where the interval is published, for Management Daemons.
INTERVAL_VARIABLE = "driver.parameter.interval"
#: The two statuses, in order.
BEATS = ("OL TICK", "OL TOCK")


def parse_interval(text: Optional[str]) -> int:
    """
    The C{interval} of a ups.conf section (L{DEFAULT_INTERVAL} if absent).

    @raise ValueError: unless a whole number of seconds from 1 to
        L{MAX_INTERVAL}; the message is meant for the administrator.
    """
    if text is None:
        return DEFAULT_INTERVAL
    if text.isdigit() and 1 <= int(text) <= MAX_INTERVAL:
        return int(text)
    raise ValueError(f"interval must be a whole number of seconds from 1 to {MAX_INTERVAL}, "
                     f"not {text!r}")


class HeartbeatUPS(DriverBase):
    """
    A UPS whose status changes every C{interval} seconds, on the clock.

    @ivar beats: how many statuses have been published since L{start}.
    """

    log = Logger()

    def __init__(self, name: str, clock: Any, interval: int = DEFAULT_INTERVAL,
                 port: str = "none") -> None:
        super().__init__()
        self.name = name
        self.interval = interval
        self.port = port
        self.beats = 0
        self._clock = clock
        self._call: Any = None

    def start(self) -> None:
        """
        Publish the variables and C{OL TICK}, then change the status every
        C{interval} seconds.
        """
        if self.connected:
            return
        for var, value in (
            ("driver.name", DRIVER_NAME),
            ("driver.version", __version__),
            ("driver.version.internal", __version__),
            ("driver.parameter.port", self.port),
            (INTERVAL_VARIABLE, str(self.interval)),
            ("device.type", "ups"),
            ("device.mfr", "nutshim"),
            ("device.model", "Heartbeat"),
            ("ups.mfr", "nutshim"),
            ("ups.model", "Heartbeat"),
        ):
            self.state.set_info(var, value)
        self.beats = 0
        self.connected = True
        self.stale = False
        self._beat()
        self.log.info("{ups}: heartbeat every {interval} s", ups=self.name,
                      interval=self.interval)

    def _beat(self) -> None:
        self.state.set_info("ups.status", BEATS[self.beats % 2])
        self.beats += 1
        self._call = self._clock.callLater(self.interval, self._beat)

    def stop(self) -> None:
        """Stop beating; the driver is gone for the daemon."""
        self.connected = False
        self.stale = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def instcmd(self, cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        """There are no commands (upsd refuses them first): C{UNKNOWN}."""
        self.report(tracking_id, TRACKING_UNKNOWN)
        return self.connected

    def setvar(self, name: str, value: str, tracking_id: Optional[str]) -> bool:
        """Nothing is writable (upsd refuses it first): C{INVALID}."""
        self.report(tracking_id, TRACKING_INVALID)
        return self.connected


def make_heartbeat_driver(ups_name: str, options: Mapping[str, str], confdir: str,
                          clock: Any) -> HeartbeatUPS:
    """
    Build the driver of a C{driver = nutshim-heartbeat} section.

    @raise ValueError: for a bad C{interval} (nut-upsd refuses the section
        before this, through L{nutshim.drivers.runner.VALIDATORS}).
    """
    interval = parse_interval(options.get("interval"))
    return HeartbeatUPS(ups_name, clock, interval, options.get("port", "none"))
