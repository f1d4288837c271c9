# -*- test-case-name: nutshim.test.test_client -*-
"""
L{NUTClientProtocol}: one NUT connection, one L{Deferred} per request.

NUT replies strictly in request order and never speaks unprompted, so
requests may be pipelined and replies matched first-in-first-out; a LIST
reply is one unit from C{BEGIN LIST <query>} to C{END LIST <same query>}.
A reply that does not fit its request means the two sides are out of step:
the connection is then dropped rather than risk handing one request's
answer to another.

STARTTLS is the delicate part (RFC 9271 S{sect}4.2.10): after C{OK STARTTLS}
any plaintext bytes already received are discarded (an attacker on the path
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

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime, ITLSTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from nutshim.client import _replies as R
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
from nutshim.protocol import NutError, ParseError, RequestTokenizer, join_words, quote

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


def _check_word(word: str) -> str:
    if not all(" " <= ch <= "~" for ch in word):
        raise ValueError(f"NUT words are printable ASCII only: {word!r}")
    return word


def _join(*words: str) -> str:
    return join_words([_check_word(w) for w in words])


def _split(raw: bytes) -> Optional[Words]:
    words = RequestTokenizer().line(raw)
    if words is None or isinstance(words, ParseError):
        return None
    return words


class NUTClientProtocol(LineReceiver):
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
        return self._submit(_Pending(_join("LIST", *query), _Kind.LIST, d, parse, query))

    def _release(self) -> None:
        """
        Write the requests held back while STARTTLS was in flight.
        """
        self._holding = False
        held, self._held = self._held, []
        for pending in held:
            if pending.credential and self.require_tls and not self.tls_active:
                pending.deferred.errback(
                    PlaintextCredentialsRefused(pending.line.split()[0])
                )
            elif self._failure is not None:
                pending.deferred.errback(self._failure)
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
            pending.deferred.errback(failure)

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
        pending.deferred.callback(result)

    def _error(self, pending: _Pending, words: Optional[Words], line: str) -> None:
        self._queue.popleft()
        self._stop_timer(pending)
        pending.deferred.errback(
            error_from_words(words or line.split(), line, _redact(pending.line))
        )

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
        self._fail_all(self._failure or reason)

    # -- STARTTLS ---------------------------------------------------------

    def starttls(self, options: Any) -> Deferred[None]:
        """
        Send STARTTLS and, on C{OK STARTTLS}, start TLS with C{options}.

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
        if not line.startswith("OK STARTTLS"):
            raise ProtocolError(f"unexpected reply to STARTTLS: {line!r}")
        self._queue.popleft()
        self._stop_timer(pending)
        if pending.options is None:
            err = TLSTrustNotConfigured(
                "the server offers STARTTLS but no CA file or pin was given"
            )
            pending.deferred.errback(err)
            self._abort(err)
            return
        if not ITLSTransport.providedBy(self.transport):
            raise ProtocolError("this transport cannot start TLS")
        # Whatever arrived in plaintext after OK STARTTLS is not ours to read.
        self.clearLineBuffer()  # type: ignore[no-untyped-call]
        self._transport().startTLS(pending.options)
        self.tls_active = True
        confirm: Deferred[str] = Deferred()
        self._write(_Pending("PROTVER", _Kind.LINE, confirm, R.raw_line))

        def confirmed(result: object) -> None:
            if isinstance(result, Failure) and not isinstance(result.value, NUTError):
                pending.deferred.errback(result)
            else:
                pending.deferred.callback(None)

        confirm.addBoth(confirmed)
        self._release()

    # -- requests ---------------------------------------------------------

    def ver(self) -> Deferred[str]:
        """C{VER}: the server's version line."""
        return self._send("VER", R.raw_line)

    def netver(self) -> Deferred[str]:
        """C{NETVER}: the protocol version, e.g. C{1.3}."""
        return self._send("NETVER", R.raw_line)

    def protver(self) -> Deferred[str]:
        """C{PROTVER}, falling back to C{NETVER} on C{UNKNOWN-COMMAND}."""
        return R.fallback(self._send("PROTVER", R.raw_line), self.netver,
                          NutError.UNKNOWN_COMMAND)

    def help(self) -> Deferred[str]:
        """C{HELP}: the server's command list line."""
        return self._send("HELP", R.raw_line)

    def username(self, name: str) -> Deferred[None]:
        """C{USERNAME}; refused without TLS when C{require_tls} is set."""
        return self._send(_join("USERNAME", name), R.ok, credential=True)

    def password(self, password: str) -> Deferred[None]:
        """C{PASSWORD}; refused without TLS when C{require_tls} is set."""
        return self._send(_join("PASSWORD", password), R.ok, credential=True)

    def login(self, ups: str) -> Deferred[None]:
        """C{LOGIN <ups>}."""
        return self._send(_join("LOGIN", ups), R.ok)

    def attach(self, ups: str) -> Deferred[None]:
        """C{ATTACH <ups>} (RFC 9271), falling back to C{LOGIN}."""
        return R.fallback(self._send(_join("ATTACH", ups), R.ok),
                          lambda: self.login(ups), NutError.UNKNOWN_COMMAND)

    def logout(self) -> Deferred[None]:
        """C{LOGOUT}: fires on C{OK Goodbye}, then closes the connection."""
        return self._send("LOGOUT", R.ok).addCallback(self._closing)

    def detach(self) -> Deferred[None]:
        """C{DETACH} (RFC 9271), falling back to C{LOGOUT}; then closes."""
        d = R.fallback(self._send("DETACH", R.ok), lambda: self._send("LOGOUT", R.ok),
                       NutError.UNKNOWN_COMMAND)
        return d.addCallback(self._closing)

    def _closing(self, result: None) -> None:
        if self.transport is not None:
            self._transport().loseConnection()

    def primary(self, ups: str) -> Deferred[str]:
        """
        C{PRIMARY <ups>}, falling back to C{MASTER}; fires with the text after
        C{OK} (C{PRIMARY-GRANTED} or C{MASTER-GRANTED}).
        """
        return R.fallback(self._send(_join("PRIMARY", ups), R.ok_text),
                          lambda: self._send(_join("MASTER", ups), R.ok_text),
                          NutError.UNKNOWN_COMMAND)

    def fsd(self, ups: str) -> Deferred[None]:
        """C{FSD <ups>}: latch forced shutdown."""
        return self._send(_join("FSD", ups), R.ok)

    def get_var(self, ups: str, var: str) -> Deferred[str]:
        """C{GET VAR}: the value, unescaped."""
        return self._send(_join("GET", "VAR", ups, var), R.field(("VAR", ups, var)))

    def get_type(self, ups: str, var: str) -> Deferred[VarType]:
        """C{GET TYPE}: the variable's flags."""
        return self._send(_join("GET", "TYPE", ups, var), R.var_type(ups, var))

    def get_desc(self, ups: str, var: str) -> Deferred[str]:
        """C{GET DESC}: the variable's description."""
        return self._send(_join("GET", "DESC", ups, var), R.field(("DESC", ups, var)))

    def get_cmddesc(self, ups: str, cmd: str) -> Deferred[str]:
        """C{GET CMDDESC}: the instant command's description."""
        return self._send(_join("GET", "CMDDESC", ups, cmd),
                          R.field(("CMDDESC", ups, cmd)))

    def get_upsdesc(self, ups: str) -> Deferred[str]:
        """C{GET UPSDESC}: the description from ups.conf."""
        return self._send(_join("GET", "UPSDESC", ups), R.field(("UPSDESC", ups)))

    def num_attach(self, ups: str) -> Deferred[int]:
        """
        C{GET NUMATTACH} (RFC 9271), falling back to C{GET NUMLOGINS} on
        C{INVALID-ARGUMENT} or C{UNKNOWN-COMMAND} (NUT up to 2.8.x).
        """
        return R.fallback(
            self._send(_join("GET", "NUMATTACH", ups), R.count(("NUMATTACH", ups))),
            lambda: self._send(_join("GET", "NUMLOGINS", ups), R.count(("NUMLOGINS", ups))),
            NutError.INVALID_ARGUMENT, NutError.UNKNOWN_COMMAND,
        )

    def get_tracking(self, id: Optional[str] = None) -> Deferred[Any]:
        """
        C{GET TRACKING}: without an id, whether tracking is on (C{bool});
        with one, the status line: C{PENDING}, C{SUCCESS}, C{ERR UNKNOWN},
        C{ERR FAILED} or C{ERR INVALID-ARGUMENT} (C{str}).  Other errors
        (C{FEATURE-NOT-CONFIGURED}: tracking is off) fail the L{Deferred}.
        """
        if id is None:
            return self._send("GET TRACKING", R.on_off)
        return R.tracking_status(self._send(_join("GET", "TRACKING", id), R.raw_line))

    def list_ups(self) -> Deferred[dict[str, str]]:
        """C{LIST UPS}: name to description, in the server's order."""
        return self._list(("UPS",), R.mapping("UPS", 1))

    def list_var(self, ups: str) -> Deferred[dict[str, str]]:
        """C{LIST VAR}: variable to value."""
        return self._list(("VAR", ups), R.mapping("VAR", 2))

    def list_rw(self, ups: str) -> Deferred[dict[str, str]]:
        """C{LIST RW}: writable variable to value."""
        return self._list(("RW", ups), R.mapping("RW", 2))

    def list_cmd(self, ups: str) -> Deferred[list[str]]:
        """C{LIST CMD}: instant command names."""
        return self._list(("CMD", ups), R.column("CMD", 2))

    def list_client(self, ups: str) -> Deferred[list[str]]:
        """C{LIST CLIENT}: addresses of the clients logged in to C{ups}."""
        return self._list(("CLIENT", ups), R.column("CLIENT", 2))

    def list_enum(self, ups: str, var: str) -> Deferred[list[str]]:
        """C{LIST ENUM}: the accepted values."""
        return self._list(("ENUM", ups, var), R.column("ENUM", 3))

    def list_range(self, ups: str, var: str) -> Deferred[list[tuple[str, str]]]:
        """C{LIST RANGE}: C{(min, max)} pairs as sent."""
        return self._list(("RANGE", ups, var), R.ranges)

    def set_var(self, ups: str, var: str, value: str) -> Deferred[Optional[str]]:
        """
        C{SET VAR}, the value always quoted and escaped (as upsrw does).

        @return: fires with the tracking id, or L{None} if tracking is off.
        """
        line = _join("SET", "VAR", ups, var) + " " + quote(_check_word(value))
        return self._send(line, R.tracking_id)

    def set_tracking(self, enabled: bool) -> Deferred[None]:
        """C{SET TRACKING ON|OFF}."""
        return self._send("SET TRACKING " + ("ON" if enabled else "OFF"), R.ok)

    def instcmd(self, ups: str, cmd: str, param: Optional[str] = None) -> Deferred[Optional[str]]:
        """
        C{INSTCMD <ups> <cmd> [<param>]}.

        @return: fires with the tracking id, or L{None} if tracking is off.
        """
        words = ("INSTCMD", ups, cmd) if param is None else ("INSTCMD", ups, cmd, param)
        return self._send(_join(*words), R.tracking_id)


def _redact(line: str) -> str:
    """
    A request line fit for error messages and logs: no password.
    """
    if line.upper().startswith("PASSWORD"):
        return "PASSWORD ****"
    return line
