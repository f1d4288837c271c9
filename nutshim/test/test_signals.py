"""
Tests for L{nutshim.signals}: which handler each daemon signal gets.
"""

from __future__ import annotations

import signal as real_signal
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Tuple

from twisted.logger import Logger, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from nutshim.signals import IGNORED, KEPT, OURS, install_signal_handlers


class FakeSignal:
    """
    The parts of the C{signal} module L{install_signal_handlers} uses.
    """

    SIG_DFL = real_signal.SIG_DFL
    SIG_IGN = real_signal.SIG_IGN
    SIGHUP = 1
    SIGUSR1 = 10
    SIGUSR2 = 12

    def __init__(self) -> None:
        self.handlers: Dict[int, Any] = {1: self.SIG_DFL, 10: self.SIG_DFL, 12: self.SIG_DFL}
        self.main_thread = True

    def getsignal(self, signum: int) -> Any:
        return self.handlers[signum]

    def signal(self, signum: int, handler: Any) -> Any:
        if not self.main_thread:
            raise ValueError("signal only works in main thread")
        old, self.handlers[signum] = self.handlers[signum], handler
        return old

    def deliver(self, signum: int) -> None:
        self.handlers[signum](signum, None)


class FakeReactor:
    def __init__(self) -> None:
        self.calls: List[Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = []

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.calls.append((f, a, kw))

    def run_calls(self) -> None:
        calls, self.calls = self.calls, []
        for f, a, kw in calls:
            f(*a, **kw)


class InstallTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.sig = FakeSignal()
        self.reactor = FakeReactor()
        self.events: List[LogEvent] = []
        self.log = Logger(observer=self.events.append)  # type: ignore[arg-type]

    def install(self, **actions: Any) -> Dict[str, str]:
        return install_signal_handlers(self.reactor, actions, "test-daemon", self.log,
                                       self.sig)  # type: ignore[arg-type]

    def test_default_signals_never_left_at_default(self) -> None:
        """
        With no action at all, every daemon signal still gets a handler that
        ignores it (its default action would terminate the process).
        """
        done = self.install()
        self.assertEqual(done, {"SIGHUP": IGNORED, "SIGUSR1": IGNORED, "SIGUSR2": IGNORED})
        for signum in (1, 10, 12):
            self.assertTrue(callable(self.sig.handlers[signum]))
            self.sig.deliver(signum)
        self.reactor.run_calls()
        self.assertEqual(len(self.events), 3)
        self.assertIn("ignored", self.events[0]["log_format"])

    def test_action_runs_in_reactor(self) -> None:
        """
        The handler only schedules the action; it runs from the reactor.
        """
        ran: List[str] = []
        done = self.install(SIGHUP=lambda: ran.append("reload"))
        self.assertEqual(done["SIGHUP"], OURS)
        self.sig.deliver(1)
        self.assertEqual(ran, [])
        self.reactor.run_calls()
        self.assertEqual(ran, ["reload"])

    def test_twistd_handler_kept(self) -> None:
        """
        A handler twistd installed on SIGUSR1 (log rotation) or SIGUSR2
        (pdb) stays; SIGHUP is always the daemon's.
        """
        rotate = lambda *a: None  # noqa: E731
        self.sig.handlers[10] = rotate
        self.sig.handlers[1] = rotate
        done = self.install(SIGUSR1=lambda: None, SIGHUP=lambda: None)
        self.assertEqual(done["SIGUSR1"], KEPT)
        self.assertIs(self.sig.handlers[10], rotate)
        self.assertEqual(done["SIGHUP"], OURS)
        self.assertIsNot(self.sig.handlers[1], rotate)

    def test_sig_ign_replaced(self) -> None:
        """
        An inherited SIG_IGN is no owner: the daemon's action takes it.
        """
        self.sig.handlers[12] = self.sig.SIG_IGN
        self.assertEqual(self.install(SIGUSR2=lambda: None)["SIGUSR2"], OURS)

    def test_reinstall_replaces_own(self) -> None:
        """
        A second call replaces the first call's handlers instead of keeping
        them as somebody else's.
        """
        ran: List[str] = []
        self.install(SIGUSR1=lambda: ran.append("first"))
        self.assertEqual(self.install(SIGUSR1=lambda: ran.append("second"))["SIGUSR1"], OURS)
        self.sig.deliver(10)
        self.reactor.run_calls()
        self.assertEqual(ran, ["second"])

    def test_failing_action_logged(self) -> None:
        """
        An action that raises is logged; nothing reaches the reactor loop.
        """
        def boom() -> None:
            raise RuntimeError("boom")
        self.install(SIGHUP=boom)
        self.sig.deliver(1)
        self.reactor.run_calls()
        self.assertTrue(any(e.get("log_failure") is not None for e in self.events))
        self.flushLoggedErrors(RuntimeError)

    def test_not_main_thread(self) -> None:
        """
        Outside the main thread nothing is installed and nothing raises.
        """
        self.sig.main_thread = False
        self.assertEqual(self.install(SIGHUP=lambda: None), {})
