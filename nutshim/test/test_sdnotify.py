"""
Tests for L{nutshim.sdnotify}: the datagrams systemd gets, with a fake
socket and a L{Clock}.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any, List, Optional, Sequence, Tuple, cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger
from twisted.trial.unittest import SynchronousTestCase

from nutshim.sdnotify import Notifier, Phase, ServiceNotifier, notify_address, watchdog_interval


class FakeSocket:
    """
    Records datagrams; fails with C{error} when set.
    """

    def __init__(self) -> None:
        self.sent: List[Tuple[bytes, Any]] = []
        self.error: Optional[OSError] = None
        self.closed = False

    def sendto(self, data: bytes, address: Any) -> int:
        if self.error is not None:
            raise self.error
        self.sent.append((data, address))
        return len(data)

    def close(self) -> None:
        self.closed = True


class Sockets:
    def __init__(self) -> None:
        self.made: List[FakeSocket] = []

    def __call__(self) -> FakeSocket:
        sock = FakeSocket()
        self.made.append(sock)
        return sock

    def messages(self) -> List[List[str]]:
        return [data.decode().split("\n") for sock in self.made for data, _ in sock.sent]


class AddressTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(notify_address("/run/systemd/notify"), "/run/systemd/notify")
        self.assertEqual(notify_address("@abstract/x"), b"\0abstract/x")
        for bad in (None, "", "relative", "vsock:2:123"):
            self.assertIsNone(notify_address(bad))

    def test_watchdog(self) -> None:
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "30000000"}, 7), 15.0)
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "7"}, 7), 2.0)
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "8"}, 7))
        self.assertIsNone(watchdog_interval({}, 7))
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "x"}, 7))
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "0"}, 7))


class NotifierTests(SynchronousTestCase):
    def test_send(self) -> None:
        sockets = Sockets()
        notifier = Notifier("/run/notify", sockets)
        self.assertTrue(notifier.send("READY=1", "STATUS=two\nlines"))
        self.assertEqual(sockets.made[0].sent, [(b"READY=1\nSTATUS=two lines", "/run/notify")])

    def test_disabled(self) -> None:
        sockets = Sockets()
        notifier = Notifier(None, sockets)
        self.assertFalse(notifier.enabled)
        self.assertFalse(notifier.send("READY=1"))
        self.assertEqual(sockets.made, [])

    def test_from_environ(self) -> None:
        """
        The variable is read and removed, so that children do not inherit it.
        """
        env = {"NOTIFY_SOCKET": "@sd", "OTHER": "x"}
        notifier = Notifier.from_environ(env, socket_factory=Sockets())
        self.assertEqual(notifier.address, b"\0sd")
        self.assertEqual(env, {"OTHER": "x"})

    def test_errors_never_raise(self) -> None:
        """
        A failing socket is logged once per error and replaced; sending
        just returns False.
        """
        sockets = Sockets()
        events: List[Any] = []
        notifier = Notifier("/x", sockets, log=Logger(observer=cast(ILogObserver, events.append)))
        notifier.send("READY=1")
        sockets.made[0].error = OSError(errno.ECONNREFUSED, "refused")
        self.assertFalse(notifier.send("WATCHDOG=1"))
        self.assertTrue(sockets.made[0].closed)
        self.assertTrue(notifier.send("WATCHDOG=1"))  # a new socket, which works
        self.assertEqual(len(sockets.made), 2)
        sockets.made[1].error = OSError(errno.ECONNREFUSED, "refused")
        notifier.send("WATCHDOG=1")
        self.assertEqual(len(events), 1)

    def test_real_socket(self) -> None:
        """
        A real datagram to a real Unix socket, in the abstract namespace.
        """
        name = f"nutshim-test-{os.getpid()}-{id(self)}"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind("\0" + name)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        self.addCleanup(notifier.close)
        self.assertTrue(notifier.send("READY=1"))
        server.settimeout(5)
        self.assertEqual(server.recv(4096), b"READY=1")


class ServiceNotifierTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.sockets = Sockets()
        self.status = "1 UPS, 0 clients"
        self.pending: List[str] = ["lab"]
        self.notifier = ServiceNotifier(Notifier("/n", self.sockets), self.clock,
                                        lambda: self.status, watchdog=2.0,
                                        monotonic_usec=lambda: 12345)
        self.addCleanup(self.notifier.close)

    def messages(self) -> List[List[str]]:
        return self.sockets.messages()

    def waiting(self) -> Sequence[str]:
        return self.pending

    def test_ready_when_data(self) -> None:
        """
        READY=1 only once nothing is pending, with the status.
        """
        self.notifier.wait_ready(self.waiting, timeout=15)
        self.clock.advance(1)
        self.assertEqual(self.messages(), [])
        self.pending = []
        self.clock.advance(0.1)
        self.assertEqual(self.messages(), [["READY=1", "STATUS=1 UPS, 0 clients"]])
        self.assertEqual(self.notifier.phase, Phase.READY)

    def test_ready_on_timeout(self) -> None:
        """
        A driver that never delivers does not hold READY=1 forever; the
        status says who is missing.
        """
        self.notifier.wait_ready(self.waiting, timeout=15)
        self.clock.pump([1] * 16)
        self.assertEqual(self.messages(),
                         [["READY=1", "STATUS=1 UPS, 0 clients (no data yet from lab)"]])
        self.flushLoggedErrors()

    def test_reload(self) -> None:
        """
        RELOADING=1 with MONOTONIC_USEC, then READY=1, whether the reload
        was applied or refused.
        """
        self.notifier.ready()
        self.notifier.reloading()
        self.notifier.reloaded(True)
        self.notifier.reloading()
        self.notifier.reloaded(False)
        self.assertEqual(self.messages()[1:], [
            ["RELOADING=1", "MONOTONIC_USEC=12345", "STATUS=Reloading the configuration"],
            ["READY=1", "STATUS=1 UPS, 0 clients"],
            ["RELOADING=1", "MONOTONIC_USEC=12345", "STATUS=Reloading the configuration"],
            ["READY=1", "STATUS=1 UPS, 0 clients (reload refused: running configuration kept)"],
        ])

    def test_reload_while_starting(self) -> None:
        """
        A SIGHUP before READY=1 is not announced: READY=1 comes once.
        """
        self.notifier.wait_ready(self.waiting, timeout=15)
        self.notifier.reloading()
        self.notifier.reloaded(True)
        self.assertEqual(self.messages(), [])
        self.pending = []
        self.clock.advance(0.1)
        self.assertEqual([m[0] for m in self.messages()], ["READY=1"])

    def test_stopping(self) -> None:
        self.notifier.ready()
        self.notifier.stopping()
        self.notifier.stopping()
        self.notifier.reloading()
        self.notifier.ready()
        self.assertEqual(self.messages()[1:], [["STOPPING=1", "STATUS=Stopping"]])
        self.assertEqual(self.notifier.phase, Phase.STOPPING)

    def test_stopping_while_starting(self) -> None:
        self.notifier.wait_ready(self.waiting, timeout=15)
        self.notifier.stopping()
        self.pending = []
        self.clock.advance(1)
        self.assertEqual(self.messages(), [["STOPPING=1", "STATUS=Stopping"]])

    def test_watchdog(self) -> None:
        """
        WATCHDOG=1 at once and then every interval, from the clock.
        """
        self.notifier.start()
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertEqual(self.messages(), [["WATCHDOG=1"]] * 3)
        self.notifier.close()
        self.clock.advance(10)
        self.assertEqual(len(self.messages()), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_status_updates(self) -> None:
        """
        A changed status is sent within status_interval; an unchanged one
        is not repeated.
        """
        self.notifier.ready()
        self.clock.advance(10)
        self.status = "1 UPS, 3 clients"
        self.clock.advance(10)
        self.clock.advance(10)
        self.assertEqual(self.messages()[1:], [["STATUS=1 UPS, 3 clients"]])

    def test_status_failure(self) -> None:
        """
        A status callback that raises does not stop READY=1.
        """
        def broken() -> str:
            raise RuntimeError("no")

        notifier = ServiceNotifier(Notifier("/n", self.sockets), self.clock, broken)
        notifier.ready()
        self.assertEqual(self.messages(), [["READY=1", "STATUS="]])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        notifier.close()

    def test_from_environ(self) -> None:
        env = {"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
        notifier = ServiceNotifier.from_environ(self.clock, lambda: "", env)
        self.assertEqual(notifier.watchdog, 5.0)
        self.assertEqual(env, {})
        plain = ServiceNotifier.from_environ(self.clock, lambda: "", {"WATCHDOG_USEC": "1000"})
        self.assertFalse(plain.enabled)
        self.assertIsNone(plain.watchdog)
        plain.start()
        plain.wait_ready(lambda: [], 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
