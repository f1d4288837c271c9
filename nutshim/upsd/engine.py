# -*- test-case-name: nutshim.test.test_engine -*-
"""
What the Attachment Daemon answers, byte for byte as NUT 2.8.0's upsd.

The engine takes a parsed request and a session and returns the reply bytes
and what the connection must do next (close, start TLS).  It does no I/O, so
every rule of NUT's error precedence is tested without sockets, and the
Twisted protocol stays thin glue.

Where RFC 9271 adds what NUT 2.8.0 lacks (ATTACH, DETACH, GET NUMATTACH,
TLS-NOT-ENABLED, TLS-ALREADY-ENABLED) it follows the RFC; where NUT has bugs
(SET on a RANGE with trailing junk) it does not copy them.  The list of
differences is in docs/compatibility.md.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import Callable, Dict, Mapping, Optional, Protocol, Tuple, Type

from twisted.logger import Logger

from nutshim import __version__
from nutshim.protocol import commands as c
from nutshim.protocol._tokenizer import encode
from nutshim.protocol.errors import NutError
from nutshim.protocol.replies import list_block
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.upsd.tracking import TrackingTable

__all__ = ["Action", "Engine", "Reply", "ServerInfo", "IUser", "IUsers", "IDescriptions"]

PROTOCOL_VERSION = "1.3"
#: NUT 2.8.3 and later list PROTVER (2.8.0-2.8.2 did not; NETVER, PRIMARY,
#: MASTER and FSD are never listed).
HELP_TEXT = b"Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
#: NUT 2.8.4 and later describe C{upstream.<name>} as C{<name>}: a driver
#: proxying another UPS (failover, clone) publishes its upstream's
#: variables and commands under that prefix.  Case-sensitive, stripped once.
UPSTREAM_PREFIX = "upstream."

#: Commands a client that must use TLS may still send in plaintext.  HELP and
#: the protocol version reveal nothing about the site and let a client learn
#: that it must STARTTLS; VER is refused because it names the software.
PLAINTEXT_ALLOWED = (c.StartTLS, c.Help, c.ProtVer, c.NetVer)


class Action(enum.Enum):
    """
    What the connection does after writing the reply.
    """

    NONE = 0
    #: LOGOUT/DETACH: close unless more requests arrived in the same chunk.
    CLOSE = 1
    #: STARTTLS accepted: start the TLS handshake now.
    START_TLS = 2


Reply = Tuple[bytes, Action]


class IUser(Protocol):
    """
    One upsd.users user (L{nutshim.config.User}).
    """

    @property
    def name(self) -> str: ...

    def may(self, action: str) -> bool: ...

    def may_instcmd(self, cmd: str) -> bool: ...


class IUsers(Protocol):
    """
    What the engine needs of upsd.users (L{nutshim.config.Users}).
    """

    @property
    def users(self) -> Mapping[str, IUser]: ...

    def check_action(self, username: Optional[str], password: Optional[str], action: str) -> bool: ...

    def check_instcmd(self, username: Optional[str], password: Optional[str], cmd: str) -> bool: ...

    def user_for_certificate(self, cn: str, fingerprint: str) -> Optional[IUser]: ...


class IDescriptions(Protocol):
    """
    What the engine needs of cmdvartab (L{nutshim.config.CmdVarTab}).
    """

    def describe_var(self, name: str) -> Optional[str]: ...

    def describe_cmd(self, name: str) -> Optional[str]: ...


class _NoDescriptions:
    def describe_var(self, name: str) -> Optional[str]:
        return None

    def describe_cmd(self, name: str) -> Optional[str]:
        return None


class ServerInfo:
    """
    How the daemon names itself: honestly nutshim, in NUT's format.
    """

    version = __version__
    ver_text = f"nutshim upsd {__version__} (Network UPS Tools protocol {PROTOCOL_VERSION})"


_INTEGER = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*\Z")


class _Fail(Exception):
    def __init__(self, error: NutError) -> None:
        self.error = error


def _ok(text: str) -> bytes:
    return (text + "\n").encode("ascii", "replace")


def _network_peer(address: str) -> bool:
    """
    Whether C{address} is an IP address of another host (not a Unix socket,
    not the loopback).
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_loopback


