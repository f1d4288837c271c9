"""
Tests for L{nutshim.web.counters}: what the daemon counts, and that the
counting engine answers exactly as the engine.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nutshim.config.users import parse_users
from nutshim.protocol import commands as c
from nutshim.protocol import parse_request
from nutshim.testing import MemoryDriver
from nutshim.upsd.engine import Engine
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.upsd.tracking import TrackingTable
from nutshim.web.counters import (ERRORS_MAX, DaemonCounters, Handshake, MeteredEngine,
                                  command_label, error_label)


def engines() -> tuple[Engine, MeteredEngine, DaemonCounters]:
    registry = Registry()
    driver = MemoryDriver()
    driver.state.set_info("ups.status", "OL")
    registry.add(UpsEntry("ups", None, driver, "memory", "x"))
    users = parse_users(b"[u]\n password = p\n", "upsd.users")
    tracking = TrackingTable(Clock().seconds, 3600.0)
    counters = DaemonCounters()
    return (Engine(registry, users, tracking), MeteredEngine(registry, users, tracking,
                                                             counters=counters), counters)


REQUESTS = [
    ["GET", "VAR", "ups", "ups.status"],
    ["GET", "VAR", "nope", "ups.status"],
    ["GET", "VAR", "ups", "battery.charge"],
    ["LIST", "VAR", "ups"],
    ["LIST", "UPS"],
    ["GET", "VAR", "ups"],
    ["FROB"],
    ["SET", "VAR", "ups", "x", "1"],
    ["VER"],
]


class MeteredEngineTests(SynchronousTestCase):
    def test_same_replies(self) -> None:
        """
        Counting changes no reply.
        """
        plain, metered, _ = engines()
        for words in REQUESTS:
            request = parse_request(words)
            self.assertEqual(metered.handle(Session("127.0.0.1"), request),
                             plain.handle(Session("127.0.0.1"), request), words)

    def test_counts(self) -> None:
        """
        Every request by its class, every error reply by class and reply.
        """
        _, metered, counters = engines()
        session = Session("127.0.0.1")
        for words in REQUESTS:
            metered.handle(session, parse_request(words))
        self.assertEqual(counters.requests[c.GetVar], 3)
        self.assertEqual(counters.requests[c.ListVar], 1)
        self.assertEqual(counters.errors[(c.GetVar, b"ERR UNKNOWN-UPS\n")], 1)
        self.assertEqual(counters.errors[(c.GetVar, b"ERR VAR-NOT-SUPPORTED\n")], 1)
        self.assertEqual(counters.errors[(c.Invalid, b"ERR INVALID-ARGUMENT\n")], 1)
        self.assertEqual(counters.errors[(c.SetVar, b"ERR USERNAME-REQUIRED\n")], 1)
        self.assertEqual(sum(counters.requests.values()), len(REQUESTS))

    def test_errors_bounded(self) -> None:
        """
        Past ERRORS_MAX distinct errors, new ones count as OTHER.
        """
        counters = DaemonCounters()
        for n in range(ERRORS_MAX + 10):
            counters.error(c.GetVar, b"ERR X%d\n" % n)
        self.assertEqual(len(counters.errors), ERRORS_MAX + 1)
        self.assertEqual(counters.errors[(c.GetVar, b"ERR OTHER\n")], 10)


class LabelTests(SynchronousTestCase):
    def test_commands(self) -> None:
        self.assertEqual(command_label(c.GetVar), "GET VAR")
        self.assertEqual(command_label(c.ListUps), "LIST UPS")
        self.assertEqual(command_label(c.Login), "LOGIN")
        self.assertEqual(command_label(c.SetVar), "SET VAR")
        self.assertEqual(command_label(c.SetTracking), "SET TRACKING")
        self.assertEqual(command_label(c.GetTracking), "GET TRACKING")
        self.assertEqual(command_label(c.Invalid), "invalid")
        self.assertEqual(command_label(c.Unknown), "unknown")

    def test_errors(self) -> None:
        self.assertEqual(error_label(b"ERR DATA-STALE\n"), "DATA-STALE")
        self.assertEqual(error_label(b"ERR \n"), "OTHER")


class ConnectionTests(SynchronousTestCase):
    def test_lifecycle(self) -> None:
        """
        Open, TLS up, closed: the gauges follow; the accepted count stays.
        """
        counters = DaemonCounters()
        counters.opened(1, "L")
        counters.opened(2, "L")
        self.assertEqual((counters.open_plain["L"], counters.accepted["L"]), (2, 2))
        counters.handshake(1, Handshake.OK)
        self.assertEqual((counters.open_plain["L"], counters.open_tls["L"]), (1, 1))
        counters.handshake(1, Handshake.OK)  # only once
        self.assertEqual(counters.open_tls["L"], 1)
        counters.handshake(2, Handshake.ERROR)
        counters.closed(1)
        counters.closed(2)
        counters.closed(3)  # unknown: ignored
        self.assertEqual((counters.open_plain["L"], counters.open_tls["L"]), (0, 0))
        self.assertEqual(counters.accepted["L"], 2)
        self.assertEqual(counters.handshakes, {("L", Handshake.OK): 2, ("L", Handshake.ERROR): 1})

    def test_reloads(self) -> None:
        counters = DaemonCounters()
        counters.reloaded(True, 10.0)
        counters.reloaded(False, 20.0)
        self.assertEqual((counters.reloads, counters.reload_failures, counters.last_reload,
                          counters.last_reload_ok), (2, 1, 20.0, False))
