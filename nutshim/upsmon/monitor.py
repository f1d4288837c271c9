# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
One C{MONITOR} line: the session with the Attachment Daemon, the polls of
C{ups.status}, contact tracking, and whether the UPS is critical.

The rules are NUT 2.8.0 upsmon's (C{clients/upsmon.c}), because
administrators tune C{POLLFREQ}, C{DEADTIME}, C{HOSTSYNC} and
C{NOCOMMWARNTIME} against them:

  - the session logs in as upsmon does: STARTTLS (see L{nutshim.upsmon.tls}),
    C{USERNAME}, C{PASSWORD}, C{ATTACH} (C{LOGIN} on older servers), and
    for a Primary C{PRIMARY} (C{MASTER}); a refused step is logged and
    polling goes on, since the status can still be read;
  - C{GET VAR <ups> ups.status} every C{POLLFREQ} seconds, every
    C{POLLFREQALERT} while on battery; a poll never overlaps the previous
    one (a hung server is detected by the request timeout and by
    C{DEADTIME}, not by piling up requests);
  - contact: the first failed poll after contact is C{COMMBAD}; the next
    failure starts a timer, and C{NOCOMM} is repeated every
    C{NOCOMMWARNTIME} while no poll succeeds; a successful poll after any
    failure is C{COMMOK} (not the first contact at startup).  A status
    that says C{NOCOMM}, or is empty, counts as a failed poll;
  - critical: C{FSD} in the status; or C{OB LB} (not while C{CAL}, as
    2.8.0), immediately for a Primary and, for a Secondary, once
    C{HOSTSYNC} seconds have passed since the UPS was last seen
    non-critical (the Primary gets that long to set FSD); a UPS last
    known C{OB} with which contact has been lost for more than
    C{DEADTIME} seconds counts as C{OB LB};
  - a heartbeat UPS (power value 0, C{TICK}/C{TOCK}; or declared by
    C{HEARTBEAT}) is watched by L{nutshim.upsmon.heartbeat}.

