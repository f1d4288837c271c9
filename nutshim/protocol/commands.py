# -*- test-case-name: nutshim.test.test_commands -*-
"""
Parsed requests: one frozen class per command of RFC 9271 and NUT 2.8.0.

L{parse_request} applies NUT's argument gates (which arguments are required,
which extra words are ignored, which are rejected) so that the daemon only
ever sees well-formed requests or an L{Invalid} carrying the exact error
NUT would give.  Names keep the client's spelling: NUT echoes them.

L{Request.words} turns a parsed request back into words; with
L{nutshim.protocol.join_words} that gives the line a client sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

from nutshim.protocol.errors import NutError

__all__ = [
    "Request",
    "Ver",
    "NetVer",
    "ProtVer",
    "Help",
    "StartTLS",
    "Username",
    "Password",
    "Login",
    "Attach",
    "Logout",
    "Detach",
    "Primary",
    "Master",
    "Fsd",
    "GetVar",
    "GetType",
    "GetDesc",
    "GetCmdDesc",
    "GetUpsDesc",
    "GetNumLogins",
    "GetNumAttach",
    "GetTracking",
    "ListUps",
    "ListVar",
    "ListRw",
    "ListCmd",
    "ListClient",
    "ListEnum",
    "ListRange",
    "SetVar",
    "SetTracking",
    "InstCmd",
    "Invalid",
    "Unknown",
    "USER_VERBS",
    "parse_request",
]


class Request:
    """
    Base of all parsed requests.

    @cvar verb: the canonical verb.
    """

    __slots__ = ()
    verb: str = ""

    def words(self) -> Tuple[str, ...]:
        """
        The request as words, ready for L{nutshim.protocol.join_words}.
        """
        raise NotImplementedError()


@dataclass(frozen=True, slots=True)
class Ver(Request):
    """C{VER}: the server's version text."""

    verb = "VER"

    def words(self) -> Tuple[str, ...]:
        return ("VER",)


@dataclass(frozen=True, slots=True)
class NetVer(Request):
    """C{NETVER}: the legacy name of PROTVER."""

    verb = "NETVER"

    def words(self) -> Tuple[str, ...]:
        return ("NETVER",)


@dataclass(frozen=True, slots=True)
class ProtVer(Request):
    """C{PROTVER}: the protocol version, C{1.3}."""

    verb = "PROTVER"

    def words(self) -> Tuple[str, ...]:
        return ("PROTVER",)


@dataclass(frozen=True, slots=True)
class Help(Request):
    """C{HELP}."""

    verb = "HELP"

    def words(self) -> Tuple[str, ...]:
        return ("HELP",)


@dataclass(frozen=True, slots=True)
class StartTLS(Request):
    """C{STARTTLS}; NUT ignores any arguments."""

    verb = "STARTTLS"

    def words(self) -> Tuple[str, ...]:
        return ("STARTTLS",)


@dataclass(frozen=True, slots=True)
class Logout(Request):
    """C{LOGOUT}: C{OK Goodbye}, then close."""

    verb = "LOGOUT"

    def words(self) -> Tuple[str, ...]:
        return ("LOGOUT",)


@dataclass(frozen=True, slots=True)
class Detach(Request):
    """C{DETACH} (RFC 9271): leave the attach count, C{OK Goodbye}, close."""

    verb = "DETACH"

    def words(self) -> Tuple[str, ...]:
        return ("DETACH",)


@dataclass(frozen=True, slots=True)
class Username(Request):
    """C{USERNAME <name>}."""

    name: str
    verb = "USERNAME"

    def words(self) -> Tuple[str, ...]:
        return ("USERNAME", self.name)


@dataclass(frozen=True, slots=True)
class Password(Request):
    """C{PASSWORD <password>}."""

    password: str
    verb = "PASSWORD"

    def words(self) -> Tuple[str, ...]:
        return ("PASSWORD", self.password)


@dataclass(frozen=True, slots=True)
class _UpsCommand(Request):
    ups: str

    def words(self) -> Tuple[str, ...]:
        return (self.verb, self.ups)


@dataclass(frozen=True, slots=True)
class Login(_UpsCommand):
    """C{LOGIN <ups>}: the legacy name of ATTACH."""

    verb = "LOGIN"


@dataclass(frozen=True, slots=True)
class Attach(_UpsCommand):
    """C{ATTACH <ups>} (RFC 9271): count this system as powered by C{ups}."""

    verb = "ATTACH"


@dataclass(frozen=True, slots=True)
class Primary(_UpsCommand):
    """C{PRIMARY <ups>}: check the right to act as Primary."""

    verb = "PRIMARY"


@dataclass(frozen=True, slots=True)
class Master(_UpsCommand):
    """C{MASTER <ups>}: the legacy name of PRIMARY."""

    verb = "MASTER"


@dataclass(frozen=True, slots=True)
class Fsd(_UpsCommand):
    """C{FSD <ups>}: latch forced shutdown."""

    verb = "FSD"


