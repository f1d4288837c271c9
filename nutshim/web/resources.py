# -*- test-case-name: nutshim.test.test_web_resources -*-
"""
The twisted.web resources of nut-upsd's HTTP side: thin glue between a
request and the pure renderers.

Every answer is computed synchronously from the daemon's memory, in the
reactor thread, in a few milliseconds (bench/web_bench.py), so nothing
here defers or threads, and nothing can reach a driver.  Everything is
read-only: only GET and HEAD exist (anything else is C{405}), and a
request body is refused past a few kilobytes.

Paths, all relative so the page works behind a reverse proxy's prefix:

  - C{/}: the status page; C{/cards}: its cards (fetched by its script);
    C{/status.css}, C{/status.js}: its only assets;
  - C{/metrics}: Prometheus, every UPS and the daemon
    (L{nutshim.web.exposition});
  - C{/ups_metrics?ups=NAME}: one UPS exactly as DRuggeri/nut_exporter;
  - C{/api/v1/ups}, C{/api/v1/ups/NAME}, C{/api/v1/ups/NAME/history}:
    JSON (L{nutshim.web.jsonview}).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from nutshim.upsd.registry import Registry
from nutshim.web.counters import DaemonCounters
from nutshim.web.exposition import CONTENT_TYPE, Descriptions, Exposition
from nutshim.web.history import History
from nutshim.web.jsonview import JsonView, error_json, history_json
from nutshim.web.page import CardRenderer, render_page
from nutshim.web.process import ProcessMetrics

__all__ = ["WebContext", "make_root", "make_site", "MAX_BODY"]

#: Largest request body accepted (nothing here reads one).
MAX_BODY = 4096
_STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass
class WebContext:
    """
    What the resources read of the daemon.

    @ivar registry: the UPSes and sessions.
    @ivar descriptions: returns the current cmdvartab.
    @ivar counters: the daemon's counters.
    @ivar seconds: the clock (the reactor's C{seconds}).
    @ivar history: the charts' samples.
    @ivar host: the name shown in the page's title.
    @ivar timer: measures render time (C{time.perf_counter}).
    """

    registry: Registry
    descriptions: Descriptions
    counters: DaemonCounters
    seconds: Callable[[], float]
    history: History
    host: str = "localhost"
    process: Optional[ProcessMetrics] = None
    timer: Callable[[], float] = time.perf_counter
    exposition: Exposition = field(init=False)
    cards: CardRenderer = field(init=False)
    json: JsonView = field(init=False)

    def __post_init__(self) -> None:
        self.exposition = Exposition(self.registry, self.descriptions, self.counters, self.seconds,
                                     self.process)
        self.cards = CardRenderer(self.registry, self.history)
        self.json = JsonView(self.registry)


def _headers(request: Request, content_type: str) -> None:
    request.setHeader(b"content-type", content_type.encode("ascii"))
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")


def _json(request: Request, body: Union[str, Dict[str, Any]], code: int = 200) -> bytes:
    request.setResponseCode(code)
    _headers(request, "application/json")
    if not isinstance(body, str):
        body = json.dumps(body, separators=(",", ":"), allow_nan=False)
    return body.encode("utf-8") + b"\n"


class _Leaf(Resource):
    """
    A resource with no children: C{/metrics/x} is a 404, not C{/metrics}.
    """

    isLeaf = False

    def __init__(self, context: WebContext) -> None:
        super().__init__()
        self.context = context

    def getChild(self, path: bytes, request: Any) -> Resource:
        if path == b"":
            return self
        return _NotFound()


class _NotFound(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(http.NOT_FOUND)
        _headers(request, "text/plain; charset=utf-8")
        return b"Not found\n"


class Metrics(_Leaf):
    """
    C{/metrics}.
    """

    def render_GET(self, request: Request) -> bytes:
        ctx = self.context
        ctx.counters.scraped("metrics")
        started = ctx.timer()
        body = ctx.exposition.render()
        ctx.counters.last_scrape_seconds = ctx.timer() - started
        _headers(request, CONTENT_TYPE)
        return body


def _arg(request: Request, name: bytes) -> Optional[str]:
    values = (request.args or {}).get(name)
    if not values:
        return None
    return values[0].decode("utf-8", "replace")


def _list_arg(request: Request, name: bytes) -> Optional[List[str]]:
    text = _arg(request, name)
    if text is None:
        return None
    return [w.strip() for w in text.split(",") if w.strip()]


class UpsMetrics(_Leaf):
    """
    C{/ups_metrics?ups=NAME[&variables=a,b][&statuses=OL,OB]}: one UPS
    in nut_exporter's own format, for scrape configurations written for
    it (its C{server}, C{username} and C{password} parameters are
    ignored: this daemon serves its own UPSes).
    """

    def render_GET(self, request: Request) -> bytes:
        ctx = self.context
        ctx.counters.scraped("ups_metrics")
        code, body = ctx.exposition.render_ups(
            _arg(request, b"ups"), _list_arg(request, b"variables"), _list_arg(request, b"statuses"))
        request.setResponseCode(code)
        _headers(request, CONTENT_TYPE if code == 200 else "text/plain; charset=utf-8")
        return body


class Page(_Leaf):
    """
    C{/}: the status page.
    """

    def render_GET(self, request: Request) -> bytes:
        ctx = self.context
        ctx.counters.scraped("page")
        cards = ctx.cards.render(ctx.seconds())
        _headers(request, "text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", _CSP.encode("ascii"))
        return render_page(cards, ctx.host).encode("utf-8")


class Cards(_Leaf):
    """
    C{/cards}: the page's cards, for its script.
    """

    def render_GET(self, request: Request) -> bytes:
        ctx = self.context
        ctx.counters.scraped("cards")
        _headers(request, "text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", _CSP.encode("ascii"))
        return ctx.cards.render(ctx.seconds()).encode("utf-8")


class Static(Resource):
    """
    One file of C{nutshim/web/static}, read once.
    """

    isLeaf = True

    def __init__(self, name: str, content_type: str) -> None:
        super().__init__()
        with open(os.path.join(_STATIC, name), "rb") as f:
            self.body = f.read()
        self.content_type = content_type

    def render_GET(self, request: Request) -> bytes:
        _headers(request, self.content_type)
        request.setHeader(b"cache-control", b"max-age=300")
        return self.body


class UpsCollection(Resource):
    """
    C{/api/v1/ups} and, below it, each UPS.
    """

    def __init__(self, context: WebContext) -> None:
        super().__init__()
        self.context = context

    def getChild(self, path: bytes, request: Any) -> Resource:
        if path == b"":
            return self
        return OneUps(self.context, path.decode("utf-8", "replace"))

    def render_GET(self, request: Request) -> bytes:
        ctx = self.context
        ctx.counters.scraped("api")
        return _json(request, ctx.json.all(ctx.seconds()))


class OneUps(Resource):
    """
    C{/api/v1/ups/NAME} (case-insensitive, as NUT) and its C{history}.
    """

    def __init__(self, context: WebContext, name: str, history: bool = False) -> None:
        super().__init__()
        self.context = context
        self.name = name
        self.history = history

    def getChild(self, path: bytes, request: Any) -> Resource:
        if path == b"" and not self.history:
            return self
        if path == b"history" and not self.history:
            return OneUps(self.context, self.name, history=True)
        return _NotFound()

    def render_GET(self, request: Request) -> bytes:
        ctx = self.context
        ctx.counters.scraped("api")
        entry = ctx.registry.get(self.name)
        if entry is None:
            return _json(request, error_json("UNKNOWN-UPS", "no such UPS", self.name), http.NOT_FOUND)
        if self.history:
            return _json(request, history_json(entry, ctx.history.points(entry.name),
                                               ctx.history.interval))
        return _json(request, ctx.json.one(entry, ctx.seconds()))


def make_root(context: WebContext) -> Resource:
    """
    The resource tree.
    """
    root = Resource()
    page = Page(context)
    root.putChild(b"", page)
    root.putChild(b"index.html", page)
    root.putChild(b"cards", Cards(context))
    root.putChild(b"metrics", Metrics(context))
    root.putChild(b"ups_metrics", UpsMetrics(context))
    root.putChild(b"status.css", Static("status.css", "text/css; charset=utf-8"))
    root.putChild(b"status.js", Static("status.js", "text/javascript; charset=utf-8"))
    api, v1 = Resource(), Resource()
    root.putChild(b"api", api)
    api.putChild(b"v1", v1)
    v1.putChild(b"ups", UpsCollection(context))
    return root


class _BoundedRequest(Request):
    """
    A request whose body may not grow past L{MAX_BODY}: the endpoint is
    read-only, and a client must not make the daemon buffer gigabytes.
    """

    _received = 0

    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > MAX_BODY:
            self._refuse()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > MAX_BODY:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            getattr(transport, "abortConnection", transport.loseConnection)()


class QuietSite(Site):
    """
    A Site that keeps the daemon's log for the daemon: no access log line
    per scrape (a Prometheus scraping every 15 s would write 5,760 a day),
    no "Starting factory" lines, and no tracebacks shown to clients.
    """

    noisy = False
    displayTracebacks = False
    requestFactory = _BoundedRequest

    def log(self, request: Any) -> None:
        pass


def make_site(context: WebContext, reactor: Any) -> Site:
    """
    The daemon's site; C{reactor} times its connections (idle timeouts),
    so tests pass a clock and never leave timers in the global reactor.
    """
    return QuietSite(make_root(context), reactor=reactor)
