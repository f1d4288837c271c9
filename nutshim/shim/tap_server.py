# -*- test-case-name: nutshim.test.test_shim -*-
"""
C{twistd nut-server-shim}: TLS on port 401 in front of a legacy upsd.

The options are checked (and the certificate and key read) while they are
parsed, so a bad file stops twistd before it binds anything.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

from nutshim.config import ConfigError, UpsdConf
from nutshim.shim.options import (
    ShimOptions,
    format_hostport,
    parse_hostport,
    shim_parameters,
    upstream_endpoint,
)
from nutshim.shim.server import ServerShimFactory
from nutshim.shim.service import ListenerService
from nutshim.tls import server_tls_options

__all__ = ["Options", "makeService"]

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

    synopsis = "--certfile PEM [nut-server-shim options]"
    longdesc = (
        "The Attachment Daemon shim of RFC 9271 Appendix D: listens on port 401 "
        "(all addresses), answers STARTTLS with OK STARTTLS and TLS 1.3, refuses "
        "everything else before TLS (ERR TLS-NOT-ENABLED), then relays each client "
        "over its own connection to a legacy upsd (default 127.0.0.1:3493). Use "
        "twistd's --uid/--gid to serve as an unprivileged user after binding 401."
    )
    default_listen = (f"tcp6:{TLS_PORT}:interface=\\:\\:", f"tcp:{TLS_PORT}")
    optParameters = shim_parameters(
        upstream="The legacy upsd, HOST[:PORT] (default 127.0.0.1:3493).",
        certfile="PEM with the server certificate, its chain and the key (nutshim-pki server NAME).",
        cafile="PEM with the CA(s) client certificates must chain to (a certificate sent is then verified).",
    )

    optFlags = [
        ["require-client-cert", None, "Refuse clients without a certificate issued by --cafile's CA."],
    ]

    def postOptions(self) -> None:
        self.check_common()
        host, port = parse_hostport(self["upstream"] or self.default_upstream, 3493)
        self["upstream_host"], self["upstream_port"] = host, port
        if not self["certfile"]:
            raise usage.UsageError("--certfile is required (make one with: nutshim-pki server NAME)")
        if self["require-client-cert"] and not self["cafile"]:
            raise usage.UsageError("--require-client-cert needs --cafile (the CA of the client certificates)")
        conf = replace(
            UpsdConf(),
            certfile=os.path.abspath(self["certfile"]),
            certpath=os.path.abspath(self["cafile"]) if self["cafile"] else None,
            certrequest=2 if self["require-client-cert"] else (1 if self["cafile"] else 0),
            tls_min_version=self["min-tls"],
        )
        try:
            self["tls"] = server_tls_options(conf, os.getcwd())
        except ConfigError as e:
            raise usage.UsageError(_option_names(str(e)))


def makeService(options: Options, reactor: Any = None) -> IService:
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
        allow=options["allow"],
        idle_timeout=options["idle-timeout"],
        handshake_timeout=options["handshake-timeout"],
        tls_options=options["tls"],
    )
    top = MultiService()
    banner = [
        f"nut-server-shim: {options['tls'].describe()}",
        f"nut-server-shim: relaying to upsd {factory.upstream_name}",
    ]
    listeners = ListenerService(
        reactor, [(factory, options["listen"], options["explicit_listen"])], banner
    )
    listeners.setServiceParent(top)
    top.factory = factory  # type: ignore[attr-defined]
    top.listeners = listeners  # type: ignore[attr-defined]
    return top
