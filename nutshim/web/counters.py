# -*- test-case-name: nutshim.test.test_web_counters -*-
"""
The daemon's own counters: what it did, for C{/metrics}.

Why plain dictionaries and integers and no metrics library: the request
counter sits on the daemon's hot path (one C{GET VAR} costs about 12 µs of
CPU), so bumping it must cost a dictionary update and nothing more -- no
locks (everything runs in the reactor thread), no label objects, no
formatting.  Names and labels are made only when a scrape reads the
numbers (L{nutshim.web.exposition}).  bench/web_bench.py measures the
cost.

L{MeteredEngine} is the daemon's L{Engine} counting every request by
command and every error reply by name; L{DaemonCounters} holds the rest:
connections by listener (plain and TLS), TLS handshakes and their
failures, refused connections, configuration reloads.
"""

from __future__ import annotations

import enum
from typing import Dict, Hashable, List, Optional, Tuple, Type

from nutshim.protocol import commands as c
from nutshim.upsd.engine import Engine, IDescriptions, IUsers, Reply
from nutshim.upsd.link import Link
from nutshim.upsd.registry import Registry, Session
from nutshim.upsd.tracking import TrackingTable

__all__ = ["DaemonCounters", "MeteredEngine", "Handshake", "command_label", "error_label"]

#: At most this many (command, error) pairs are told apart; more (only a
#: daemon answering dynamic error text could make them) count as OTHER.
ERRORS_MAX = 256
_OTHER = b"ERR OTHER\n"


class Handshake(enum.Enum):
    """
    How a TLS handshake after C{OK STARTTLS} ended.
    """

    OK = "ok"
    #: OpenSSL refused it, the client went away during it, or TLS could
    #: not start (plaintext pipelined behind STARTTLS is refused so).
    ERROR = "error"
    #: Not finished within TLS_HANDSHAKE_TIMEOUT.
    TIMEOUT = "timeout"


def command_label(kind: Type[c.Request]) -> str:
    """
    C{GetVar} as C{"GET VAR"}; unparsable requests as C{"invalid"} and
    unknown verbs as C{"unknown"}, so the label set stays small.
    """
    if kind is c.Invalid:
        return "invalid"
    if kind is c.Unknown:
        return "unknown"
    if kind is c.GetTracking:
        return "GET TRACKING"
    if kind is c.ListUps:
        return "LIST UPS"
    if kind is c.SetTracking:
        return "SET TRACKING"
    if kind is c.SetVar:
        return "SET VAR"
    sub = getattr(kind, "sub", "")
    verb = getattr(kind, "verb", "") or kind.__name__
    return f"{verb} {sub}" if isinstance(sub, str) and sub else str(verb)


def error_label(reply: bytes) -> str:
    """
    C{b"ERR UNKNOWN-UPS\\n"} as C{"UNKNOWN-UPS"}.
    """
    words = reply[4:].split(None, 1)
    return words[0].decode("ascii", "replace") if words else "OTHER"


