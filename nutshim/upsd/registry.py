# -*- test-case-name: nutshim.test.test_engine -*-
"""
What the daemon knows beyond one request: its UPSes and its sessions.

State that outlives a connection (the FSD latch, the attach count, who is
attached where) lives here, owned by the service, so that a reload of the
configuration or a restarted driver never loses it.
"""

from __future__ import annotations

import itertools
from typing import Dict, Hashable, Iterator, List, Optional, Tuple

from nutshim.drivers.base import IDriver

__all__ = ["UpsEntry", "Registry", "Session"]

_ids = itertools.count(1)


class UpsEntry:
    """
    One configured UPS.

    @ivar name: the section name as written in ups.conf.
    @ivar desc: its C{desc}, or L{None}.
    @ivar driver: the L{IDriver} serving it.
    @ivar driver_name: the C{driver} key (to notice a changed driver on reload).
    @ivar port: the C{port} key.
    @ivar fsd: the forced-shutdown latch: once set, only removing the UPS
        from the configuration clears it.
    @ivar numlogins: the LOGIN/ATTACH count.
    """

    #: At most this many remembered replies per UPS (case variants of names
    #: are distinct requests, so a client could otherwise grow it).
    REPLIES_MAX = 512

    def __init__(
        self, name: str, desc: Optional[str], driver: IDriver, driver_name: str, port: str
    ) -> None:
        self.name = name
        self.desc = desc
        self.driver = driver
        self.driver_name = driver_name
        self.port = port
        self.options: Dict[str, str] = {}
        self.fsd = False
        self.numlogins = 0
        self._replies: Dict[Hashable, bytes] = {}
        self._replies_stamp: Tuple[object, int, bool] = (None, -1, False)

    def replies(self) -> Dict[Hashable, bytes]:
        """
        Replies that depend only on this UPS's data and FSD latch (LIST
        VAR/RW/CMD), by request.  A client polling the same request, as
        upsc-style monitors do, gets the bytes built for the first one until
        the driver changes something: the state's generation, the driver
        object (a reload) or the latch is part of the stamp, so the cache
        can never answer with stale data.
        """
        state = self.driver.state
        stamp = (state, state.generation, self.fsd)
        if stamp != self._replies_stamp:
            self._replies = {}
            self._replies_stamp = stamp
        elif len(self._replies) >= self.REPLIES_MAX:
            self._replies = {}
        return self._replies


class Session:
    """
    Per-connection state, reset only by closing the connection.

    @ivar address: the peer's IP address as text.
    @ivar loopback: whether the peer is on this host.
    @ivar listener: the endpoint of the listener the connection came in
        on (its policy decides C{tls_required}); C{""} when unknown.
    @ivar tls: whether TLS is up.
    @ivar tls_required: whether commands other than STARTTLS are refused
        until TLS is up (RFC 9271 section 6.2).
    @ivar tls_identity: the verified client certificate's subject CN, if any.
    @ivar cert_user: the upsd.users user that certificate maps to, if any.
    @ivar login: the UPS this connection did LOGIN/ATTACH to.
    """

    __slots__ = (
        "id",
        "address",
        "loopback",
        "listener",
        "username",
        "password",
        "login",
        "attached",
        "tracking",
        "tls",
        "tls_required",
        "tls_identity",
        "cert_user",
        "cleartext_noted",
    )

    def __init__(self, address: str, loopback: bool = True, listener: str = "") -> None:
        self.id = next(_ids)
        self.address = address
        self.loopback = loopback
        self.listener = listener
        self.username: Optional[str] = None
        self.password: Optional[str] = None
        self.login: Optional[UpsEntry] = None
        self.attached = False
        self.tracking = False
        self.tls = False
        self.tls_required = False
        self.tls_identity: Optional[str] = None
        self.cert_user: Optional[str] = None
        #: Whether the log already said that this connection's password
        #: crossed the network in plaintext (once per connection).
        self.cleartext_noted = False


class Registry:
    """
    The UPSes in LIST UPS order and the open sessions, newest first.
    """

    def __init__(self) -> None:
        self._order: List[UpsEntry] = []
        self._by_name: Dict[str, UpsEntry] = {}
        self._sessions: Dict[int, Session] = {}

    # UPSes.

    def get(self, name: str) -> Optional[UpsEntry]:
        return self._by_name.get(name.lower())

    def __iter__(self) -> Iterator[UpsEntry]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def add(self, entry: UpsEntry, first: bool = False) -> None:
        """
        Add a UPS; NUT puts UPSes added by a reload first in LIST UPS.
        """
        self._by_name[entry.name.lower()] = entry
        if first:
            self._order.insert(0, entry)
        else:
            self._order.append(entry)

    def remove(self, entry: UpsEntry) -> None:
        self._order.remove(entry)
        del self._by_name[entry.name.lower()]

    # Sessions.

    def open(self, session: Session) -> None:
        self._sessions[session.id] = session

    def close(self, session: Session) -> None:
        """
        Forget a session; its LOGIN/ATTACH no longer counts.
        """
        if self._sessions.pop(session.id, None) is None:
            return
        self.detach(session)

    def detach(self, session: Session) -> None:
        entry = session.login
        if entry is not None:
            entry.numlogins = max(0, entry.numlogins - 1)
            session.login = None
            session.attached = False

    def sessions(self) -> List[Session]:
        """
        Open sessions, newest first (NUT's LIST CLIENT order).
        """
        return list(reversed(self._sessions.values()))

    @property
    def session_count(self) -> int:
        return len(self._sessions)
