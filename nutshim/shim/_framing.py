# -*- test-case-name: nutshim.test.test_shim -*-
"""
Where one upsd reply ends, in a byte stream the shims otherwise pass on
untouched; and how the few replies a shim gives itself are kept in order.

Why the shims look at replies at all: a shim answers some requests itself
(C{STARTTLS} inside TLS, C{STARTTLS} from a legacy client, an over-long
line, requests that can no longer reach upsd).  NUT replies strictly in
request order, so such an answer must wait until every reply to the
requests before it has been passed on -- or a client would read it as the
answer to an earlier request.  Counting replies is cheap (a reply is one
line, except C{BEGIN LIST} ... C{END LIST}); the bytes themselves are never
rewritten or held back.

Knowing where replies end also lets a shim tell, when upsd goes away,
whether the client sits between replies (it can then be told
C{ERR DRIVER-NOT-CONNECTED} for each request left unanswered) or in the
middle of one (the connection must then be closed: an error line inside a
LIST would corrupt it).

Nothing here does I/O or imports Twisted.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Callable, Deque, List, Optional, Tuple, Union

from nutshim.protocol.starttls import Classified, Kind, RequestClassifier

__all__ = [
    "RequestAssembler",
    "RequestTooLong",
    "ReplyCounter",
    "ReplySequencer",
    "plain_requests",
]

_BEGIN = b"BEGIN LIST "
_END = b"END LIST "
#: Bytes of a line's start that decide what kind of line it is.
_HEAD = len(_BEGIN)


class ReplyCounter:
    """
    Finds the ends of complete NUT replies in a stream of reply bytes fed
    in arbitrary chunks.

    @ivar in_list: inside a C{BEGIN LIST} reply.
    """

    def __init__(self) -> None:
        self.in_list = False
        #: The first bytes of an unfinished line, or L{None} at a line start.
        self._head: Optional[bytes] = None

    @property
    def at_boundary(self) -> bool:
        """
        Whether everything fed so far consists of complete replies.
        """
        return self._head is None and not self.in_list

    def _line(self, head: bytes, end: int, ends: List[int]) -> None:
        if self.in_list:
            if head.startswith(_END):
                self.in_list = False
                ends.append(end)
        elif head.startswith(_BEGIN):
            self.in_list = True
        else:
            ends.append(end)

    def feed(self, data: bytes) -> List[int]:
        """
        Take the next chunk of the stream.

        @return: the offsets in C{data} just past each reply that ends in it.
        """
        ends: List[int] = []
        pos = 0
        size = len(data)
        while pos < size:
            nl = data.find(b"\n", pos)
            if self._head is not None:
                # The line began in an earlier chunk.
                if nl < 0:
                    if len(self._head) < _HEAD:
                        self._head += data[pos : pos + _HEAD - len(self._head)]
                    return ends
                head = (self._head + data[pos : pos + _HEAD])[:_HEAD]
                self._head = None
                self._line(head, nl + 1, ends)
                pos = nl + 1
                continue
            if self.in_list and not data.startswith(_END, pos):
                # Skip the list body in C, not line by line.
                found = data.find(b"\n" + _END, pos)
                if found < 0:
                    last = data.rfind(b"\n", pos)
                    start = pos if last < 0 else last + 1
                    if start < size:
                        self._head = data[start : start + _HEAD]
                    return ends
                pos = found + 1
                nl = data.find(b"\n", pos)
            if nl < 0:
                self._head = data[pos : pos + _HEAD]
                return ends
            self._line(data[pos : pos + _HEAD], nl + 1, ends)
            pos = nl + 1
        return ends


class ReplySequencer:
    """
    Interleaves a shim's own replies with upsd's, in request order.

    Every request is either forwarded (L{forwarded}: upsd will answer it)
    or answered here (L{local}).  Upstream bytes go through L{upstream};
    both end up, in order, in C{write}.

    @ivar counter: the reply boundaries of the upstream stream.
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self.counter = ReplyCounter()
        #: Runs of forwarded requests (int) and local replies (bytes) not
        #: yet written, oldest first.
        self._queue: Deque[Union[int, bytes]] = deque()

    @property
    def outstanding(self) -> int:
        """
        Requests whose reply has not been written yet.
        """
        return sum(item if isinstance(item, int) else 1 for item in self._queue)

    @property
    def idle(self) -> bool:
        """
        Every request has been answered and no reply is cut in two.
        """
        return not self._queue and self.counter.at_boundary

    def forwarded(self, count: int = 1) -> None:
        """
        C{count} more requests went to upsd.
        """
        if self._queue and isinstance(self._queue[-1], int):
            self._queue[-1] += count
        else:
            self._queue.append(count)

    def local(self, reply: bytes) -> None:
        """
        Answer the next request with C{reply} (complete lines), as soon as
        every earlier request has its reply.
        """
        if self._queue:
            self._queue.append(reply)
        else:
            self._write(reply)

    def upstream(self, data: bytes) -> None:
        """
        Pass on bytes from upsd, with any local replies that become due.
        """
        ends = self.counter.feed(data)
        queue = self._queue
        if len(queue) <= 1:
            # Nothing of ours waits behind these replies: no splitting.
            if queue:
                left = queue[0] if isinstance(queue[0], int) else 0
                if left:
                    left -= len(ends)
                    if left > 0:
                        queue[0] = left
                    else:
                        queue.clear()
            self._write(data)
            return
        start = 0
        for end in ends:
            if not queue or not isinstance(queue[0], int):
                break  # more replies than requests: not ours to fix
            queue[0] -= 1
            if queue[0] == 0:
                queue.popleft()
                self._write(data[start:end])
                start = end
                self._flush_local()
        if start < len(data):
            self._write(data[start:])

    def _flush_local(self) -> None:
        queue = self._queue
        while queue and isinstance(queue[0], bytes):
            reply = queue.popleft()
            assert isinstance(reply, bytes)
            self._write(reply)

    def fail_outstanding(self, reply: bytes) -> bool:
        """
        upsd is gone: answer every request still waiting with C{reply}
        (local replies keep their place).

        @return: L{False} when a reply was cut in two: nothing is written
            then, and the connection can only be closed.
        """
        if not self.counter.at_boundary:
            self._queue.clear()
            return False
        while self._queue:
            item = self._queue.popleft()
            self._write(reply * item if isinstance(item, int) else item)
        return True


