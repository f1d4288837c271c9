# -*- test-case-name: nutshim.test.test_client -*-
"""
upsc, upscmd and upsrw, on L{NUTClientProtocol}, printing what NUT 2.8.0's
tools print.

Scripts parse these tools' output (C{upsc ups ups.status}, C{upsrw}
blocks), so the formats, the messages and which stream they go to follow
NUT's C{clients/upsc.c}, C{upscmd.c}, C{upsrw.c} and C{libupsclient}, quirks
included: upscmd and upsrw print the server's C{OK} on stderr, a C{-w}
tracking result too, and exit 0 even when that result is C{ERR FAILED}.
Each tool is an C{async} function of an L{Env}, so tests run them against an
in-memory server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, List, Optional, TextIO, Tuple

from twisted.internet.task import deferLater

from nutshim.client.errors import NUTError
from nutshim.client.protocol import NUTClientProtocol
from nutshim.protocol import NutError
from nutshim.protocol.upsname import UPSNameError, split_group

__all__ = ["Env", "Fatal", "connect", "split_name", "split_addr", "upsc", "upscmd",
           "upscmd_list", "upsrw_set", "upsrw_list", "UUID_LENGTH"]

#: NUT's default port.
PORT = 3493
#: Tracking ids are UUIDs: 36 characters.
UUID_LENGTH = 36


class Fatal(Exception):
    """
    Print C{message} on stderr and exit with C{status} (NUT's C{fatalx}).
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Env:
    """
    What a tool needs from the outside world.

    @ivar connect: opens a ready connection to C{(host, port)}.
    @ivar describe: libupsclient's text for an exception (C{upscli_strerror}).
    @ivar login_name: the local user name, for the username prompt.
    @ivar opened: the connections opened, for the caller to close.
    """

    out: TextIO
    err: TextIO
    stdin: TextIO
    getpass: Callable[[str], str]
    clock: Any
    connect: Callable[[str, int], Awaitable[NUTClientProtocol]]
    describe: Callable[[BaseException], str]
    login_name: Optional[str] = None
    opened: List[NUTClientProtocol] = field(default_factory=list)

    def print(self, text: str) -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


def _strtol(text: str) -> int:
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def split_addr(text: str, env: Env) -> Optional[Tuple[str, int]]:
    """
    C{upscli_splitaddr}: C{host[:port]} or C{[v6 literal][:port]}.
    """
    if not text:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            env.warn("upscli_splitaddr: missing closing bracket in [domain literal]")
            return None
        host, rest = text[1:end], text[end + 1:]
        if not rest.startswith(":"):
            return host, PORT
        port_text = rest[1:]
    else:
        host, colon, port_text = text.partition(":")
        if not colon:
            return host, PORT
    port = _strtol(port_text)
    if not port_text or not 1 <= port <= 65535:
        env.warn("upscli_splitaddr: no port specified after ':' separator")
        return None
    return host, port


def split_name(text: Optional[str], env: Env) -> Optional[Tuple[str, str, int]]:
    """
    C{upscli_splitname}: C{ups[@host[:port]]}, host defaulting to localhost,
    after an RFC 9271 group (C{HB:ups@host}), which is dropped: it only
    labels the UPS, and the server knows the UPS as C{ups}.

    @raise Fatal: for a malformed group, saying what is wrong.
    """
    if not text:
        return None
    try:
        _, bare = split_group(text)
    except UPSNameError as e:
        raise Fatal(f"Error: invalid UPS definition {text!r}: {e}.\n"
                    "Required format: [group:]upsname[@hostname[:port]]") from None
    ups, at, rest = bare.partition("@")
    if not ups:
        return None
    if not at:
        return ups, "localhost", PORT
    addr = split_addr(rest, env)
    return None if addr is None else (ups, addr[0], addr[1])


async def connect(env: Env, host: str, port: int) -> NUTClientProtocol:
    """
    Open a connection (recorded in C{env.opened}); failures are fatal.
    """
    try:
        proto = await env.connect(host, port)
    except Exception as e:
        raise Fatal("Error: " + env.describe(e)) from None
    env.opened.append(proto)
    return proto


def _too_old(e: Exception, env: Env) -> Fatal:
    if isinstance(e, NUTError) and e.error is NutError.UNKNOWN_COMMAND:
        return Fatal("Error: upsd is too old to support this query")
    return Fatal("Error: " + env.describe(e))


# -- upsc ---------------------------------------------------------------------


async def upsc(env: Env, varlist: bool, verbose: bool, clientlist: bool,
               args: List[str]) -> None:
    """
    C{upsc -l|-L [host[:port]]}, C{upsc -c ups}, C{upsc ups [var]}.
    """
    if varlist:
        addr = split_addr(args[0] if args else "localhost", env)
        if addr is None:
            raise Fatal("Error: invalid hostname.\nRequired format: [hostname[:port]]")
        proto = await connect(env, *addr)
        try:
            upses = await proto.list_ups()
        except Exception as e:
            raise _too_old(e, env)
        for name, desc in upses.items():
            env.print(f"{name}: {desc}" if verbose else name)
        return
    target = split_name(args[0] if args else None, env)
    if target is None:
        raise Fatal("Error: invalid UPS definition.\nRequired format: upsname[@hostname[:port]]")
    ups, host, port = target
    proto = await connect(env, host, port)
    if clientlist:
        try:
            clients = await proto.list_client(ups)
        except Exception as e:
            raise _too_old(e, env)
        for address in clients:
            env.print(address)
    elif len(args) > 1:
        var = args[1]
        if "." not in var:
            raise Fatal("Error: old-style variable names are not supported")
        try:
            env.print(await proto.get_var(ups, var))
        except Exception as e:
            if isinstance(e, NUTError) and e.error is NutError.UNKNOWN_COMMAND:
                raise Fatal("Error: variable unknown (old upsd detected)")
            raise Fatal("Error: " + env.describe(e))
    else:
        try:
            variables = await proto.list_var(ups)
        except Exception as e:
            raise _too_old(e, env)
        for name, value in variables.items():
            env.print(f"{name}: {value}")


# -- credentials and tracking (upscmd, upsrw) ---------------------------------


def _ask_username(env: Env, fatal_on_eof: bool) -> str:
    name = env.login_name
    env.out.write(f"Username ({name}): " if name else "Username: ")
    env.out.flush()
    line = env.stdin.readline()
    if not line and fatal_on_eof:
        raise Fatal("Error reading from stdin!")
    if len(line) > 1:
        return line[:-1] if line.endswith("\n") else line
    if not name:
        raise Fatal("No username available - even tried getpwuid")
    return name


async def _credentials(proto: NUTClientProtocol, env: Env, user: str, password: str,
                       one_line: bool) -> None:
    try:
        await proto.username(user)
    except Exception as e:
        if isinstance(e, NUTError) and e.error is NutError.UNKNOWN_COMMAND:
            sep = " " if one_line else "\n"
            raise Fatal("Set username failed due to an unknown command." + sep
                        + "You probably need to upgrade upsd.")
        raise Fatal("Set username failed: " + env.describe(e))
    try:
        await proto.password(password)
    except Exception as e:
        raise Fatal("Set password failed: " + env.describe(e))


async def _enable_tracking(proto: NUTClientProtocol, env: Env, what: str) -> None:
    try:
        await proto.set_tracking(True)
    except NUTError as e:
        raise Fatal(f"Enabling {what} status tracking failed. upsd answered: {e.line}")
    except Exception as e:
        raise Fatal(f"Enabling {what} status tracking failed: " + env.describe(e))


async def _report(proto: NUTClientProtocol, env: Env, tracking: bool,
                  tracking_id: Optional[str], timeout: int) -> None:
    """
    Print the reply on stderr; with C{-w}, poll C{GET TRACKING} once a
    second until the result is known or C{timeout} seconds passed.
    """
    if not tracking or tracking_id is None or len(tracking_id) != UUID_LENGTH:
        env.warn("OK" if tracking_id is None else f"OK TRACKING {tracking_id}")
        return
    start = env.clock.seconds()
    while True:
        if env.clock.seconds() - start >= timeout:
            raise Fatal("Can't receive status tracking information: timeout")
        try:
            status: str = await proto.get_tracking(tracking_id)
        except NUTError as e:
            status = e.line
        except Exception as e:
            raise Fatal("Can't receive status tracking information: " + env.describe(e))
        if not status.startswith("PENDING"):
            env.warn(status)
            return
        await deferLater(env.clock, 1.0)


# -- upscmd -------------------------------------------------------------------


async def upscmd_list(env: Env, proto: NUTClientProtocol, ups: str) -> None:
    """C{upscmd -l}: the commands and their descriptions."""
    try:
        commands = await proto.list_cmd(ups)
    except Exception as e:
        raise _too_old(e, env)
    env.print(f"Instant commands supported on UPS [{ups}]:\n")
    # Pipelined: one round trip for all the descriptions.
    descs = [proto.get_cmddesc(ups, cmd) for cmd in commands]
    for cmd, pending in zip(commands, descs):
        try:
            env.print(f"{cmd} - {await pending}")
        except Exception:
            env.print(cmd)


async def upscmd(env: Env, proto: NUTClientProtocol, ups: str, args: List[str],
                 user: Optional[str], password: Optional[str], tracking: bool,
                 timeout: int) -> None:
    """C{upscmd [-u user] [-p pass] [-w] [-t s] ups cmd [value]}."""
    cmd = args[0]
    if "." not in cmd:
        raise Fatal("Error: old command names are not supported")
    if user is None:
        user = _ask_username(env, fatal_on_eof=True)
    if password is None:
        password = env.getpass("Password: ")
    await _credentials(proto, env, user, password, one_line=False)
    if tracking:
        await _enable_tracking(proto, env, "command")
    try:
        tracking_id = await proto.instcmd(ups, cmd, args[1] if len(args) > 1 else None)
    except NUTError as e:
        raise Fatal("Unexpected response from upsd: " + e.line)
    except Exception as e:
        raise Fatal("Instant command failed: " + env.describe(e))
    await _report(proto, env, tracking, tracking_id, timeout)


# -- upsrw --------------------------------------------------------------------


async def upsrw_set(env: Env, proto: NUTClientProtocol, ups: str, setvar: str,
                    user: Optional[str], password: Optional[str], tracking: bool,
                    timeout: int) -> None:
    """C{upsrw -s var[=value] [-u user] [-p pass] [-w] [-t s] ups}."""
    if user is None:
        user = _ask_username(env, fatal_on_eof=False)
    if password is None:
        password = env.getpass("Password: ")
    var, eq, value = setvar.partition("=")
    if not eq:
        env.out.write(f"Enter new value for {var}: ")
        env.out.flush()
        value = env.stdin.readline()
        value = value[:-1] if value.endswith("\n") else value
    await _credentials(proto, env, user, password, one_line=True)
    if "." not in var:
        raise Fatal("Error: old variable names are not supported")
    if tracking:
        await _enable_tracking(proto, env, "set variable")
    try:
        tracking_id = await proto.set_var(ups, var, value)
    except NUTError as e:
        raise Fatal("Unexpected response from upsd: " + e.line)
    except Exception as e:
        raise Fatal("Set variable failed: " + env.describe(e))
    await _report(proto, env, tracking, tracking_id, timeout)


async def _current(proto: NUTClientProtocol, ups: str, var: str, who: str) -> str:
    try:
        return await proto.get_var(ups, var)
    except Exception:
        raise Fatal(f"{who}: can't get current value of {var}")


async def _enum(env: Env, proto: NUTClientProtocol, ups: str, var: str,
                kind: Optional[str], length: int) -> None:
    value = await _current(proto, ups, var, "do_enum")
    try:
        options = await proto.list_enum(ups, var)
    except Exception as e:
        raise Fatal("Error: " + env.describe(e))
    env.print(f"Type: ENUM {kind}" if kind else "Type: ENUM")
    if kind == "STRING":
        env.print(f"Maximum length: {length}")
    for option in options:
        env.print(f'Option: "{option}"' + (" SELECTED" if option == value else ""))


async def _range(env: Env, proto: NUTClientProtocol, ups: str, var: str) -> None:
    current = _strtol(await _current(proto, ups, var, "do_range"))
    try:
        ranges = await proto.list_range(ups, var)
    except Exception as e:
        raise Fatal("Error: " + env.describe(e))
    env.print("Type: RANGE NUMBER")
    for low_text, high_text in ranges:
        low, high = _strtol(low_text), _strtol(high_text)
        env.print(f'Option: "{low}-{high}"' + (" SELECTED" if low <= current <= high else ""))


async def _type(env: Env, proto: NUTClientProtocol, ups: str, var: str) -> None:
    try:
        flags = (await proto.get_type(ups, var)).flags
    except Exception:
        env.print("Unknown type")
        return
    is_enum = False
    for flag in flags:
        upper = flag.upper()
        if upper == "ENUM":
            is_enum = True
        elif upper == "RANGE":
            return await _range(env, proto, ups, var)
        elif upper.startswith("STRING:"):
            length = _strtol(flag[7:])
            if is_enum:
                return await _enum(env, proto, ups, var, "STRING", length)
            value = await _current(proto, ups, var, "do_string")
            env.print(f"Type: STRING\nMaximum length: {length}\nValue: {value}")
            return
        elif upper == "NUMBER":
            if is_enum:
                return await _enum(env, proto, ups, var, "NUMBER", 0)
            value = await _current(proto, ups, var, "do_number")
            env.print(f"Type: NUMBER\nValue: {value}")
            return
        elif upper != "RW":
            env.print(f"Type: {flag} (unrecognized)")
    if is_enum:
        await _enum(env, proto, ups, var, None, 0)


async def upsrw_list(env: Env, proto: NUTClientProtocol, ups: str) -> None:
    """C{upsrw ups}: every writable variable, its description, type, value."""
    try:
        names = list(await proto.list_rw(ups))
    except Exception as e:
        raise _too_old(e, env)
    for var in names:
        env.print(f"[{var}]")
        try:
            env.print(await proto.get_desc(ups, var))
        except Exception:
            env.print("Description unavailable")
        await _type(env, proto, ups, var)
        env.print("")
