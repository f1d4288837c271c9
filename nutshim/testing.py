# -*- test-case-name: nutshim.test.test_engine -*-
"""
Public test helpers: an in-memory driver that records what it is asked.

Shipped in the package (like C{treq.testing}) so that users and our own tests
can drive the daemon without processes or files.
"""

from __future__ import annotations

from typing import List, NoReturn, Optional, Tuple

from nutshim.drivers.base import DriverBase

__all__ = ["MemoryDriver", "skip_or_fail"]


class MemoryDriver(DriverBase):
    """
    A driver whose data the test sets directly.

    @ivar requests: every C{("SET", var, value, tid)} or
        C{("INSTCMD", cmd, param, tid)} received.
    @ivar deliver: what setvar/instcmd return (C{False} simulates a dead
        driver socket).
    """

    def __init__(self, connected: bool = True, stale: bool = False) -> None:
        super().__init__()
        self.connected = connected
        self.stale = stale
        self.deliver = True
        self.started = False
        self.requests: List[Tuple[str, str, Optional[str], Optional[str]]] = []

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def setvar(self, name: str, value: str, tracking_id: Optional[str]) -> bool:
        self.requests.append(("SET", name, value, tracking_id))
        return self.deliver

    def instcmd(self, cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        self.requests.append(("INSTCMD", cmd, param, tracking_id))
        return self.deliver


def skip_or_fail(testcase: object, reason: str) -> "NoReturn":
    """
    Skip a test whose outside tool is missing -- except in CI (C{CI=true}),
    where the test command installs the tool, so its absence is a failure.
    """
    import os

    from twisted.trial.unittest import SkipTest

    if os.environ.get("CI") == "true":
        raise AssertionError(f"{reason} (required in CI)")
    raise SkipTest(reason)
