# -*- test-case-name: nutshim.test.test_upsd_link -*-
"""
The life of one upsd connection, as an explicit state machine, and how its
replies go out.

Why a state and not a flag: after C{OK Goodbye} a TLS connection used to go
on executing requests (privileged ones too) until the idle timeout.
Twisted's TLS layer defers its close while a streaming producer is
registered (L{twisted.protocols.tls.TLSMemoryBIOProtocol.loseConnection}
runs C{_shutdownTLS} only once C{unregisterProducer} is called), keeps
delivering what it decrypts meanwhile, and its C{disconnecting} never
reaches the TCP transport whose flag was checked.  Now C{OK Goodbye} moves
the connection to L{Link.CLOSING}, where nothing it receives is parsed or
executed, whatever the transport is still doing.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

__all__ = [
    "Link",
    "TRANSITIONS",
    "CLOSE_GRACE",
    "BEGIN_LIST",
    "split_list",
    "send_reply",
    "send_replies",
    "yield_cpu",
]


class Link(enum.Enum):
    """
    Where a connection is.
    """

    #: Plaintext, serving requests.
    PLAIN = "plaintext"
    #: C{OK STARTTLS} sent; the handshake runs (with its own deadline).
    HANDSHAKING = "TLS handshake"
    #: TLS is up, serving requests.
    TLS = "TLS"
    #: TLS could not start or finish: the connection is being aborted and
    #: nothing more is read.
    FAILED = "failed"
    #: C{OK Goodbye} sent: nothing more is read or executed; the connection
    #: closes once its replies are out, or is aborted after L{CLOSE_GRACE}.
    CLOSING = "closing"


#: The allowed moves; anything else is a bug, raised as such.
TRANSITIONS: Mapping[Link, frozenset[Link]] = {
    Link.PLAIN: frozenset({Link.HANDSHAKING, Link.FAILED, Link.CLOSING}),
    Link.HANDSHAKING: frozenset({Link.TLS, Link.FAILED, Link.CLOSING}),
    Link.TLS: frozenset({Link.CLOSING}),
    Link.FAILED: frozenset(),
    Link.CLOSING: frozenset(),
}

#: Seconds a closing connection may take to deliver its last replies (and,
#: on TLS, to exchange close_notify) before it is aborted: a client that
#: does not read, or never answers close_notify, still sees the connection
#: end within a second of C{OK Goodbye}.
CLOSE_GRACE = 0.5

BEGIN_LIST = b"BEGIN LIST "


def split_list(replies: Sequence[bytes]) -> Optional[Tuple[bytes, bytes]]:
    """
    Cut the replies to one read after the first C{BEGIN LIST} line.

    Why: some clients (nut2 and its forks, on PyPI) read the C{BEGIN LIST}
    line with one C{recv()}, then call C{recv()} again before looking at
    what they already hold; when the whole list came in the first read they
    wait for their socket timeout (5 s a LIST).  NUT's line-by-line writes
    avoid it by accident (Nagle holds the body for the delayed ACK, 44 ms a
    list); nutshim sends the C{BEGIN LIST} line as a segment of its own and
    the body, still in one write, right after.

    @return: C{(head, body)}, or L{None} when no reply is a LIST.
    """
    for index, reply in enumerate(replies):
        if reply.startswith(BEGIN_LIST):
            cut = reply.index(b"\n") + 1
            head = reply[:cut] if index == 0 else b"".join(replies[:index]) + reply[:cut]
            rest = replies[index + 1 :]
            body = reply[cut:] + b"".join(rest) if rest else reply[cut:]
            return head, body
    return None


def _no_yield() -> None:
    pass


#: Called between the C{BEGIN LIST} segment and the body: lets a client
#: woken on this CPU read the first segment alone (measured with nut2-notl
#: on two CPUs: 10-18% of LISTs stalled 5 s with the body merely queued for
#: the next reactor turn, 0.25% with this yield).  A no-op where the OS has
#: no C{sched_yield}.
yield_cpu: Callable[[], None] = getattr(os, "sched_yield", _no_yield)


def send(transport: Any, data: bytes, direct: bool) -> bool:
    """
    Send C{data}; whether it all went straight to the socket.

    On plain TCP (C{direct}) with nothing already queued, straight to the
    socket: Twisted's C{write} would queue the reply and register for
    writability, costing two C{epoll_ctl} calls and a reactor iteration per
    reply (most of the daemon's time under load).  Whatever the socket does
    not take goes through C{write}, which keeps the order and the
    back-pressure (the registered streaming producer).
    """
    if (
        direct
        and not transport.dataBuffer
        and not transport._tempDataLen
        and transport.connected
        and not transport.disconnecting
        and not transport.TLS
    ):
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # The connection is lost: write() lets doWrite report it.
            sent = 0
        if sent == len(data):
            return True
        data = data[sent:]
    transport.write(data)
    return False


def _send_split(transport: Any, head: bytes, body: bytes, direct: bool) -> None:
    """
    C{head} (ending with a C{BEGIN LIST} line) as a segment of its own, then
    C{body} in one write.  On plain TCP the head goes to the socket at once
    and the body through C{write}, which sends it on the next reactor turn
    (and keeps later replies behind it); on TLS each write is a record of
    its own, which a TLS client reads separately anyway.
    """
    if send(transport, head, direct):
        yield_cpu()
    transport.write(body)


def send_reply(transport: Any, reply: bytes, direct: bool) -> None:
    """
    Send one reply (the short path for a read of one request).
    """
    if reply.startswith(BEGIN_LIST):
        cut = reply.index(b"\n") + 1
        _send_split(transport, reply[:cut], reply[cut:], direct)
    else:
        send(transport, reply, direct)


def send_replies(transport: Any, replies: Sequence[bytes], direct: bool) -> None:
    """
    Send the replies to one read together, cut after the first C{BEGIN
    LIST} line if there is one (L{split_list}).
    """
    if len(replies) == 1:
        send_reply(transport, replies[0], direct)
        return
    cut = split_list(replies)
    if cut is None:
        send(transport, b"".join(replies), direct)
    else:
        _send_split(transport, cut[0], cut[1], direct)