@dataclass(frozen=True, slots=True)
class _GetUps(Request):
    ups: str
    sub = ""

    def words(self) -> Tuple[str, ...]:
        return ("GET", self.sub, self.ups)


@dataclass(frozen=True, slots=True)
class GetUpsDesc(_GetUps):
    """C{GET UPSDESC <ups>}."""

    verb = "GET"
    sub = "UPSDESC"


@dataclass(frozen=True, slots=True)
class GetNumLogins(_GetUps):
    """C{GET NUMLOGINS <ups>}: the legacy name of NUMATTACH."""

    verb = "GET"
    sub = "NUMLOGINS"


@dataclass(frozen=True, slots=True)
class GetNumAttach(_GetUps):
    """C{GET NUMATTACH <ups>} (RFC 9271)."""

    verb = "GET"
    sub = "NUMATTACH"


@dataclass(frozen=True, slots=True)
class _GetUpsName(Request):
    ups: str
    name: str
    sub = ""

    def words(self) -> Tuple[str, ...]:
        return ("GET", self.sub, self.ups, self.name)


@dataclass(frozen=True, slots=True)
class GetVar(_GetUpsName):
    """C{GET VAR <ups> <var>}."""

    verb = "GET"
    sub = "VAR"


@dataclass(frozen=True, slots=True)
class GetType(_GetUpsName):
    """C{GET TYPE <ups> <var>}."""

    verb = "GET"
    sub = "TYPE"


@dataclass(frozen=True, slots=True)
class GetDesc(_GetUpsName):
    """C{GET DESC <ups> <var>}."""

    verb = "GET"
    sub = "DESC"


@dataclass(frozen=True, slots=True)
class GetCmdDesc(_GetUpsName):
    """C{GET CMDDESC <ups> <cmd>}."""

    verb = "GET"
    sub = "CMDDESC"


@dataclass(frozen=True, slots=True)
class GetTracking(Request):
    """C{GET TRACKING [<id>]}: this connection's flag, or an id's status."""

    id: Optional[str] = None
    verb = "GET"

    def words(self) -> Tuple[str, ...]:
        if self.id is None:
            return ("GET", "TRACKING")
        return ("GET", "TRACKING", self.id)


@dataclass(frozen=True, slots=True)
class ListUps(Request):
    """C{LIST UPS}."""

    verb = "LIST"

    def words(self) -> Tuple[str, ...]:
        return ("LIST", "UPS")


@dataclass(frozen=True, slots=True)
class _ListUps(Request):
    ups: str
    sub = ""

    def words(self) -> Tuple[str, ...]:
        return ("LIST", self.sub, self.ups)


@dataclass(frozen=True, slots=True)
class ListVar(_ListUps):
    """C{LIST VAR <ups>}."""

    verb = "LIST"
    sub = "VAR"


@dataclass(frozen=True, slots=True)
class ListRw(_ListUps):
    """C{LIST RW <ups>}."""

    verb = "LIST"
    sub = "RW"


@dataclass(frozen=True, slots=True)
class ListCmd(_ListUps):
    """C{LIST CMD <ups>}."""

    verb = "LIST"
    sub = "CMD"


@dataclass(frozen=True, slots=True)
class ListClient(_ListUps):
    """C{LIST CLIENT <ups>}."""

    verb = "LIST"
    sub = "CLIENT"


@dataclass(frozen=True, slots=True)
class _ListUpsVar(Request):
    ups: str
    var: str
    sub = ""

    def words(self) -> Tuple[str, ...]:
        return ("LIST", self.sub, self.ups, self.var)


@dataclass(frozen=True, slots=True)
class ListEnum(_ListUpsVar):
    """C{LIST ENUM <ups> <var>}."""

    verb = "LIST"
    sub = "ENUM"


@dataclass(frozen=True, slots=True)
class ListRange(_ListUpsVar):
    """C{LIST RANGE <ups> <var>}."""

    verb = "LIST"
    sub = "RANGE"


@dataclass(frozen=True, slots=True)
class SetVar(Request):
    """C{SET VAR <ups> <var> <value>}."""

    ups: str
    var: str
    value: str
    verb = "SET"

    def words(self) -> Tuple[str, ...]:
        return ("SET", "VAR", self.ups, self.var, self.value)


@dataclass(frozen=True, slots=True)
class SetTracking(Request):
    """C{SET TRACKING ON|OFF}."""

    enabled: bool
    verb = "SET"

    def words(self) -> Tuple[str, ...]:
        return ("SET", "TRACKING", "ON" if self.enabled else "OFF")


@dataclass(frozen=True, slots=True)
class InstCmd(Request):
    """C{INSTCMD <ups> <cmd> [<param>]}."""

    ups: str
    cmd: str
    param: Optional[str] = None
    verb = "INSTCMD"

    def words(self) -> Tuple[str, ...]:
        if self.param is None:
            return ("INSTCMD", self.ups, self.cmd)
        return ("INSTCMD", self.ups, self.cmd, self.param)


