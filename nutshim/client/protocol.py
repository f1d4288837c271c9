# -*- test-case-name: nutshim.test.test_client -*-
"""
L{NUTClientProtocol}: one NUT connection, one L{Deferred} per request.

NUT replies strictly in request order and never speaks unprompted, so
requests may be pipelined and replies matched first-in-first-out; a LIST
reply is one unit from C{BEGIN LIST <query>} to C{END LIST <same query>}.
A reply that does not fit its request means the two sides are out of step:
the connection is then dropped rather than risk handing one request's
answer to another.

STARTTLS is the delicate part (RFC 9271, section 4.2.12): after C{OK STARTTLS}
(or the bare C{OK} of RFC 9271 Appendix D.1.1, which RFC-literal server
shims such as the published upsdTLS.py send) any plaintext bytes already received are discarded (an attacker on the path
could otherwise inject "replies" that would be read as if protected), the TLS
layer is started, and a C{PROTVER} query confirms that the handshake worked,
because a failed handshake cannot be reported in plaintext.  Requests made
while STARTTLS is in flight wait and are written after the handshake starts,
so that nothing meant for the TLS channel leaks in the clear.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, List, Optional, Sequence, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime, ITLSTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from nutshim.client import _replies as R
from nutshim.client._commands import NUTCommands, join
from nutshim.client._replies import VarType, Words
from nutshim.client.errors import (
    NUTClientError,
    NUTError,
    PlaintextCredentialsRefused,
    ProtocolError,
    RequestTimeout,
    TLSTrustNotConfigured,
    error_from_words,
)
from nutshim.protocol import ParseError, RequestTokenizer
from nutshim.protocol.starttls import starttls_accepted

__all__ = ["NUTClientProtocol", "VarType", "DEFAULT_TIMEOUT"]

T = TypeVar("T")

#: Seconds to wait for a complete reply before giving up on the connection.
DEFAULT_TIMEOUT = 30.0


class _Kind(enum.Enum):
    LINE = "line"
    LIST = "list"
    STARTTLS = "starttls"


@dataclass(eq=False)
class _Pending:
    line: str
    kind: _Kind
    deferred: Deferred[Any]
    parse: Callable[..., Any]
    query: Sequence[str] = ()
    credential: bool = False
    options: Any = None
    body: List[Words] = field(default_factory=list)
    begun: bool = False
    timer: Any = None  # an IDelayedCall


def _split(raw: bytes) -> Optional[Words]:
    words = RequestTokenizer().line(raw)
    if words is None or isinstance(words, ParseError):
        return None
    return words


class NUTClientProtocol(NUTCommands, LineReceiver):
    """
    A NUT client connection.

    Every request method returns a L{Deferred} that fires with the parsed
    reply, or fails with L{NUTError} (the server said C{ERR ...}),
    L{ProtocolError}, L{RequestTimeout} or the reason the connection was lost.

    @ivar tls_active: whether the TLS layer has been started on this
        connection (by L{starttls}).
    @ivar require_tls: refuse to send USERNAME or PASSWORD without TLS.
    """

    delimiter = b"\n"
    #: NUT lines are short; nutshim never truncates values, so allow room.
    MAX_LENGTH = 65536

    log = Logger()

    def __init__(
        self,
        clock: Optional[IReactorTime] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        require_tls: bool = False,
    ) -> None:
        # Interfaces are typed as Any where methods are called on them:
        # without the mypy-zope plugin mypy misreads their signatures.
        self._clock: Any = clock
        self.timeout = timeout
        self.require_tls = require_tls
        self.tls_active = False
        self._queue: Deque[_Pending] = deque()
        self._held: List[_Pending] = []
        self._holding = False
        self._failure: Optional[Failure] = None
        self._closed_waiters: List[Deferred[None]] = []
        #: Whether the connection has been lost.
        self.closed = False

    # -- plumbing ---------------------------------------------------------

    def _reactor_clock(self) -> Any:
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = reactor
        return self._clock

    def _transport(self) -> Any:
        return self.transport

    def _submit(self, pending: _Pending) -> Deferred[Any]:
        if self._failure is not None:
            return fail(self._failure)
        if self._holding:
            self._held.append(pending)
        elif pending.credential and self.require_tls and not self.tls_active:
            return fail(PlaintextCredentialsRefused(pending.line.split()[0]))
        else:
            self._write(pending)
        return pending.deferred

    def _write(self, pending: _Pending) -> None:
        self._queue.append(pending)
        if self.timeout is not None:
            pending.timer = self._reactor_clock().callLater(
                self.timeout, self._timed_out, pending
            )
        self._transport().write(pending.line.encode("ascii") + b"\n")

    def _send(self, line: str, parse: Callable[[str, Optional[Words]], T],
              credential: bool = False) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        return self._submit(_Pending(line, _Kind.LINE, d, parse, credential=credential))

    def _list(self, query: Sequence[str], parse: Callable[[List[Words]], T]) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        return self._submit(_Pending(join("LIST", *query), _Kind.LIST, d, parse, query))

    def _release(self) -> None:
        """
        Write the requests held back while STARTTLS was in flight.
        """
        self._holding = False
        held, self._held = self._held, []
        for pending in held:
            if pending.credential and self.require_tls and not self.tls_active:
                _fire(pending, Failure(PlaintextCredentialsRefused(  # type: ignore[no-untyped-call]
                    pending.line.split()[0])))
            elif self._failure is not None:
                _fire(pending, self._failure)
            else:
                self._write(pending)

    @staticmethod
    def _stop_timer(pending: _Pending) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None

    def _fail_all(self, failure: Failure) -> None:
        if self._failure is None:
            self._failure = failure
        pending_all = list(self._queue) + self._held
        self._queue.clear()
        self._held = []
        for pending in pending_all:
            self._stop_timer(pending)
            _fire(pending, failure)

    def _abort(self, error: Exception) -> None:
        """
        Fail everything pending with C{error} and drop the connection.
        """
        if self._failure is not None:
            return
        self.log.warn("Dropping NUT connection: {error}", error=error)
        self._fail_all(Failure(error))  # type: ignore[no-untyped-call]
        if self.transport is not None:
            self._transport().abortConnection()

    def _timed_out(self, pending: _Pending) -> None:
        pending.timer = None
        self._abort(RequestTimeout(f"no reply to {pending.line.split()[0]} "
                                   f"within {self.timeout} s"))

    def _finish(self, pending: _Pending, result: Any) -> None:
        self._queue.popleft()
        self._stop_timer(pending)
        _fire(pending, result)

    def _error(self, pending: _Pending, words: Optional[Words], line: str) -> None:
        self._queue.popleft()
        self._stop_timer(pending)
        error = error_from_words(words or line.split(), line, _redact(pending.line))
        _fire(pending, Failure(error))  # type: ignore[no-untyped-call]

    # -- LineReceiver -----------------------------------------------------

    def lineReceived(self, raw: bytes) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if self._failure is not None:
            return
        if not self._queue:
            self.log.warn("Ignoring unsolicited NUT line {line!r}", line=raw)
            return
        line = raw.decode("ascii", "replace")
        words = _split(raw)
        pending = self._queue[0]
        is_err = line == "ERR" or line.startswith("ERR ")
        try:
            if pending.kind is _Kind.LIST:
                self._list_line(pending, line, words, is_err)
            elif pending.kind is _Kind.STARTTLS:
                self._starttls_reply(pending, line, words, is_err)
            elif is_err:
                self._error(pending, words, line)
            else:
                self._finish(pending, pending.parse(line, words))
        except ProtocolError as e:
            self._abort(e)
        except Exception as e:
            # A reply our parsers choke on: as unsafe to go on as a mismatch.
            self.log.failure("Unparsable NUT reply {line!r}", line=line)
            self._abort(ProtocolError(f"unparsable reply {line!r}: {e}"))

    def _list_line(self, pending: _Pending, line: str, words: Optional[Words],
                   is_err: bool) -> None:
        if not pending.begun:
            if is_err:
                self._error(pending, words, line)
                return
            if words is None or not R.same(words[:2], ("BEGIN", "LIST")) or not R.same(
                words[2:], pending.query
            ):
                raise ProtocolError(f"expected BEGIN LIST for {pending.line!r}, got {line!r}")
            pending.begun = True
            return
        if words is None:
            raise ProtocolError(f"unparsable line in {pending.line!r}: {line!r}")
        if R.same(words[:2], ("END", "LIST")):
            if not R.same(words[2:], pending.query):
                raise ProtocolError(f"{line!r} does not end {pending.line!r}")
            self._finish(pending, pending.parse(pending.body))
            return
        pending.body.append(words)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._abort(ProtocolError(f"reply line longer than {self.MAX_LENGTH} bytes"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        self._fail_all(self._failure or reason)
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _closing(self, result: None) -> None:
        if self.transport is not None:
            self._transport().loseConnection()

    def when_closed(self) -> Deferred[None]:
        """
        Fires (with L{None}, never failing) once the connection is lost.
        """
        if self.closed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._closed_waiters.append(d)
        return d

    def close(self) -> Deferred[None]:
        """
        Say C{LOGOUT} (as NUT's clients do when they are done) and close;
        fires once the connection is lost, whatever the server answered.
        """
        if not self.closed:
            if self._failure is None and not self._holding:
                self.logout().addErrback(lambda failure: None)
            else:
                self._transport().abortConnection()
        return self.when_closed()

    # -- STARTTLS ---------------------------------------------------------

    def starttls(self, options: Any) -> Deferred[None]:
        """
        Send STARTTLS and, on C{OK STARTTLS} or a bare C{OK}, start TLS with
        C{options}.

        @param options: an C{IOpenSSLClientConnectionCreator} (see
            L{nutshim.client.tls.client_tls_options}), or L{None} to only
            probe: if the server accepts, the connection is dropped with
            L{TLSTrustNotConfigured}.
        @return: fires with L{None} once a query has been answered over TLS;
            fails with L{StartTLSUnavailable} when the server refuses
            (the connection stays usable in plaintext).
        """
        if self.tls_active or self._holding:
            return fail(NUTClientError("STARTTLS already done or in progress"))
        if options is not None and not ITLSTransport.providedBy(self.transport):
            return fail(NUTClientError("this transport cannot start TLS"))
        d: Deferred[None] = Deferred()
        result = self._submit(_Pending("STARTTLS", _Kind.STARTTLS, d, lambda *a: None,
                                       options=options))
        if self._failure is None:
            self._holding = True
        return result

    def _starttls_reply(self, pending: _Pending, line: str, words: Optional[Words],
                        is_err: bool) -> None:
        if is_err:
            # Refused: the caller decides (before any held request is
            # written) whether plaintext is acceptable.
            self._error(pending, words, line)
            self._release()
            return
        if not starttls_accepted(line):
            raise ProtocolError(f"unexpected reply to STARTTLS: {line!r}")
        if pending.options is not None and not ITLSTransport.providedBy(self.transport):
            raise ProtocolError("this transport cannot start TLS")
        self._queue.popleft()
        self._stop_timer(pending)
        if pending.options is None:
            err = TLSTrustNotConfigured(
                "the server offers STARTTLS but no CA file or pin was given"
            )
            _fire(pending, Failure(err))  # type: ignore[no-untyped-call]
            self._abort(err)
            return
        # Whatever arrived in plaintext after OK STARTTLS is not ours to read.
        self.clearLineBuffer()  # type: ignore[no-untyped-call]
        self._transport().startTLS(pending.options)
        self.tls_active = True
        confirm: Deferred[str] = Deferred()
        self._write(_Pending("PROTVER", _Kind.LINE, confirm, R.raw_line))

        def confirmed(result: object) -> None:
            if isinstance(result, Failure) and not isinstance(result.value, NUTError):
                _fire(pending, result)
            else:
                _fire(pending, None)

        confirm.addBoth(confirmed)
        self._release()


def _fire(pending: _Pending, result: object) -> None:
    """
    Fire a request's L{Deferred} (a L{Failure} errbacks), unless the caller
    cancelled it: its reply is still read, so that the next request gets the
    next reply, and then dropped.
    """
    if not pending.deferred.called:
        if isinstance(result, Failure):
            pending.deferred.errback(result)
        else:
            pending.deferred.callback(result)


def _redact(line: str) -> str:
    """
    A request line fit for error messages and logs: no password.
    """
    if line.upper().startswith("PASSWORD"):
        return "PASSWORD ****"
    return line