Every timing path runs on the injected clock.
"""

from __future__ import annotations

from typing import Any, Callable, FrozenSet, Optional, Protocol

from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from nutshim.client.errors import NUTError
from nutshim.config.upsmonconf import Monitor, UpsmonConf
from nutshim.upsmon.events import contact_lost, line_state, parse_status, status_events
from nutshim.upsmon.heartbeat import MonitorHeartbeat, beat_token, reconfigured

__all__ = ["UPSMonitor", "UpsdClient", "MonitorListener", "SessionFactory", "NET_TIMEOUT"]

#: Seconds to wait for a reply (NUT's upsmon: C{NET_TIMEOUT}).
NET_TIMEOUT = 10.0
#: Seconds to wait for C{DETACH} (or C{LOGOUT}) before closing anyway.
DETACH_WAIT = 2.0


class UpsdClient(Protocol):
    """
    What a monitor needs of a connection (L{NUTClientProtocol} has it).
    """

    def username(self, name: str) -> Deferred[None]: ...
    def password(self, password: str) -> Deferred[None]: ...
    def attach(self, ups: str) -> Deferred[None]: ...
    def primary(self, ups: str) -> Deferred[str]: ...
    def get_var(self, ups: str, var: str) -> Deferred[str]: ...
    def fsd(self, ups: str) -> Deferred[None]: ...
    def num_attach(self, ups: str) -> Deferred[int]: ...
    def detach(self) -> Deferred[None]: ...
    def when_closed(self) -> Deferred[None]: ...


class MonitorListener(Protocol):
    """
    Who hears about a monitor's events and polls (the service).
    """

    def event(self, monitor: "UPSMonitor", notify_type: str) -> None: ...
    def polled(self, monitor: "UPSMonitor") -> None: ...


#: Builds the reconnecting session of one C{MONITOR} line; the second
#: argument prepares each new connection (see L{NUTClientService}).
SessionFactory = Callable[[Monitor, Callable[[Any], Deferred[None]]], IService]


async def _authenticate(client: UpsdClient, username: str, password: str) -> None:
    """
    C{USERNAME} and C{PASSWORD}, pipelined; the second's failure is not
    left unhandled when the first fails.
    """
    user = client.username(username)
    pw = client.password(password)
    try:
        await user
    except BaseException:
        pw.addErrback(lambda failure: None)
        raise
    await pw


class UPSMonitor:
    """
    Watch one UPS.

    @ivar spec: the C{MONITOR} line.
    @ivar client: the logged-in connection, or L{None}.
    @ivar symbols: the last status received, or L{None}.
    @ivar line: the last known C{"OL"}/C{"OB"}, or L{None}.
    @ivar last_ok: when a status last arrived, or L{None}.
    @ivar alive: whether the last poll succeeded.
    @ivar heartbeat: the heartbeat watch, if this UPS is a heartbeat.
    """

    log = Logger()

    def __init__(self, clock: Any, conf: UpsmonConf, spec: Monitor,
                 sessions: SessionFactory, listener: MonitorListener) -> None:
        self.clock = clock
        self.conf = conf
        self.spec = spec
        self.listener = listener
        self.session = self._new_session(sessions)
        self.client: Optional[UpsdClient] = None
        self.symbols: Optional[FrozenSet[str]] = None
        self.line: Optional[str] = None
        self.last_ok: Optional[float] = None
        self.alive = False
        self._failed_before = False
        self._nocomm_since: Optional[float] = None
        self._last_rbwarn: Optional[float] = None
        self._last_noncrit = clock.seconds()
        self._request: Optional[Deferred[None]] = None
        self._last_reply: Optional[float] = None
        self._timer: Any = None
        self._running = False
        self._critical_reason = ""
        self.heartbeat: Optional[MonitorHeartbeat] = None
        if spec.heartbeat:
            self.heartbeat = MonitorHeartbeat(self)

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        """Connect, and poll on the clock."""
        self._running = True
        self.session.startService()
        self._schedule()
        if self.heartbeat is not None:
            self.heartbeat.start()

    def stop(self, goodbye: bool = True) -> Deferred[None]:
        """
        Stop polling; say C{DETACH} (as NUT's C{upscli_disconnect} says
        C{LOGOUT}) unless C{goodbye} is false, and close.  Fires once
        closed; never fails.
        """
        self._running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.heartbeat is not None:
            self.heartbeat.stop()
        return self._drop(self.session, goodbye)

    def reconfigure(self, conf: UpsmonConf, spec: Monitor) -> None:
        """A reload kept this monitor: use the new settings (see L{reconfigured})."""
        self.conf, self.spec = conf, spec
        self.heartbeat = reconfigured(self, self.heartbeat, self._running)

    def reconnect(self, sessions: SessionFactory) -> Deferred[None]:
        """
        Drop the connection and log in again through a new session, keeping
        what is known of the UPS: NUT's C{drop_connection} after a reload
        that redefines the user, password or role (or, here, the TLS
        settings).  Fires once the old session is closed.
        """
        old = self.session
        self.session = self._new_session(sessions)
        dropped = self._drop(old)
        if self._running:
            self.session.startService()
        return dropped

    def _new_session(self, sessions: SessionFactory) -> IService:
        """
        A session whose logins count only while it is this monitor's own:
        a connection an old session completes after L{reconnect} is never
        used.
        """
        made: list[IService] = []

        def prepare(client: Any) -> Deferred[None]:
            return Deferred.fromCoroutine(self._login(client, made[0]))

        made.append(sessions(self.spec, prepare))
        return made[0]

    def _drop(self, session: IService, goodbye: bool = True) -> Deferred[None]:
        """
        Say C{DETACH} (as NUT's C{upscli_disconnect} says C{LOGOUT}) on the
        current connection and stop C{session}.  Without C{goodbye} the
        connection is aborted instead: a TLS close would wait for the hung
        server's own close_notify.  Never fails.
        """
        client, self.client = self.client, None
        detaching: Optional[Deferred[None]] = None
        if client is not None and goodbye:
            detaching = client.detach()
            detaching.addTimeout(DETACH_WAIT, self.clock)
            detaching.addErrback(lambda failure: None)
        elif client is not None:
            transport = getattr(client, "transport", None)
            if transport is not None:
                transport.abortConnection()
        stopped: Deferred[None] = Deferred.fromCoroutine(self._stop_session(session, detaching))
        return stopped

    async def _stop_session(self, session: IService, detaching: Optional[Deferred[None]]) -> None:
        if detaching is not None:
            # DETACH falls back to LOGOUT on older servers: let it finish.
            await detaching
        if session.running:
            stopping = session.stopService()
            if stopping is not None:
                await stopping

    def interval(self) -> int:
        """Seconds to the next poll: C{POLLFREQALERT} while on battery."""
        return self.conf.pollfreqalert if self.line == "OB" else self.conf.pollfreq

    def _schedule(self) -> None:
        if self._running:
            self._timer = self.clock.callLater(self.interval(), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.poll()
        self._schedule()

    # -- session ------------------------------------------------------------

    async def _login(self, client: UpsdClient, session: IService) -> None:
        spec = self.spec
        try:
            await _authenticate(client, spec.username, spec.password)
            await client.attach(spec.upsname)
        except NUTError as e:
            self.log.error("Login on UPS [{ups}] failed - got [{error}]", ups=spec.system,
                           error=e.line)
        else:
            self.log.info("Logged into UPS {ups}", ups=spec.system)
            if spec.primary:
                try:
                    await client.primary(spec.upsname)
                except NUTError as e:
                    self.log.critical("Primary privileges unavailable on UPS [{ups}]: {error}",
                                      ups=spec.system, error=e.line)
        if not self._running or session is not self.session:
            return
        self._last_reply = self.clock.seconds()
        self.client = client
        client.when_closed().addCallback(self._closed, client)
        if self.heartbeat is not None:
            self.heartbeat.connected(client)
        self.poll()

    def _closed(self, result: None, client: UpsdClient) -> None:
        if self.client is client:
            self.client = None
            self.log.info("Connection to UPS [{ups}] lost", ups=self.spec.system)

    # -- polling ------------------------------------------------------------

    def poll(self) -> None:
        """
        Ask for C{ups.status}, unless a poll is already under way (the
        listener still hears of the tick, to judge C{DEADTIME}).
        """
        if not self._running:
            return
        if self._request is not None:
            self.listener.polled(self)
            return
        if self.client is None:
            if self.alive or not self._failed_before:
                self.log.warn("Poll UPS [{ups}] failed - not connected", ups=self.spec.system)
            self._gone()
            self.listener.polled(self)
            return
        request = self.client.get_var(self.spec.upsname, "ups.status")
        done: Deferred[None] = request.addCallbacks(self._status, self._failed)
        self._request = done
        done.addBoth(self._polled)

    def _polled(self, result: object) -> None:
        self._request = None
        if isinstance(result, Failure):
            self.log.failure("Unexpected error while polling", result)
        self.listener.polled(self)

    def _failed(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, NUTError):
            self._last_reply = self.clock.seconds()  # an answer all the same
        if isinstance(error, NUTError) and error.name == "UNKNOWN-UPS":
            why = f"[{self.spec.upsname}] does not exist on server {self.spec.host}"
        elif isinstance(error, NUTError):
            why = error.message
        else:
            why = str(error) or type(error).__name__
        self.log.warn("Poll UPS [{ups}] failed - {why}", ups=self.spec.system, why=why)
        self._gone()

    def _status(self, text: str) -> None:
        now = self.clock.seconds()
        self._last_reply = now
        symbols = parse_status(text)
        if contact_lost(symbols):
            self.log.warn("UPS [{ups}] status {status!r}: no contact with the UPS",
                          ups=self.spec.system, status=text)
            self._gone()
            return
        self._is_alive()
        self.last_ok = now
        if self.heartbeat is None and self.spec.powervalue == 0 and beat_token(symbols):
            self.log.info("UPS [{ups}] is a heartbeat (status {status!r}): watching it",
                          ups=self.spec.system, status=text)
            self.heartbeat = MonitorHeartbeat.begin(self, self._running)
        if self.heartbeat is not None:
            self.heartbeat.status(symbols)
        events = status_events(self.symbols, symbols, self.line)
        self.symbols = symbols
        self.line = line_state(symbols) or self.line
        for event in events:
            if event.name == "REPLBATT":
                continue
            self.listener.event(self, event.name)
        if "RB" in symbols:
            if self._last_rbwarn is None or now - self._last_rbwarn > self.conf.rbwarntime:
                self._last_rbwarn = now
                self.listener.event(self, "REPLBATT")
        else:
            self._last_rbwarn = None
        if not (self.line == "OB" and "LB" in symbols):
            self._last_noncrit = now

    # -- contact (ups_is_alive / ups_is_gone) ---------------------------------

    def _is_alive(self) -> None:
        if self.alive:
            return
        self.alive = True
        self._nocomm_since = None
        if self._failed_before:
            self.listener.event(self, "COMMOK")

    def _gone(self) -> None:
        now = self.clock.seconds()
        self._failed_before = True
        if self.alive:
            self.alive = False
            self.listener.event(self, "COMMBAD")
            return
        if self._nocomm_since is None:
            self._nocomm_since = now
        elif now - self._nocomm_since > self.conf.nocommwarntime:
            self._nocomm_since = now
            self.listener.event(self, "NOCOMM")

    # -- criticality --------------------------------------------------------

    def dead(self, now: float) -> bool:
        """
        Whether no status has arrived for more than C{DEADTIME} seconds
        (never contacted counts as not dead: NUT assumes such a UPS is OL).
        """
        return self.last_ok is not None and now - self.last_ok > self.conf.deadtime

    def is_critical(self, now: float) -> bool:
        """
        Whether this UPS can no longer be counted on (see the module
        docstring); a change of verdict is logged.
        """
        reason = self._critical(now)
        if reason != self._critical_reason:
            self._critical_reason = reason
            if reason:
                self.log.warn("Critical UPS: {ups} ({reason})", ups=self.spec.system, reason=reason)
        return bool(reason)

    def _critical(self, now: float) -> str:
        symbols = self.symbols or frozenset()
        if "FSD" in symbols:
            return "FSD"
        low = "LB" in symbols
        if self.line == "OB" and not low and self.dead(now):
            low = True
            reason = f"last known on battery, no contact for more than {self.conf.deadtime} s"
        else:
            reason = "on battery, low battery"
        if self.line != "OB" or not low:
            return ""
        if "CAL" in symbols and "LB" in symbols:
            return ""
        if self.spec.primary:
            return reason
        if now - self._last_noncrit > self.conf.hostsync:
            return reason + "; giving up on the primary"
        return ""

    # -- for the shutdown -------------------------------------------------------

    def silent(self, now: float) -> bool:
        """
        Whether the shutdown should not wait on this server: no connection,
        or a poll outstanding and not a word from the server (a status, an
        C{ERR}, the login) for more than C{DEADTIME} seconds -- a hung
        server, the one a "dead" verdict was reached on.  NUT's upsmon has
        by then dropped such a connection on its 5 s read timeout, so its
        C{FSD}, C{NUMLOGINS} and goodbye fail at once.  A server that
        answers errors (a dead driver) is not silent: it still gets C{FSD}.
        A server polled less often than C{DEADTIME} is not silent between
        polls either.
        """
        if self.client is None:
            return True
        if self._request is None or self._last_reply is None:
            return False
        return now - self._last_reply > self.conf.deadtime