class RequestTooLong(Exception):
    """
    A request continued over several lines grew past the relay's limit.
    """


class RequestAssembler:
    """
    Whole requests out of request lines, counted as upsd will count them.

    NUT continues a request that ends in a backslash on the next line, and
    answers the whole once.  A relay that counted lines would expect one
    reply too many and answer its own requests out of order; one that
    forwarded the first part at once could not take back a C{STARTTLS}
    that only the second part completes.  So the parts of a continued
    request are held here (at most C{limit} bytes) until it is complete,
    then classified by L{RequestClassifier} -- the classification nut-upsd
    makes -- and handed on whole.
    """

    __slots__ = ("_classifier", "_parts", "_size", "_limit")

    def __init__(self, limit: int) -> None:
        self._classifier = RequestClassifier()
        self._parts: List[bytes] = []
        self._size = 0
        self._limit = limit

    def line(self, line: bytes) -> Optional[Tuple[Classified, bytes]]:
        """
        Take one received line (without its C{\\n}).

        @return: L{None} while the request goes on; else its classification
            and its bytes as received (every line with its C{\\n}).
        @raise RequestTooLong: when the held parts exceed the limit.
        """
        verdict = self._classifier.line(line)
        if verdict.kind is Kind.INCOMPLETE:
            self._size += len(line) + 1
            if self._size > self._limit:
                self.take_pending()
                raise RequestTooLong()
            self._parts.append(line)
            return None
        if not self._parts:
            return verdict, line + b"\n"
        parts, self._parts, self._size = self._parts, [], 0
        parts.append(line)
        return verdict, b"\n".join(parts) + b"\n"

    @property
    def pending(self) -> bool:
        """Whether a continued request is being held."""
        return bool(self._parts)

    def take_pending(self) -> bytes:
        """
        The parts of an unfinished request, as received, and forget them
        (they are to be read again).
        """
        parts, self._parts, self._size = self._parts, [], 0
        self._classifier.reset()
        return b"".join(part + b"\n" for part in parts)


#: What makes a chunk of requests need the line-by-line path: a verb a
#: shim acts on (anywhere, in any case: a false alarm only costs the slow
#: path) or a backslash (a continued line, or an escape).
_NEEDS_LINES = re.compile(rb"starttls|logout|detach|\\", re.IGNORECASE)


def plain_requests(data: bytes, limit: int) -> int:
    """
    How many requests C{data} is, when it is nothing but whole ordinary
    requests: complete lines (it ends in C{\\n}), none continued, no
    C{STARTTLS}, C{LOGOUT} or C{DETACH}, at most C{limit} bytes.  Every
    such line is one request to forward byte for byte (blank lines,
    comments and lines upsd rejects included: upsd answers each, see
    L{nutshim.protocol.starttls.Kind}), so a relay can forward the chunk
    whole instead of line by line.

    @return: the number of requests, or 0 when the chunk must go line by
        line.
    """
    if len(data) > limit or not data.endswith(b"\n") or _NEEDS_LINES.search(data):
        return 0
    return data.count(b"\n")
