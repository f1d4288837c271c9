# -*- test-case-name: nutshim.test.test_starttls_lines -*-
"""
What a server or a relay must know about a request line before answering
or forwarding it: is it C{STARTTLS}, does it end the session, is it even
complete -- decided once, here, for nut-upsd and both shims.

Why one classification: a client must get the same answer to the same
bytes from nut-upsd and from a server shim in front of a legacy upsd.
NUT's upsd tokenizes before it looks at the verb, so C{STARTTLS extra},
C{STARTTLS # comment}, C{"STARTTLS"}, C{starttls\\r} and a C{STARTTLS}
continued over two lines with a trailing backslash are all STARTTLS; a
relay that compares the first bytes of the line instead answers some of
them differently, or forwards a STARTTLS to the upsd behind it.  So this
module runs the line through L{RequestTokenizer} and L{parse_request}, the
two steps nut-upsd's engine is fed by, and classifies the request they
give.

It also says which replies to C{STARTTLS} accept it (L{starttls_accepted}):
C{OK STARTTLS} (NUT) and the bare C{OK} that RFC 9271 Appendix D.1.1 gives
the server shim (and Roger Price's published upsdTLS.py sends).

Nothing here does I/O or imports Twisted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, Union

from nutshim.protocol._tokenizer import ParseError, RequestTokenizer
from nutshim.protocol.commands import Detach, Logout, StartTLS, parse_request

__all__ = ["Kind", "Classified", "RequestClassifier", "starttls_accepted"]


class Kind(enum.Enum):
    """
    What one request line turned out to be.
    """

    #: A whole request asking for TLS (NUT ignores any arguments).
    STARTTLS = "starttls"
    #: C{LOGOUT} or C{DETACH} without arguments: upsd answers C{OK Goodbye}
    #: and the session ends.
    GOODBYE = "goodbye"
    #: Any other whole request (unknown verbs and blank lines included).
    OTHER = "other"
    #: A line NUT's tokenizer rejects (unbalanced quotes, C{#} in quotes):
    #: nut-upsd answers C{ERR INVALID-ARGUMENT}.
    INVALID = "invalid"
    #: Ended with a backslash: the request goes on on the next line.
    INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class Classified:
    """
    A classified line.

    @ivar kind: what it is.
    @ivar verb: the request's first word, upper-cased (C{""} for a blank
        line, a parse error or an incomplete line).
    """

    kind: Kind
    verb: str = ""


_INCOMPLETE = Classified(Kind.INCOMPLETE)
_INVALID = Classified(Kind.INVALID)
_BLANK = Classified(Kind.OTHER)
#: Verbs whose request class decides the kind; every other verb is OTHER
#: (L{parse_request} chooses the class by the upper-cased verb alone).
_SPECIAL = frozenset(("STARTTLS", "LOGOUT", "DETACH"))
#: One (immutable) L{Classified} per common verb, shared by every line:
#: relays classify every request they forward.  Bounded, since verbs come
#: from clients.
_OTHER: Dict[str, Classified] = {}
_OTHER_MAX = 64


class RequestClassifier:
    """
    Classifies the request lines of one connection, in order.

    One instance per connection and direction, because a line ending in a
    backslash continues on the next one: the classifier keeps that state,
    exactly as nut-upsd's per-connection tokenizer does.
    """

    __slots__ = ("_tokenizer", "_continued")

    def __init__(self) -> None:
        self._tokenizer = RequestTokenizer()
        self._continued = False

    @property
    def pending(self) -> bool:
        """
        Whether the last line was continued and its request is unfinished.
        """
        return self._continued

    def line(self, line: bytes) -> Classified:
        """
        Classify one received line (without its C{\\n}).
        """
        # The tokenizer's own fast path takes the plain lines (most
        # requests: printable, no quotes, escapes or comments).
        words = self._tokenizer.line(line)
        self._continued = words is None
        if words is None:
            return _INCOMPLETE
        if isinstance(words, ParseError):
            return _INVALID
        if not words:
            return _BLANK
        verb = words[0].upper()
        if verb not in _SPECIAL:
            known = _OTHER.get(verb)
            if known is None:
                known = Classified(Kind.OTHER, verb)
                if len(_OTHER) < _OTHER_MAX:
                    _OTHER[verb] = known
            return known
        request = parse_request(words)
        if isinstance(request, StartTLS):
            return Classified(Kind.STARTTLS, verb)
        if isinstance(request, (Logout, Detach)):
            return Classified(Kind.GOODBYE, verb)
        return Classified(Kind.OTHER, verb)

    def reset(self) -> None:
        """
        Forget a continued line (after STARTTLS the plaintext state goes).
        """
        self._tokenizer.reset()
        self._continued = False


def starttls_accepted(reply: Union[bytes, str]) -> bool:
    """
    Whether a server's reply to C{STARTTLS} accepts it.

    C{OK STARTTLS} is NUT's answer (NUT's client library checks that
    prefix); a bare C{OK} is RFC 9271 Appendix D.1.1's, sent by the
    published upsdTLS.py.  Anything else -- C{ERR ...}, C{OK} followed by
    something other than C{STARTTLS} -- is a refusal.  A trailing C{\\r}
    is ignored.
    """
    text = reply.decode("ascii", "replace") if isinstance(reply, bytes) else reply
    text = text.rstrip("\r\n")
    if text == "OK":
        return True
    return text == "OK STARTTLS" or text.startswith("OK STARTTLS ")
