# -*- test-case-name: nutshim.test.test_sim -*-
"""
The interface between the daemon and a driver.

The daemon asks only four things of a driver: its data (L{DeviceState}),
whether it is connected (else C{ERR DRIVER-NOT-CONNECTED}), whether its data
are stale (else C{ERR DATA-STALE}), and to carry out SET VAR / INSTCMD,
reporting the result of tracked requests later through
L{IDriver.tracking_listener}.  This is exactly what NUT's upsd gets through
the driver socket, so a socket-backed driver slots in behind the same
interface.
"""

from __future__ import annotations

from typing import Callable, Optional

from zope.interface import Attribute, Interface, implementer

from nutshim.state import DeviceState

__all__ = ["IDriver", "TrackingListener", "DriverBase", "TRACKING_SUCCESS",
           "TRACKING_UNKNOWN", "TRACKING_INVALID", "TRACKING_FAILED"]

#: Results of tracked requests, as NUT's drivers report them.
TRACKING_SUCCESS = 0
TRACKING_UNKNOWN = 1
TRACKING_INVALID = 2
TRACKING_FAILED = 3

TrackingListener = Callable[[str, int], None]


class IDriver(Interface):
    """
    A source of one UPS's data, running inside or outside the daemon.
    """

    state = Attribute("The L{DeviceState} the daemon reads.")
    connected = Attribute("C{bool}: whether the driver is reachable.")
    stale = Attribute("C{bool}: whether the data are stale.")
    tracking_listener = Attribute(
        "Callable C{(tracking_id, result)} the daemon sets to learn results."
    )

    def start() -> None:
        """
        Begin producing data (connect, open files, start timers).
        """

    def stop() -> None:
        """
        Stop producing data and release resources.
        """

    def instcmd(cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        """
        Carry out an instant command already checked by the daemon.

        @param cmd: the command name as the client typed it.
        @return: C{False} if it could not be delivered (C{INSTCMD-FAILED}).
        """

    def setvar(name: str, value: str, tracking_id: Optional[str]) -> bool:
        """
        Change a variable already validated by the daemon.

        @return: C{False} if it could not be delivered (C{SET-FAILED}).
        """


@implementer(IDriver)
class DriverBase:
    """
    Shared state of the drivers: the tree, the flags and the listener.
    """

    def __init__(self) -> None:
        self.state = DeviceState()
        self.connected = False
        self.stale = True
        self.tracking_listener: TrackingListener = lambda tracking_id, result: None

    def report(self, tracking_id: Optional[str], result: int) -> None:
        """
        Tell the daemon how a tracked request ended.
        """
        if tracking_id is not None:
            self.tracking_listener(tracking_id, result)

    def start(self) -> None:
        raise NotImplementedError()

    def stop(self) -> None:
        raise NotImplementedError()

    def instcmd(self, cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        raise NotImplementedError()

    def setvar(self, name: str, value: str, tracking_id: Optional[str]) -> bool:
        raise NotImplementedError()
