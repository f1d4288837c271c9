# -*- test-case-name: nutshim.test.test_client -*-
"""
The request methods of L{NUTClientProtocol}, one per NUT command.

They only build the request line and choose the reply parser; the
connection machinery (queueing, matching, timeouts, STARTTLS) is in
L{nutshim.client.protocol}.  Where RFC 9271 renamed a command, the new name
is tried first and the legacy one on the error NUT 2.8 gives for it.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, TypeVar, Union, overload

from twisted.internet.defer import Deferred

from nutshim.client import _replies as R
from nutshim.client._replies import VarType, Words
from nutshim.protocol import NutError, join_words, quote

__all__ = ["NUTCommands"]

T = TypeVar("T")


def check_word(word: str) -> str:
    """
    A word NUT can carry: printable ASCII (NUT deletes anything else, and a
    newline would end the request early).

    @raise ValueError: otherwise.
    """
    if not all(" " <= ch <= "~" for ch in word):
        raise ValueError(f"NUT words are printable ASCII only: {word!r}")
    return word


def join(*words: str) -> str:
    """Checked words as one request line, quoted where needed."""
    return join_words([check_word(w) for w in words])


class NUTCommands:
    """
    One method per NUT command, each returning a L{Deferred} of the parsed
    reply.  Mixed into L{NUTClientProtocol}, which provides the transport.
    """

    def _send(self, line: str, parse: Callable[[str, Optional[Words]], T],
              credential: bool = False) -> Deferred[T]:
        raise NotImplementedError()

    def _list(self, query: Sequence[str], parse: Callable[[List[Words]], T]) -> Deferred[T]:
        raise NotImplementedError()

    def _closing(self, result: None) -> None:
        raise NotImplementedError()


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
        return self._send(join("USERNAME", name), R.ok, credential=True)

    def password(self, password: str) -> Deferred[None]:
        """C{PASSWORD}; refused without TLS when C{require_tls} is set."""
        return self._send(join("PASSWORD", password), R.ok, credential=True)

    def login(self, ups: str) -> Deferred[None]:
        """C{LOGIN <ups>}."""
        return self._send(join("LOGIN", ups), R.ok)

    def attach(self, ups: str) -> Deferred[None]:
        """C{ATTACH <ups>} (RFC 9271), falling back to C{LOGIN}."""
        return R.fallback(self._send(join("ATTACH", ups), R.ok),
                          lambda: self.login(ups), NutError.UNKNOWN_COMMAND)

    def logout(self) -> Deferred[None]:
        """C{LOGOUT}: fires on C{OK Goodbye}, then closes the connection."""
        return self._send("LOGOUT", R.ok).addCallback(self._closing)

    def detach(self) -> Deferred[None]:
        """C{DETACH} (RFC 9271), falling back to C{LOGOUT}; then closes."""
        d = R.fallback(self._send("DETACH", R.ok), lambda: self._send("LOGOUT", R.ok),
                       NutError.UNKNOWN_COMMAND)
        return d.addCallback(self._closing)

    def primary(self, ups: str) -> Deferred[str]:
        """
        C{PRIMARY <ups>}, falling back to C{MASTER}; fires with the text after
        C{OK} (C{PRIMARY-GRANTED} or C{MASTER-GRANTED}).
        """
        return R.fallback(self._send(join("PRIMARY", ups), R.ok_text),
                          lambda: self._send(join("MASTER", ups), R.ok_text),
                          NutError.UNKNOWN_COMMAND)

    def fsd(self, ups: str) -> Deferred[None]:
        """C{FSD <ups>}: latch forced shutdown."""
        return self._send(join("FSD", ups), R.ok)

    def get_var(self, ups: str, var: str) -> Deferred[str]:
        """C{GET VAR}: the value, unescaped."""
        return self._send(join("GET", "VAR", ups, var), R.field(("VAR", ups, var)))

    def get_type(self, ups: str, var: str) -> Deferred[VarType]:
        """C{GET TYPE}: the variable's flags."""
        return self._send(join("GET", "TYPE", ups, var), R.var_type(ups, var))

    def get_desc(self, ups: str, var: str) -> Deferred[str]:
        """C{GET DESC}: the variable's description."""
        return self._send(join("GET", "DESC", ups, var), R.field(("DESC", ups, var)))

    def get_cmddesc(self, ups: str, cmd: str) -> Deferred[str]:
        """C{GET CMDDESC}: the instant command's description."""
        return self._send(join("GET", "CMDDESC", ups, cmd),
                          R.field(("CMDDESC", ups, cmd)))

    def get_upsdesc(self, ups: str) -> Deferred[str]:
        """C{GET UPSDESC}: the description from ups.conf."""
        return self._send(join("GET", "UPSDESC", ups), R.field(("UPSDESC", ups)))

    def num_attach(self, ups: str) -> Deferred[int]:
        """
        C{GET NUMATTACH} (RFC 9271), falling back to C{GET NUMLOGINS} on
        C{INVALID-ARGUMENT} or C{UNKNOWN-COMMAND} (NUT up to 2.8.x).
        """
        return R.fallback(
            self._send(join("GET", "NUMATTACH", ups), R.count(("NUMATTACH", ups))),
            lambda: self._send(join("GET", "NUMLOGINS", ups), R.count(("NUMLOGINS", ups))),
            NutError.INVALID_ARGUMENT, NutError.UNKNOWN_COMMAND,
        )

    @overload
    def get_tracking(self, id: None = None) -> Deferred[bool]: ...

    @overload
    def get_tracking(self, id: str) -> Deferred[str]: ...

    def get_tracking(self, id: Optional[str] = None) -> Union[Deferred[bool], Deferred[str]]:
        """
        C{GET TRACKING}: without an id, whether tracking is on (C{bool});
        with one, the status line: C{PENDING}, C{SUCCESS}, C{ERR UNKNOWN},
        C{ERR FAILED} or C{ERR INVALID-ARGUMENT} (C{str}).  Other errors
        (C{FEATURE-NOT-CONFIGURED}: tracking is off) fail the L{Deferred}.
        """
        if id is None:
            return self._send("GET TRACKING", R.on_off)
        return R.tracking_status(self._send(join("GET", "TRACKING", id), R.raw_line))

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
        line = join("SET", "VAR", ups, var) + " " + quote(check_word(value))
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
        return self._send(join(*words), R.tracking_id)
