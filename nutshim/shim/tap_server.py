# -*- test-case-name: nutshim.test.test_shim -*-
"""
C{twistd nut-server-shim}: TLS on port 401 in front of a legacy upsd.

The options are checked (and the certificate and key read) while they are
parsed, so a bad file stops twistd before it binds anything, with one line;
SIGHUP reads them again (L{reload}).
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from types import ModuleType
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from nutshim.config import ConfigError, UpsdConf
from nutshim.shim.options import (
    ShimOptions,
    allow_list,
    default_max_pending_tls,
    format_hostport,
    parse_hostport,
    shim_parameters,
    upstream_endpoint,
)
from nutshim.shim.server import ServerShimFactory
from nutshim.shim.service import ListenerService, ShimService, systemd_notifier
from nutshim.tls import ServerTLSOptions, server_tls_options

__all__ = ["Options", "makeService", "reload", "server_tls"]

#: The port NUT asked IANA to give TLS traffic (RFC 9271 Appendix D).
TLS_PORT = 401


def _option_names(message: str) -> str:
    # nutshim.tls speaks upsd.conf; here the same settings are options.
    for key, option in (
        ("CERTREQUEST 2", "--require-client-cert"),
        ("CERTREQUEST", "--cafile"),
        ("CERTFILE", "--certfile"),
        ("CERTPATH", "--cafile"),
        ("CERTIDENT", "a password"),
        ("TLS_MIN_VERSION", "--min-tls"),
        ("upsd.conf: ", ""),
    ):
        message = message.replace(key, option)
    return message


class Options(ShimOptions):
    """
    nut-server-shim: clients must STARTTLS, then talk to the legacy upsd.
    """

    daemon = "nut-server-shim"
    synopsis = "--certfile PEM [nut-server-shim options]"
    longdesc = (
        "The Attachment Daemon shim of RFC 9271 Appendix D: listens on port 401 "
        "(all addresses), answers STARTTLS with OK STARTTLS and TLS 1.3, refuses "
        "everything else before TLS (ERR TLS-NOT-ENABLED), then relays each client "
        "over its own connection to a legacy upsd (default 127.0.0.1:3493). Use "
        "twistd's --uid/--gid to serve as an unprivileged user after binding 401. "
        "SIGHUP re-reads the certificate, key, CA and --allow-file for new sessions."
    )
    default_listen = (f"tcp6:{TLS_PORT}:interface=\\:\\:", f"tcp:{TLS_PORT}")
    optParameters = shim_parameters(
        upstream="The legacy upsd, HOST[:PORT] (default 127.0.0.1:3493).",
        certfile="PEM with the server certificate, its chain and the key (nutshim-pki server NAME).",
        cafile="PEM with the CA(s) client certificates must chain to (a certificate sent is then verified).",
    ) + [
        ["max-pending-tls", None, None,
         "Connections without TLS yet kept at most; beyond, the oldest is dropped"
         " (default 1024, or half the open-file limit if lower).", int],
    ]

    optFlags = [
        ["require-client-cert", None, "Refuse clients without a certificate issued by --cafile's CA."],
    ]

    def check(self) -> None:
        self.check_common()
        host, port = parse_hostport(self["upstream"] or self.default_upstream, 3493)
        self["upstream_host"], self["upstream_port"] = host, port
        if not self["certfile"]:
            raise usage.UsageError("--certfile is required (make one with: nutshim-pki server NAME)")
        if self["require-client-cert"] and not self["cafile"]:
            raise usage.UsageError("--require-client-cert needs --cafile (the CA of the client certificates)")
        if self["max-pending-tls"] is None:
            self["max-pending-tls"] = default_max_pending_tls()
        elif self["max-pending-tls"] < 1:
            raise usage.UsageError("--max-pending-tls must be at least 1")
        self["tls"] = server_tls(self)


def server_tls(options: Options) -> ServerTLSOptions:
    """
    Read the certificate, key and CA files the options name, and check them.

    @raise usage.UsageError: C{FILE: --option: what is wrong}.
    """
    conf = replace(
        UpsdConf(),
        certfile=os.path.abspath(options["certfile"]),
        certpath=os.path.abspath(options["cafile"]) if options["cafile"] else None,
        certrequest=2 if options["require-client-cert"] else (1 if options["cafile"] else 0),
        tls_min_version=options["min-tls"],
    )
    try:
        tls = server_tls_options(conf, os.getcwd())
    except ConfigError as e:
        raise usage.UsageError(_option_names(str(e))) from None
    assert tls is not None
    return tls


def reload(options: Options, factory: ServerShimFactory) -> str:
    """
    SIGHUP: the certificate, key and CA files, and the allow list, read
    again; used by every STARTTLS from now on.

    @raise usage.UsageError: when any of them is unusable (nothing changes).
    """
    tls = server_tls(options)
    allow = allow_list(options)
    factory.tls_options = tls
    factory.allow = allow
    return f"{tls.describe()}; {len(allow) or 'any'} allowed network(s)"


def makeService(options: Options, reactor: Any = None, signal_module: ModuleType = signal) -> IService:
    """
    The listeners and their factory, from checked options.  No I/O here:
    the ports are bound when the service starts.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    host, port = options["upstream_host"], options["upstream_port"]
    factory = ServerShimFactory(
        reactor,
        upstream_endpoint(reactor, host, port, options["handshake-timeout"]),
        format_hostport(host, port),
        allow=options["allowed"],
        idle_timeout=options["idle-timeout"],
        handshake_timeout=options["handshake-timeout"],
        tls_options=options["tls"],
        max_pending_tls=options["max-pending-tls"],
    )
    top = ShimService(reactor, Options.daemon, lambda: reload(options, factory), signal_module,
                      notifier=systemd_notifier(reactor, signal_module),
                      sessions=lambda: len(factory.connections))
    banner = [
        f"nut-server-shim: {options['tls'].describe()}",
        f"nut-server-shim: relaying to upsd {factory.upstream_name};"
        f" at most {factory.max_pending_tls} connections without TLS",
    ]
    listeners = ListenerService(
        reactor, [(factory, options["listen"], options["explicit_listen"])], banner, Options.daemon
    )
    listeners.setServiceParent(top)
    top.factory = factory  # type: ignore[attr-defined]
    top.listeners = listeners  # type: ignore[attr-defined]
    return top