@dataclass(frozen=True, slots=True)
class Invalid(Request):
    """
    A known verb with arguments NUT rejects.

    @ivar verb: the canonical verb, so that the daemon can apply the
        login checks NUT makes before looking at arguments.
    """

    verb: str
    error: NutError = NutError.INVALID_ARGUMENT

    def words(self) -> Tuple[str, ...]:
        return (self.verb,)


@dataclass(frozen=True, slots=True)
class Unknown(Request):
    """An empty line or a verb NUT does not know."""

    words_: Tuple[str, ...] = ()
    verb = ""

    def words(self) -> Tuple[str, ...]:
        return self.words_


#: Verbs that need USERNAME and PASSWORD before their arguments are looked at.
USER_VERBS = frozenset({"LOGIN", "ATTACH", "PRIMARY", "MASTER", "FSD", "SET", "INSTCMD"})

def _exact(n: int, make: Callable[..., Request], verb: str) -> Callable[[Sequence[str]], Request]:
    def parse(args: Sequence[str]) -> Request:
        if len(args) != n:
            return Invalid(verb)
        return make(*args)

    return parse


_GET_UPS: Dict[str, Callable[[str], Request]] = {
    "UPSDESC": GetUpsDesc,
    "NUMLOGINS": GetNumLogins,
    "NUMATTACH": GetNumAttach,
}
_GET_UPS_NAME: Dict[str, Callable[[str, str], Request]] = {
    "VAR": GetVar,
    "TYPE": GetType,
    "DESC": GetDesc,
    "CMDDESC": GetCmdDesc,
}


def _get(args: Sequence[str]) -> Request:
    if not args:
        return Invalid("GET")
    sub = args[0].upper()
    if sub == "TRACKING":
        return GetTracking(args[1] if len(args) > 1 else None)
    if len(args) < 2:
        return Invalid("GET")
    one = _GET_UPS.get(sub)
    if one is not None:
        return one(args[1])
    if len(args) < 3:
        return Invalid("GET")
    two = _GET_UPS_NAME.get(sub)
    if two is not None:
        return two(args[1], args[2])
    return Invalid("GET")


_LIST_UPS: Dict[str, Callable[[str], Request]] = {
    "VAR": ListVar,
    "RW": ListRw,
    "CMD": ListCmd,
    "CLIENT": ListClient,
}


def _list(args: Sequence[str]) -> Request:
    if not args:
        return Invalid("LIST")
    sub = args[0].upper()
    if sub == "UPS":
        return ListUps()
    if len(args) < 2:
        return Invalid("LIST")
    one = _LIST_UPS.get(sub)
    if one is not None:
        return one(args[1])
    if len(args) < 3:
        return Invalid("LIST")
    if sub == "ENUM":
        return ListEnum(args[1], args[2])
    if sub == "RANGE":
        return ListRange(args[1], args[2])
    return Invalid("LIST")


def _set(args: Sequence[str]) -> Request:
    if len(args) < 2:
        return Invalid("SET")
    sub = args[0].upper()
    if sub == "VAR":
        if len(args) < 4:
            return Invalid("SET")
        return SetVar(args[1], args[2], args[3])
    if sub == "TRACKING":
        flag = args[1].upper()
        if flag == "ON":
            return SetTracking(True)
        if flag == "OFF":
            return SetTracking(False)
    return Invalid("SET")


def _instcmd(args: Sequence[str]) -> Request:
    if len(args) < 2:
        return Invalid("INSTCMD")
    # NUT uses the parameter only when exactly one follows the command.
    return InstCmd(args[0], args[1], args[2] if len(args) == 3 else None)


def _none(make: Callable[[], Request], verb: str) -> Callable[[Sequence[str]], Request]:
    return _exact(0, make, verb)


_TABLE: Dict[str, Callable[[Sequence[str]], Request]] = {
    "VER": _none(Ver, "VER"),
    "NETVER": _none(NetVer, "NETVER"),
    "PROTVER": _none(ProtVer, "PROTVER"),
    "HELP": _none(Help, "HELP"),
    "STARTTLS": lambda args: StartTLS(),
    "GET": _get,
    "LIST": _list,
    "USERNAME": _exact(1, Username, "USERNAME"),
    "PASSWORD": _exact(1, Password, "PASSWORD"),
    "LOGIN": _exact(1, Login, "LOGIN"),
    "ATTACH": _exact(1, Attach, "ATTACH"),
    "LOGOUT": _none(Logout, "LOGOUT"),
    "DETACH": _none(Detach, "DETACH"),
    "PRIMARY": _exact(1, Primary, "PRIMARY"),
    "MASTER": _exact(1, Master, "MASTER"),
    "FSD": _exact(1, Fsd, "FSD"),
    "SET": _set,
    "INSTCMD": _instcmd,
}


def parse_request(words: Sequence[str]) -> Request:
    """
    Turn a tokenized request line into a parsed request.

    Verbs and sub-commands are case-insensitive, as in NUT; names and values
    keep their spelling.
    """
    if not words:
        return Unknown(())
    handler = _TABLE.get(words[0].upper())
    if handler is None:
        return Unknown(tuple(words))
    return handler(words[1:])