class DaemonCounters:
    """
    Everything the daemon counts, read by the scrape.

    @ivar requests: requests answered, by request class.
    @ivar errors: error replies, by C{(request class, reply bytes)}.
    @ivar accepted: connections accepted, by listener label.
    @ivar refused: connections refused at MAXCONN.
    @ivar open_plain: open plaintext connections, by listener.
    @ivar open_tls: open connections with TLS up, by listener.
    @ivar handshakes: finished TLS handshakes, by C{(listener, outcome)}.
    @ivar reloads: SIGHUP reloads tried.
    @ivar reload_failures: reloads that kept the running configuration.
    @ivar last_reload: when the last reload was tried (clock seconds).
    @ivar last_reload_ok: whether it was applied.
    @ivar scrapes: HTTP requests answered, by resource name.
    @ivar last_scrape_seconds: the server time of the last C{/metrics}.
    """

    def __init__(self) -> None:
        self.requests: Dict[type, int] = {}
        self.errors: Dict[Tuple[type, bytes], int] = {}
        self.accepted: Dict[str, int] = {}
        self.refused = 0
        self.open_plain: Dict[str, int] = {}
        self.open_tls: Dict[str, int] = {}
        self.handshakes: Dict[Tuple[str, Handshake], int] = {}
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload: Optional[float] = None
        self.last_reload_ok = True
        self.scrapes: Dict[str, int] = {}
        self.last_scrape_seconds = 0.0
        self._connections: Dict[Hashable, List[object]] = {}

    # Requests (the hot path: see MeteredEngine.handle).

    def error(self, kind: type, reply: bytes) -> None:
        """
        Count one error reply.
        """
        key = (kind, reply)
        errors = self.errors
        if key not in errors and len(errors) >= ERRORS_MAX:
            key = (kind, _OTHER)
        errors[key] = errors.get(key, 0) + 1

    # Connections.

    def opened(self, key: Hashable, listener: str) -> None:
        """
        A client connected through C{listener} (e.g. C{"127.0.0.1:3493"}).
        """
        # [listener, TLS up, handshaking]
        self._connections[key] = [listener, False, False]
        self.accepted[listener] = self.accepted.get(listener, 0) + 1
        self.open_plain[listener] = self.open_plain.get(listener, 0) + 1

    def handshake(self, key: Hashable, outcome: Handshake) -> None:
        """
        A TLS handshake of connection C{key} ended; C{OK} moves it from
        the plaintext to the TLS gauge.
        """
        record = self._connections.get(key)
        listener = str(record[0]) if record is not None else "unknown"
        hkey = (listener, outcome)
        self.handshakes[hkey] = self.handshakes.get(hkey, 0) + 1
        if outcome is Handshake.OK and record is not None and not record[1]:
            record[1] = True
            self.open_plain[listener] -= 1
            self.open_tls[listener] = self.open_tls.get(listener, 0) + 1

    def moved(self, key: Hashable, old: Link, new: Link) -> None:
        """
        Connection C{key} moved from C{old} to C{new} (its state machine,
        L{nutshim.upsd.link}): a handshake began, ended or failed.
        """
        record = self._connections.get(key)
        if new is Link.HANDSHAKING:
            if record is not None:
                record[2] = True
        elif old is Link.HANDSHAKING and new is Link.TLS:
            self._ended(key, record, Handshake.OK)
        elif old is Link.HANDSHAKING and new is Link.FAILED:
            self._ended(key, record, Handshake.TIMEOUT)
        elif old is Link.PLAIN and new is Link.FAILED:
            self._ended(key, record, Handshake.ERROR)

    def _ended(self, key: Hashable, record: Optional[List[object]], outcome: Handshake) -> None:
        if record is not None:
            record[2] = False
        self.handshake(key, outcome)

    def closed(self, key: Hashable) -> None:
        """
        Connection C{key} is gone (unknown keys are ignored); gone during
        its handshake, the handshake failed.
        """
        record = self._connections.get(key)
        if record is not None and record[2]:
            self._ended(key, record, Handshake.ERROR)
        record = self._connections.pop(key, None)
        if record is None:
            return
        listener = str(record[0])
        gauge = self.open_tls if record[1] else self.open_plain
        gauge[listener] -= 1

    # Reloads.

    def reloaded(self, ok: bool, now: float) -> None:
        self.reloads += 1
        if not ok:
            self.reload_failures += 1
        self.last_reload = now
        self.last_reload_ok = ok

    def scraped(self, resource: str) -> None:
        self.scrapes[resource] = self.scrapes.get(resource, 0) + 1


class MeteredEngine(Engine):
    """
    The daemon's engine, counting requests by command and errors by name.

    One dictionary update per request, and a four-byte comparison; the
    error path, rare by nature, does the rest.
    """

    def __init__(
        self,
        registry: Registry,
        users: IUsers,
        tracking: TrackingTable,
        descriptions: Optional[IDescriptions] = None,
        *,
        counters: DaemonCounters,
    ) -> None:
        super().__init__(registry, users, tracking, descriptions)
        self.counters = counters
        self._requests = counters.requests

    def handle(self, session: Session, request: c.Request) -> Reply:
        reply = _handle(self, session, request)
        kind = request.__class__
        requests = self._requests
        try:
            requests[kind] += 1
        except KeyError:
            requests[kind] = 1
        # 69 is "E": only then look closer (no reply but ERR starts so).
        if reply[0][0] == 69 and reply[0][:4] == b"ERR ":
            self.counters.error(kind, reply[0])
        return reply


_handle = Engine.handle
