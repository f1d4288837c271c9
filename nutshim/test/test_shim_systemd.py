"""
The shims under systemd's C{Type=notify} (L{nutshim.shim.service.ShimService}).
"""

from __future__ import annotations

from typing import List

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from nutshim.sdnotify import Notifier, ServiceNotifier
from nutshim.shim.service import ShimService
from nutshim.test.test_sdnotify import Sockets
from nutshim.test.test_signals import FakeReactor, FakeSignal


class ShimReadinessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.sockets = Sockets()
        self.clock = Clock()
        self.sig = FakeSignal()
        self.reactor = FakeReactor()
        self.open = 0
        self.reload_error = ""

        def reload() -> str:
            if self.reload_error:
                raise usage.UsageError(self.reload_error)
            return "certificate unchanged"

        self.notifier = ServiceNotifier(Notifier("/run/notify", self.sockets), self.clock,
                                        lambda: "", watchdog=5.0)
        self.service = ShimService(self.reactor, "nut-server-shim", reload,
                                   self.sig, notifier=self.notifier,  # type: ignore[arg-type]
                                   sessions=lambda: self.open)

    def kinds(self) -> List[str]:
        return [m[0] for m in self.sockets.messages() if m != ["WATCHDOG=1"]]

    def test_ready_at_start(self) -> None:
        """
        The listeners are bound before startService: READY=1 at once, with
        the open sessions as STATUS=, and the watchdog pings.
        """
        self.service.startService()
        self.assertIn(["READY=1", "STATUS=0 sessions"], self.sockets.messages())
        self.assertIn(["WATCHDOG=1"], self.sockets.messages())
        self.open = 1
        self.assertEqual(self.service.status_line(), "1 session")

    def test_reload_told(self) -> None:
        """
        SIGHUP: RELOADING=1, then READY=1, also when the reload is refused
        (the running certificates stay).
        """
        self.service.startService()
        self.sig.deliver(self.sig.SIGHUP)
        self.reactor.run_calls()
        self.reload_error = "/etc/nut/shim/server.pem: --certfile: not PEM"
        self.sig.deliver(self.sig.SIGHUP)
        self.reactor.run_calls()
        self.service.stopService()
        self.assertEqual(self.kinds(), ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1",
                                        "READY=1", "STOPPING=1"])
        refused = [m for m in self.sockets.messages() if m[0] == "READY=1"][-1]
        self.assertIn("reload refused", refused[-1])

    def test_no_notifier(self) -> None:
        """
        Without systemd nothing is told, and SIGHUP still reloads.
        """
        service = ShimService(self.reactor, "nut-client-shim", lambda: "ok",
                              self.sig)  # type: ignore[arg-type]
        service.startService()
        self.sig.deliver(self.sig.SIGHUP)
        self.reactor.run_calls()
        service.stopService()
        self.assertEqual(self.sockets.messages(), [])
