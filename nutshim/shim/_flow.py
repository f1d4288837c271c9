# -*- test-case-name: nutshim.test.test_shim -*-
"""
How a relayed client connection (L{nutshim.shim.relay.Front}) pauses and
closes: back-pressure both ways, and a close that neither waits for ever
nor relays anything read after it.

Back-pressure, with producers registered on both transports as in
C{twisted.protocols.portforward}, adapted to a request/reply protocol:

 - an upstream that stops reading stops the shim reading the client;
 - a client that stops reading its replies stops the shim forwarding its
   requests, and the upstream is then paused as well -- at once when it is
   a server that does not block on a full socket (the client shim's
   remote: a server shim or nut-upsd), so that a stalled reader costs the
   client shim a transport buffer and no more; but only once every
   forwarded request has its reply when it is NUT's upsd, which writes
   with a blocking C{write()}: a reply stuck in a full socket would freeze
   upsd for every client.  At most C{MAX_OUTSTANDING} requests per client
   wait for upsd, so there a slow client costs at most that many replies.

Closing (L{FlowControl.shut}): at C{OK Goodbye} (L{FlowControl.end_session}),
when the upstream is gone, after a half-close.  The client's transport is
closed after what was written to it, with the producer unregistered first and the TLS
shutdown bounded (L{nutshim.shim._transport.close}); from then on nothing
it sends is a request (the TLS transport would go on delivering it), but
it is still read, so that its close_notify finishes the TLS shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Set

from twisted.protocols.basic import LineReceiver

from nutshim.shim._transport import close

if TYPE_CHECKING:
    from nutshim.shim.factory import RelayFactory

__all__ = ["FlowControl"]

#: How the reply to a LOGOUT that ends the session looks at the end of the
#: reply stream.
_GOODBYE = b"\nOK Goodbye\n"


class FlowControl(LineReceiver):
    """
    The pausing and closing half of L{nutshim.shim.relay.Front}.

    @ivar back: the upstream protocol, once usable.
    """

    factory: "RelayFactory"
    transport: Any
    back: Optional[Any]
    sequencer: Any
    _relaying: bool
    _lost: bool
    _link: Optional[Any]
    _goodbye: Optional[bytes]

    def init_flow(self) -> None:
        self._shut = False
        self._pauses: Set[str] = set()
        self._client_slow = False
        self._upstream_paused = False

    def _closing(self) -> bool:
        return self._shut or self._lost or bool(self.transport.disconnecting)

    def shut(self) -> None:
        """
        Close the client's connection after what was written to it, and
        read nothing more from it as requests.
        """
        if self._shut or self._lost:
            return
        self._shut = True
        self.clearLineBuffer()
        self.setRawMode()
        self._pauses.clear()
        LineReceiver.resumeProducing(self)
        close(self.transport, self.factory.clock)

    def rawDataReceived(self, data: bytes) -> None:
        """After L{shut}: read and dropped."""

    def _goodbye_reply(self, data: bytes) -> None:
        """
        Reply bytes while a LOGOUT waits: once every reply is in, either
        the session ends (the last reply is C{OK Goodbye}) or reading goes
        on.
        """
        assert self._goodbye is not None
        tail = (self._goodbye + data)[-len(_GOODBYE):]
        if not self.sequencer.idle:
            self._goodbye = tail
            return
        self._goodbye = None
        if tail == _GOODBYE:
            self.end_session()
        else:
            self._resume("goodbye")

    def end_session(self) -> None:
        """
        The session is over (C{OK Goodbye} passed on): close both sides.
        """
        back = self._link
        self.shut()
        if back is not None and back.transport is not None and not back.lost:
            close(back.transport, self.factory.clock)

    def _pause(self, reason: str) -> None:
        if not self._pauses:
            if self._closing():
                self.paused = True
            else:
                LineReceiver.pauseProducing(self)
        self._pauses.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and not self._closing():
            LineReceiver.resumeProducing(self)

    def _slow(self) -> None:
        """The client's transport is full: it is not reading its replies."""
        self._client_slow = True
        self._pause("client-slow")
        self._hold_upstream()

    def _hold_upstream(self) -> None:
        if (
            self._client_slow
            and not self._upstream_paused
            and self._relaying
            and self.back is not None
            and (not self.sequencer.outstanding or not self.factory.upstream_blocks)
        ):
            self._upstream_paused = True
            self.back.transport.pauseProducing()

    def _fast(self) -> None:
        """The client's transport has room again."""
        self._client_slow = False
        if self._upstream_paused and self.back is not None:
            self._upstream_paused = False
            self.back.transport.resumeProducing()
        self._resume("client-slow")
