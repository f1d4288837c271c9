# -*- test-case-name: nutshim.test.test_client -*-
"""
C{nutshim-client upsc|upscmd|upsrw ...}: NUT's three command-line clients,
with the same options and output, plus verified STARTTLS.

The point of reimplementing them is TLS that means something: by default
STARTTLS is tried (as NUT 2.8's upsc does), plaintext is accepted only when
the server says it has no TLS, and when the server does offer TLS its
certificate must be verified against C{--cafile} or C{--pin}; without either
the tool stops with a clear message rather than encrypt blindly
(C{--insecure} asks for exactly that).  C{--tls} makes TLS mandatory and
keeps credentials off plaintext connections; C{--no-tls} never tries.

Options follow NUT's getopt strings (options before arguments); errors
read as NUT's (C{Error: Variable not supported by UPS}).
"""

from __future__ import annotations

import getopt
import getpass
import os
import sys
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import error as netError
from twisted.internet.defer import Deferred

from nutshim import __version__
from nutshim.client import _tools as T
from nutshim.client._usage import TOOLS, usage
from nutshim.client.connect import connect
from nutshim.client.errors import (
    NUTError,
    PinMismatch,
    PlaintextCredentialsRefused,
    ProtocolError,
    RequestTimeout,
    StartTLSUnavailable,
    TLSTrustNotConfigured,
)
from nutshim.client.protocol import NUTClientProtocol
from nutshim.client.tls import TLSConfigError, TLSSettings

__all__ = ["main", "describe"]

_SHORT = {"upsc": "hlLcV", "upscmd": "lhu:p:t:wV", "upsrw": "hls:p:t:u:wV"}
_LONG = ["cafile=", "pin=", "certfile=", "insecure", "tls", "no-tls", "min-tls=",
         "server-name=", "timeout=", "help"]
#: libupsclient's default for -t (DEFAULT_TRACKING_TIMEOUT).
_TRACKING_TIMEOUT = 10


@dataclass
class Options:
    """The parsed command line of one tool."""

    tool: str
    args: List[str] = field(default_factory=list)
    list_mode: bool = False
    verbose: bool = False
    clients: bool = False
    user: Optional[str] = None
    password: Optional[str] = None
    setvar: Optional[str] = None
    tracking: bool = False
    tracking_timeout: int = _TRACKING_TIMEOUT
    timeout: float = 10.0
    tls: Optional[TLSSettings] = TLSSettings()
    require_tls: bool = False


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def describe(e: BaseException) -> str:
    """
    The text NUT's C{upscli_strerror} would give for what went wrong.
    """
    if isinstance(e, StartTLSUnavailable):
        return "SSL is not available"
    if isinstance(e, NUTError):
        return e.message
    if isinstance(e, netError.DNSLookupError):
        return "No such host"
    if isinstance(e, netError.ConnectionRefusedError):
        return "Connection failure: Connection refused"
    if isinstance(e, (netError.TimeoutError, netError.TCPTimedOutError)):
        return "Connection failure: Connection timed out"
    if isinstance(e, netError.ConnectError):
        return "Connection failure: " + (e.osError or str(e)).strip()
    if isinstance(e, netError.ConnectionClosed):
        return "Server disconnected"
    if isinstance(e, RequestTimeout):
        return "Receive failure: Connection timed out"
    if isinstance(e, PinMismatch):
        return f"SSL error: {e}"
    if isinstance(e, SSL.Error):
        reasons = [r[-1] for r in (e.args[0] if e.args else []) if isinstance(r, tuple)]
        return "SSL error: " + (", ".join(reasons) or "handshake failed")
    if isinstance(e, VerificationError):
        return "SSL error: the server certificate does not name this server"
    if isinstance(e, TLSTrustNotConfigured):
        return (f"{e}: give --cafile or --pin to verify it, or --insecure "
                "to encrypt without verifying")
    if isinstance(e, PlaintextCredentialsRefused):
        return "refusing to send credentials without TLS"
    if isinstance(e, ProtocolError):
        return f"Protocol error: {e}"
    if isinstance(e, TLSConfigError):
        return str(e)
    return str(e) or e.__class__.__name__


def _uint(text: str) -> int:
    if not text.isdigit():
        raise T.Fatal("Could not convert the provided value for timeout ('-t' option) "
                      "to unsigned int: Invalid argument")
    return int(text)