def _described(name: str) -> str:
    """
    The name whose description C{GET DESC}/C{GET CMDDESC} look up.
    """
    return name[len(UPSTREAM_PREFIX) :] if name.startswith(UPSTREAM_PREFIX) else name


class Engine:
    """
    The command semantics of upsd.

    @ivar log: where the engine's warnings go (a L{Logger}; replaced in
        tests).
    @ivar registry: the UPSes and sessions.
    @ivar users: the upsd.users table (replaced on reload).
    @ivar descriptions: cmdvartab (replaced on reload).
    @ivar tracking: the tracking table.
    @ivar tls_available: whether STARTTLS can be accepted.
    """

    def __init__(
        self,
        registry: Registry,
        users: IUsers,
        tracking: TrackingTable,
        descriptions: Optional[IDescriptions] = None,
    ) -> None:
        self.log = Logger()
        self.registry = registry
        self.users = users
        self.tracking = tracking
        self.descriptions: IDescriptions = descriptions or _NoDescriptions()
        self.tls_available = False
        self._handlers: Dict[Type[c.Request], Callable[[Session, c.Request], Reply]] = {
            c.Ver: self._ver,
            c.NetVer: self._protver,
            c.ProtVer: self._protver,
            c.Help: self._help,
            c.StartTLS: self._starttls,
            c.Username: self._username,
            c.Password: self._password,
            c.Login: self._login,
            c.Attach: self._login,
            c.Logout: self._logout,
            c.Detach: self._detach,
            c.Primary: self._primary,
            c.Master: self._primary,
            c.Fsd: self._fsd,
            c.GetVar: self._get_var,
            c.GetType: self._get_type,
            c.GetDesc: self._get_desc,
            c.GetCmdDesc: self._get_cmddesc,
            c.GetUpsDesc: self._get_upsdesc,
            c.GetNumLogins: self._get_numlogins,
            c.GetNumAttach: self._get_numlogins,
            c.GetTracking: self._get_tracking,
            c.ListUps: self._list_ups,
            c.ListVar: self._remembered(self._list_var),
            c.ListRw: self._remembered(self._list_rw),
            c.ListCmd: self._remembered(self._list_cmd),
            c.ListClient: self._list_client,
            c.ListEnum: self._list_enum,
            c.ListRange: self._list_range,
            c.SetVar: self._set_var,
            c.SetTracking: self._set_tracking,
            c.InstCmd: self._instcmd,
        }

    # Entry point.

    def handle(self, session: Session, request: c.Request) -> Reply:
        """
        Answer one request.
        """
        if session.tls_required and not session.tls and not isinstance(
            request, PLAINTEXT_ALLOWED
        ):
            return NutError.TLS_NOT_ENABLED.line, Action.NONE
        if request.verb in c.USER_VERBS and self._certificate_user(session) is None:
            if session.username is None:
                return NutError.USERNAME_REQUIRED.line, Action.NONE
            if session.password is None:
                return NutError.PASSWORD_REQUIRED.line, Action.NONE
        handler = self._handlers.get(type(request))
        if handler is None:
            if isinstance(request, c.Invalid):
                return request.error.line, Action.NONE
            return NutError.UNKNOWN_COMMAND.line, Action.NONE
        try:
            return handler(session, request)
        except _Fail as f:
            return f.error.line, Action.NONE

    # Helpers.

    def _ups(self, name: str) -> UpsEntry:
        entry = self.registry.get(name)
        if entry is None:
            raise _Fail(NutError.UNKNOWN_UPS)
        return entry

    def _available(self, name: str) -> UpsEntry:
        entry = self._ups(name)
        driver = entry.driver
        if not driver.connected:
            raise _Fail(NutError.DRIVER_NOT_CONNECTED)
        if driver.stale:
            raise _Fail(NutError.DATA_STALE)
        return entry

    def _certificate_user(self, session: Session) -> Optional[IUser]:
        """
        The user a verified TLS client certificate authenticates this
        session as, in place of USERNAME/PASSWORD.

        The rule: the certificate maps to user U (upsd.users
        C{certificate = CN|sha256:HEX}, set on the session after the
        handshake as C{cert_user}), and the session sent either no
        USERNAME or C{USERNAME U}, and no PASSWORD.  A PASSWORD, or a
        USERNAME naming someone else, means the client chose password
        authentication: it is checked as usual and never overridden by
        the certificate (a wrong password stays wrong).  U's rights come
        from the current upsd.users, so a reload applies to them.
        """
        name = session.cert_user
        if name is None or not session.tls or session.password is not None:
            return None
        if session.username is not None and session.username != name:
            return None
        return self.users.users.get(name)

    def _allowed(self, session: Session, req: c.Request, *actions: str) -> bool:
        """
        Whether the session's user may do any of C{actions}.
        """
        user = self._certificate_user(session)
        if user is not None:
            return any(user.may(action) for action in actions)
        allowed = any(
            self.users.check_action(session.username, session.password, action) for action in actions
        )
        self._note_cleartext_password(session, req, allowed)
        return allowed

    def _note_cleartext_password(self, session: Session, req: c.Request, allowed: bool) -> None:
        """
        RFC 9271 section 6.2: say so when a password has just been used
        that came over the network in plaintext (once per connection: the
        first LOGIN, ATTACH, PRIMARY, FSD, SET or INSTCMD that checks it),
        so that an administrator sees which clients still need STARTTLS.
        """
        if session.tls or session.cleartext_noted or not _network_peer(session.address):
            return
        session.cleartext_noted = True
        self.log.warn(
            "Plaintext password from {address}: user {user} ({action} on UPS {ups}, {outcome});"
            " the password crossed the network in clear: use STARTTLS (RFC 9271 section 6.2)",
            address=session.address,
            user=session.username,
            action=req.verb,
            ups=getattr(req, "ups", "?"),
            outcome="accepted" if allowed else "refused",
        )

    # Simple commands.

    def _ver(self, session: Session, req: c.Request) -> Reply:
        return _ok(ServerInfo.ver_text), Action.NONE

    def _protver(self, session: Session, req: c.Request) -> Reply:
        return _ok(PROTOCOL_VERSION), Action.NONE

    def _help(self, session: Session, req: c.Request) -> Reply:
        return HELP_TEXT, Action.NONE

    def _starttls(self, session: Session, req: c.Request) -> Reply:
        if session.tls:
            return NutError.TLS_ALREADY_ENABLED.line, Action.NONE
        if not self.tls_available:
            return NutError.FEATURE_NOT_CONFIGURED.line, Action.NONE
        return b"OK STARTTLS\n", Action.START_TLS

    def _username(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.Username)
        if session.username is not None:
            return NutError.ALREADY_SET_USERNAME.line, Action.NONE
        session.username = req.name
        return b"OK\n", Action.NONE

    def _password(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.Password)
        if session.password is not None:
            return NutError.ALREADY_SET_PASSWORD.line, Action.NONE
        session.password = req.password
        return b"OK\n", Action.NONE

    # Sessions on a UPS.

    def _login(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, (c.Login, c.Attach))
        if session.login is not None:
            if isinstance(req, c.Attach):
                return NutError.ALREADY_ATTACHED.line, Action.NONE
            return NutError.ALREADY_LOGGED_IN.line, Action.NONE
        entry = self._ups(req.ups)
        if not self._allowed(session, req, "LOGIN"):
            return NutError.ACCESS_DENIED.line, Action.NONE
        entry.numlogins += 1
        session.login = entry
        session.attached = isinstance(req, c.Attach)
        return b"OK\n", Action.NONE

    def _logout(self, session: Session, req: c.Request) -> Reply:
        return b"OK Goodbye\n", Action.CLOSE

    def _detach(self, session: Session, req: c.Request) -> Reply:
        self.registry.detach(session)
        return b"OK Goodbye\n", Action.CLOSE

    def _primary(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, (c.Primary, c.Master))
        self._ups(req.ups)
        if not self._allowed(session, req, "PRIMARY", "MASTER"):
            return NutError.ACCESS_DENIED.line, Action.NONE
        if isinstance(req, c.Primary):
            return b"OK PRIMARY-GRANTED\n", Action.NONE
        return b"OK MASTER-GRANTED\n", Action.NONE

    def _fsd(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.Fsd)
        entry = self._ups(req.ups)
        if not self._allowed(session, req, "FSD"):
            return NutError.ACCESS_DENIED.line, Action.NONE
        entry.fsd = True
        return b"OK FSD-SET\n", Action.NONE

    # GET.

    def _get_var(self, session: Session, req: c.Request) -> Reply:
        # Not remembered: building this one line costs less than looking
        # a request up in a cache.
        assert isinstance(req, c.GetVar)
        lname = req.name.lower()
        if lname.startswith("server."):
            if lname == "server.info":
                value = ServerInfo.ver_text
            elif lname == "server.version":
                value = ServerInfo.version
            else:
                return NutError.VAR_NOT_SUPPORTED.line, Action.NONE
            return _ok(f'VAR {req.ups} {lname} "{encode(value)}"'), Action.NONE
        entry = self._available(req.ups)
        var = entry.driver.state.get(req.name)
        if var is None:
            return NutError.VAR_NOT_SUPPORTED.line, Action.NONE
        value = var.escaped
        if entry.fsd and lname == "ups.status":
            value = "FSD " + value
        return _ok(f'VAR {req.ups} {req.name} "{value}"'), Action.NONE

    def _remembered(
        self, build: Callable[[UpsEntry, c.Request], bytes]
    ) -> Callable[[Session, c.Request], Reply]:
        """
        A handler for a request whose reply depends only on one UPS's data
        and latch: built once, then served from L{UpsEntry.replies} until
        that data changes.  (Availability is checked every time.)
        """

        def handler(session: Session, req: c.Request) -> Reply:
            entry = self._available(getattr(req, "ups"))
            replies = entry.replies()
            reply = replies.get(req)
            if reply is None:
                reply = replies[req] = build(entry, req)
            return reply, Action.NONE

        return handler

    def _get_type(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.GetType)
        entry = self._available(req.ups)
        var = entry.driver.state.get(req.name)
        if var is None:
            return NutError.VAR_NOT_SUPPORTED.line, Action.NONE
        return _ok(" ".join(["TYPE", req.ups, req.name, *var.type_words()])), Action.NONE

    def _get_desc(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.GetDesc)
        self._available(req.ups)
        text = self.descriptions.describe_var(_described(req.name)) or "Description unavailable"
        return _ok(f'DESC {req.ups} {req.name} "{text}"'), Action.NONE

    def _get_cmddesc(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.GetCmdDesc)
        self._available(req.ups)
        text = self.descriptions.describe_cmd(_described(req.name)) or "Description unavailable"
        return _ok(f'CMDDESC {req.ups} {req.name} "{text}"'), Action.NONE

    def _get_upsdesc(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.GetUpsDesc)
        entry = self._ups(req.ups)
        desc = encode(entry.desc) if entry.desc is not None else "Unavailable"
        return _ok(f'UPSDESC {req.ups} "{desc}"'), Action.NONE

    def _get_numlogins(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, (c.GetNumLogins, c.GetNumAttach))
        entry = self._available(req.ups)
        return _ok(f"{req.sub} {req.ups} {entry.numlogins}"), Action.NONE

    def _get_tracking(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.GetTracking)
        if req.id is None:
            return (b"ON\n" if session.tracking else b"OFF\n"), Action.NONE
        if not session.tracking:
            return NutError.FEATURE_NOT_CONFIGURED.line, Action.NONE
        return _ok(self.tracking.status(req.id)), Action.NONE

    # LIST.

    def _list_ups(self, session: Session, req: c.Request) -> Reply:
        body = []
        for entry in self.registry:
            desc = encode(entry.desc) if entry.desc is not None else "Description unavailable"
            body.append(_ok(f'UPS {entry.name} "{desc}"'))
        return list_block(("UPS",), body), Action.NONE

    def _list_var(self, entry: UpsEntry, req: c.Request) -> bytes:
        assert isinstance(req, c.ListVar)
        ups = req.ups
        body = []
        for var in entry.driver.state.variables():
            value = var.escaped
            if entry.fsd and var.name.lower() == "ups.status":
                value = "FSD " + value
            body.append(f'VAR {ups} {var.name} "{value}"\n')
        return _block(("VAR", ups), body)

    def _list_rw(self, entry: UpsEntry, req: c.Request) -> bytes:
        assert isinstance(req, c.ListRw)
        ups = req.ups
        body = [
            f'RW {ups} {var.name} "{var.escaped}"\n'
            for var in entry.driver.state.variables()
            if var.flags & 1
        ]
        return _block(("RW", ups), body)

    def _list_cmd(self, entry: UpsEntry, req: c.Request) -> bytes:
        assert isinstance(req, c.ListCmd)
        body = [f"CMD {req.ups} {cmd}\n" for cmd in entry.driver.state.commands()]
        return _block(("CMD", req.ups), body)

    def _list_client(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.ListClient)
        entry = self._ups(req.ups)
        body = [
            f"CLIENT {entry.name} {other.address}\n"
            for other in self.registry.sessions()
            if other.login is entry
        ]
        return _block(("CLIENT", req.ups), body), Action.NONE

    def _list_enum(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.ListEnum)
        entry = self._available(req.ups)
        var = entry.driver.state.get(req.var)
        if var is None:
            return NutError.VAR_NOT_SUPPORTED.line, Action.NONE
        body = [f'ENUM {req.ups} {req.var} "{value}"\n' for value in var.enums]
        return _block(("ENUM", req.ups, req.var), body), Action.NONE

    def _list_range(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.ListRange)
        entry = self._available(req.ups)
        var = entry.driver.state.get(req.var)
        if var is None:
            return NutError.VAR_NOT_SUPPORTED.line, Action.NONE
        body = [f'RANGE {req.ups} {req.var} "{low}" "{high}"\n' for low, high in var.ranges]
        return _block(("RANGE", req.ups, req.var), body), Action.NONE

    # SET and INSTCMD.

    def _set_var(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.SetVar)
        entry = self._available(req.ups)
        if not self._allowed(session, req, "SET"):
            return NutError.ACCESS_DENIED.line, Action.NONE
        var = entry.driver.state.get(req.var)
        if var is None:
            return NutError.VAR_NOT_SUPPORTED.line, Action.NONE
        if not var.flags & 1:
            return NutError.READONLY.line, Action.NONE
        value = req.value
        if var.flags & 2:
            if var.aux < 1:
                return NutError.SET_FAILED.line, Action.NONE
            if len(value) > var.aux:
                return NutError.TOO_LONG.line, Action.NONE
        if var.enums and encode(value) not in var.enums:
            return NutError.INVALID_VALUE.line, Action.NONE
        if var.ranges:
            # NUT uses atoi() and so accepts "155abc"; the whole value must
            # be a number here.
            if not _INTEGER.match(value):
                return NutError.INVALID_VALUE.line, Action.NONE
            number = int(value)
            if not any(low <= number <= high for low, high in var.ranges):
                return NutError.INVALID_VALUE.line, Action.NONE
        tid = self.tracking.new() if session.tracking else None
        if not entry.driver.setvar(req.var, value, tid):
            return NutError.SET_FAILED.line, Action.NONE
        return _tracked(tid), Action.NONE

    def _set_tracking(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.SetTracking)
        session.tracking = req.enabled
        return b"OK\n", Action.NONE

    def _instcmd(self, session: Session, req: c.Request) -> Reply:
        assert isinstance(req, c.InstCmd)
        entry = self._available(req.ups)
        if not entry.driver.state.has_command(req.cmd):
            return NutError.CMD_NOT_SUPPORTED.line, Action.NONE
        user = self._certificate_user(session)
        if user is not None:
            permitted = user.may_instcmd(req.cmd)
        else:
            permitted = self.users.check_instcmd(session.username, session.password, req.cmd)
            self._note_cleartext_password(session, req, permitted)
        if not permitted:
            return NutError.ACCESS_DENIED.line, Action.NONE
        tid = self.tracking.new() if session.tracking else None
        if not entry.driver.instcmd(req.cmd, req.param, tid):
            return NutError.INSTCMD_FAILED.line, Action.NONE
        return _tracked(tid), Action.NONE


def _tracked(tid: Optional[str]) -> bytes:
    if tid is None:
        return b"OK\n"
    return b"OK TRACKING " + tid.encode("ascii") + b"\n"


def _block(query: Tuple[str, ...], body: "list[str]") -> bytes:
    return list_block(query, [("".join(body)).encode("ascii", "replace")])
