"""
Tests for L{nutshim.web.resources} and L{nutshim.web.service}: the HTTP
answers, byte for byte through twisted.web, and the listeners, all in
memory.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from nutshim.testing import MemoryDriver
from nutshim.upsd.registry import Registry, UpsEntry
from nutshim.web.counters import DaemonCounters
from nutshim.web.history import History
from nutshim.web.resources import MAX_BODY, WebContext, make_site
from nutshim.web.service import MAX_HTTP_CONNECTIONS, HttpEndpoint, WebService, parse_http_endpoint


class Descriptions:
    def describe_var(self, name: str) -> Optional[str]:
        return None


def context() -> Tuple[WebContext, UpsEntry]:
    clock = Clock()
    clock.advance(1000)
    registry = Registry()
    driver = MemoryDriver()
    for name, value in (("ups.status", "OL"), ("battery.charge", "95"), ("ups.load", "20")):
        driver.state.set_info(name, value)
    entry = UpsEntry("Lab", "Lab UPS", driver, "dummy-ups", "lab.dev")
    registry.add(entry)
    history = History(registry, clock)
    history.sample()
    descriptions = Descriptions()
    return WebContext(registry, lambda: descriptions, DaemonCounters(), clock.seconds, history,
                      host="testhost"), entry


class Response:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: Dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        if self.headers.get("transfer-encoding") == "chunked":
            self.body = _unchunk(self.body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2:]
    return out


def request(ctx: WebContext, path: str, method: str = "GET", extra: bytes = b"") -> Response:
    site = make_site(ctx, Clock())
    proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 9199))
    assert proto is not None
    proto.makeConnection(transport)
    proto.dataReceived(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".encode()
                       + extra + b"\r\n")
    return Response(transport.value())


class ResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ctx, self.entry = context()

    def test_metrics(self) -> None:
        r = request(self.ctx, "/metrics")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertIn(b'network_ups_tools_battery_charge{ups="Lab"} 95\n', r.body)
        self.assertIn(b'nutshim_http_requests_total{resource="metrics"} 1\n', r.body)
        self.assertEqual(self.ctx.counters.scrapes["metrics"], 1)
        # The second scrape reports how long the first one took.
        self.assertGreater(self.ctx.counters.last_scrape_seconds, 0)

    def test_ups_metrics(self) -> None:
        r = request(self.ctx, "/ups_metrics?ups=lab&variables=battery.charge")
        self.assertEqual(r.status, 200)
        self.assertIn(b"network_ups_tools_battery_charge 95\n", r.body)
        self.assertNotIn(b"ups_load", r.body)
        self.assertEqual(request(self.ctx, "/ups_metrics?ups=nope").status, 404)

    def test_page(self) -> None:
        r = request(self.ctx, "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertIn("default-src 'none'", r.headers["content-security-policy"])
        self.assertIn(b'data-ups="Lab"', r.body)
        self.assertIn(b"UPS status \xc2\xb7 testhost", r.body)
        cards = request(self.ctx, "/cards")
        self.assertIn(b'data-ups="Lab"', cards.body)
        self.assertNotIn(b"<html", cards.body)

    def test_static(self) -> None:
        css, js = request(self.ctx, "/status.css"), request(self.ctx, "/status.js")
        self.assertEqual(css.headers["content-type"], "text/css; charset=utf-8")
        self.assertIn(b".card", css.body)
        self.assertIn(b'fetch("cards"', js.body)

    def test_api(self) -> None:
        r = request(self.ctx, "/api/v1/ups")
        self.assertEqual(r.headers["content-type"], "application/json")
        body = json.loads(r.body)
        self.assertEqual(body["api_version"], 1)
        self.assertEqual([u["name"] for u in body["ups"]], ["Lab"])
        one = json.loads(request(self.ctx, "/api/v1/ups/LAB").body)
        self.assertEqual(one["variables"]["battery.charge"]["value"], "95")
        history = json.loads(request(self.ctx, "/api/v1/ups/lab/history").body)
        self.assertEqual(history["points"][0]["battery.charge"], 95.0)
        missing = request(self.ctx, "/api/v1/ups/nope")
        self.assertEqual(missing.status, 404)
        self.assertEqual(json.loads(missing.body)["error"], "UNKNOWN-UPS")

    def test_not_found(self) -> None:
        for path in ("/nope", "/metrics/x", "/api/v1/ups/lab/history/x", "/api/v2/ups"):
            self.assertEqual(request(self.ctx, path).status, 404, path)

    def test_read_only(self) -> None:
        """
        Only GET and HEAD: the endpoint changes nothing.
        """
        for path in ("/metrics", "/api/v1/ups/lab", "/"):
            r = request(self.ctx, path, "POST", b"Content-Length: 0\r\n")
            self.assertEqual(r.status, 405, path)
        self.assertEqual(request(self.ctx, "/metrics", "HEAD").status, 200)

    def test_big_body(self) -> None:
        """
        A request announcing a body past MAX_BODY is cut off.
        """
        site = make_site(self.ctx, Clock())
        proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert proto is not None
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                           % (MAX_BODY + 1) + b"x" * 100)
        self.assertTrue(transport.disconnecting)

    def test_no_traceback(self) -> None:
        """
        A failing renderer answers 500 without showing a traceback.
        """
        def boom() -> Descriptions:
            raise RuntimeError("secret detail")

        self.ctx.exposition.descriptions = boom  # type: ignore[assignment]
        r = request(self.ctx, "/metrics")
        self.assertEqual(r.status, 500)
        self.assertNotIn(b"secret detail", r.body)
        self.flushLoggedErrors(RuntimeError)


class EndpointTests(SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse_http_endpoint("9199"),
                         HttpEndpoint("9199", "tcp:9199:interface=127.0.0.1", False))
        self.assertEqual(parse_http_endpoint("tls:9199"),
                         HttpEndpoint("tls:9199", "tcp:9199:interface=127.0.0.1", True))
        self.assertEqual(parse_http_endpoint("tcp6:9199:interface=\\:\\:1").description,
                         "tcp6:9199:interface=\\:\\:1")
        for bad in ("", "70000", "frob:1", "tcp:notaport", "tls:ssl:9199"):
            self.assertRaises(ValueError, parse_http_endpoint, bad)


class ServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ctx, _ = context()
        self.reactor = MemoryReactorClock()
        self.started = 0

    def service(self, *texts: str, tls: object = None) -> WebService:
        def start() -> None:
            self.started += 1

        return WebService(self.reactor, make_site(self.ctx, self.reactor), [parse_http_endpoint(t) for t in texts],
                          tls_options=lambda: tls, on_start=start)

    def test_listen(self) -> None:
        svc = self.service("9199", "tcp:9200:interface=0.0.0.0")
        svc.startService()
        self.assertEqual([(p[0], p[3]) for p in self.reactor.tcpServers],
                         [(9199, "127.0.0.1"), (9200, "0.0.0.0")])
        self.assertEqual(self.started, 1)
        svc.set_endpoints([parse_http_endpoint("9201")])
        self.assertEqual(sorted(e.text for e in svc.ports), ["9201"])
        svc.stopService()
        self.assertEqual(svc.ports, {})

    def test_nothing(self) -> None:
        """
        Without endpoints nothing listens and nothing is sampled.
        """
        self.service().startService()
        self.assertEqual((self.reactor.tcpServers, self.started), ([], 0))

    def test_tls_needs_certificate(self) -> None:
        svc = self.service("tls:9199")
        e = self.assertRaises(SystemExit, svc.startService)
        self.assertIn("tls:9199: tls: needs CERTFILE", str(e))

    def test_tls(self) -> None:
        """
        C{tls:} wraps the site in TLS with the daemon's options.
        """
        svc = self.service("tls:9199", tls=object())
        svc.startService()
        factory: Any = self.reactor.tcpServers[0][1]
        self.assertEqual(type(factory.wrappedFactory).__name__, "TLSMemoryBIOFactory")

    def test_connection_limit(self) -> None:
        svc = self.service("9199")
        svc.startService()
        factory: Any = self.reactor.tcpServers[0][1]
        addr = IPv4Address("TCP", "127.0.0.1", 1)
        protos = []
        for _ in range(MAX_HTTP_CONNECTIONS):
            proto = factory.buildProtocol(addr)
            proto.makeConnection(StringTransport())
            protos.append(proto)
        self.assertIsNone(factory.buildProtocol(addr))

    def test_listen_failure(self) -> None:
        """
        A listener that cannot be opened at start stops the daemon with
        one line.
        """
        from twisted.internet.error import CannotListenError

        def fail(*a: object, **k: object) -> None:
            raise CannotListenError("127.0.0.1", 9199, OSError(98, "Address already in use"))

        self.reactor.listenTCP = fail  # type: ignore[method-assign]
        e = self.assertRaises(SystemExit, self.service("9199").startService)
        self.assertIn("cannot listen for HTTP on 9199", str(e))