def parse(tool: str, argv: Sequence[str], out: Any, err: Any) -> Options:
    """
    Parse one tool's arguments as NUT's getopt does (C{+} mode).

    @raise _Exit: after printing usage (C{-h}, bad options: NUT exits 0).
    @raise T.Fatal: for an unusable C{-t}.
    """
    opts = Options(tool)
    try:
        pairs, args = getopt.getopt(list(argv), _SHORT[tool], _LONG)
    except getopt.GetoptError as e:
        err.write(f"{tool}: {e.msg}\n")
        raise _Exit(usage(tool, out, 0))
    tls: dict[str, Any] = {}
    no_tls = False
    for flag, value in pairs:
        if flag in ("-h", "--help"):
            raise _Exit(usage(tool, out, 0))
        if flag == "-V":
            out.write(f"Network UPS Tools {tool} (nutshim-client {__version__})\n")
            raise _Exit(0)
        if flag == "-l":
            if opts.setvar is not None:
                err.write("Listing mode requested, overriding setvar specified earlier!\n")
                opts.setvar = None
            opts.list_mode = True
        elif flag == "-L":
            opts.list_mode = opts.verbose = True
        elif flag == "-c":
            opts.clients = True
        elif flag == "-u":
            opts.user = value
        elif flag == "-p":
            opts.password = value
        elif flag == "-s":
            opts.setvar = value
        elif flag == "-w":
            opts.tracking = True
        elif flag == "-t":
            opts.tracking_timeout = _uint(value)
        elif flag == "--timeout":
            try:
                opts.timeout = float(value)
            except ValueError:
                opts.timeout = 0
            if not opts.timeout > 0:
                raise T.Fatal(f"Error: --timeout needs a positive number of seconds, "
                              f"not {value!r}")
        elif flag == "--no-tls":
            no_tls = True
        elif flag == "--tls":
            tls["required"] = opts.require_tls = True
        elif flag == "--insecure":
            tls["insecure"] = True
        else:
            tls[flag[2:].replace("-", "_")] = value
    if no_tls and (opts.require_tls or set(tls) - {"required"}):
        raise T.Fatal("Error: --no-tls cannot be combined with TLS options")
    opts.tls = None if no_tls else TLSSettings(**tls)
    opts.args = args
    return opts


async def run(env: T.Env, opts: Options) -> int:
    """
    Run one parsed tool; returns the exit status.
    """
    try:
        await _dispatch(env, opts)
        return 0
    except _Exit as e:
        return e.status
    except T.Fatal as e:
        env.warn(e.message)
        return e.status
    finally:
        env.out.flush()
        for proto in env.opened:
            await proto.close()


async def _dispatch(env: T.Env, opts: Options) -> None:
    tool, args = opts.tool, opts.args
    if tool == "upsc":
        return await T.upsc(env, opts.list_mode, opts.verbose, opts.clients, args)
    if not args:
        raise _Exit(usage(tool, env.out, 0))
    target = T.split_name(args[0], env)
    if target is None:
        raise T.Fatal("Error: invalid UPS definition.  Required format: "
                      "upsname[@hostname[:port]]")
    ups, host, port = target
    proto = await T.connect(env, host, port)
    if tool == "upscmd":
        if opts.list_mode:
            return await T.upscmd_list(env, proto, ups)
        if len(args) < 2:
            raise _Exit(usage(tool, env.out, 0))
        return await T.upscmd(env, proto, ups, args[1:], opts.user, opts.password,
                              opts.tracking, opts.tracking_timeout)
    if opts.setvar is not None:
        return await T.upsrw_set(env, proto, ups, opts.setvar, opts.user, opts.password,
                                 opts.tracking, opts.tracking_timeout)
    return await T.upsrw_list(env, proto, ups)


def _login_name() -> Optional[str]:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return None


def make_env(reactor: Any, opts: Options) -> T.Env:
    """
    The real world: the reactor, the standard streams, the terminal.
    """

    async def open_connection(host: str, port: int) -> NUTClientProtocol:
        proto = await connect(reactor, host, port, tls=opts.tls,
                              require_tls=opts.require_tls, timeout=opts.timeout)
        tls = opts.tls
        if tls is not None and (tls.cafile or tls.pin) and not proto.tls_active:
            env.warn(f"Warning: {host} has no TLS; continuing in plaintext "
                     "(--tls refuses that)")
        return proto

    env = T.Env(out=sys.stdout, err=sys.stderr, stdin=sys.stdin, getpass=getpass.getpass,
                clock=reactor, connect=open_connection, describe=describe,
                login_name=_login_name())
    return env


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    The C{nutshim-client} console script.

    @param argv: the arguments after the program name; by default
        C{sys.argv[1:]}.  Invoked under the name of a tool (C{upsc}...),
        the tool need not be named again.
    @return: the exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    called = os.path.basename(sys.argv[0]) if sys.argv else ""
    if called in TOOLS:
        argv.insert(0, called)
    if not argv or argv[0] not in TOOLS:
        out = sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr
        out.write("usage: nutshim-client {upsc|upscmd|upsrw} [options] ...\n"
                  "Run 'nutshim-client <tool> -h' for a tool's options.\n")
        return 0 if out is sys.stdout else 2
    try:
        opts = parse(argv[0], argv[1:], sys.stdout, sys.stderr)
    except _Exit as e:
        return e.status
    except T.Fatal as e:
        sys.stderr.write(e.message + "\n")
        return e.status
    return _react(opts)


def _react(opts: Options) -> int:
    from twisted.internet import task

    status = [1]

    async def go(reactor: Any) -> None:
        status[0] = await run(make_env(reactor, opts), opts)

    try:
        task.react(lambda reactor: Deferred.fromCoroutine(go(reactor)))
    except SystemExit:
        pass
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
