# -*- test-case-name: nutshim.test.test_upsd_service -*-
"""
C{twistd nut-upsd}: options and service construction.

Everything NUT's upsd refuses stops nut-upsd before it serves, with one
line on standard error (C{nut-upsd: FILE:LINE: message}) and exit status
1 -- no usage text, no traceback: the configuration is read, the
certificate checked and the listeners resolved while the options are
checked, and the listeners are opened in C{makeService}, before twistd
daemonizes or drops privileges.  Misused options (a C{--statepath} that
is not a directory) stay usage errors.

The directory: C{--confdir}, else C{$NUT_CONFPATH}, else C{/etc/nut}.  One
given explicitly must exist; the default may be missing (a fresh machine),
and then, as with a C{ups.conf} without any section, the demo UPS is
served.  C{-c reload}, C{-c stop} (NUT's upsd signal commands, which here
would name a directory) get a message saying how to reach nut-upsd.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Mapping, Optional

from twisted.application.service import IService
from twisted.python import usage

from nutshim.config import ConfigError, load_config
from nutshim.config.paths import DEFAULT_CONFDIR

__all__ = ["Options", "makeService"]

#: NUT upsd's C{-c} commands, and what does the same for nut-upsd.
_NUT_COMMANDS = {
    "reload": "send SIGHUP to reload (systemctl reload nut-upsd, or kill -HUP <pid>)",
    "reload-or-error": "send SIGHUP to reload (systemctl reload nut-upsd, or kill -HUP <pid>)",
    "reload-or-exit": "send SIGHUP to reload (systemctl reload nut-upsd, or kill -HUP <pid>)",
    "stop": "send SIGTERM to stop (systemctl stop nut-upsd, or kill <pid>)",
    "exit": "send SIGTERM to stop (systemctl stop nut-upsd, or kill <pid>)",
}


def _fatal(message: str) -> SystemExit:
    from nutshim.upsd.listeners import StartupError

    return StartupError(message)


def choose_confdir(explicit: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    """
    The configuration directory, checked.

    @raise SystemExit: one line, for an explicit directory (C{--confdir},
        C{$NUT_CONFPATH}) that does not exist, and for C{-c reload}.
    """
    env = os.environ if environ is None else environ
    if explicit:
        if not os.path.isdir(explicit):
            hint = _NUT_COMMANDS.get(explicit.lower())
            if hint is not None and os.sep not in explicit:
                raise _fatal(
                    f"-c {explicit}: -c is --confdir for nut-upsd, not NUT's upsd command;"
                    f" {hint}"
                )
            raise _fatal(f"{explicit}: no such configuration directory (--confdir)")
        return explicit
    from_env = env.get("NUT_CONFPATH")
    if from_env:
        if not os.path.isdir(from_env):
            raise _fatal(f"{from_env}: no such configuration directory (NUT_CONFPATH)")
        return from_env
    return DEFAULT_CONFDIR


class Options(usage.Options):
    """
    nut-upsd reads NUT's own ups.conf, upsd.conf and upsd.users.
    """

    synopsis = "[nut-upsd options]"
    longdesc = (
        "A drop-in replacement for NUT's upsd. Reads ups.conf, upsd.conf and "
        "upsd.users from --confdir (default: $NUT_CONFPATH, else /etc/nut). "
        "With no UPS defined it serves a simulated demo UPS on localhost. "
        "SIGHUP reloads the configuration."
    )
    optParameters = [
        ["confdir", "c", None, "NUT configuration directory (default $NUT_CONFPATH or /etc/nut)."],
        ["statepath", None, None, "Driver socket directory (default $NUT_STATEPATH, STATEPATH, /var/run/nut)."],
        ["cmdvartab", None, None, "cmdvartab file for GET DESC/CMDDESC."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["listen_tls"] = []
        self["http"] = []

    def opt_listen(self, endpoint: str) -> None:
        """
        Listen on this endpoint string (repeatable; with --listen-tls,
        replaces LISTEN and LISTEN_TLS), e.g. tcp:3493:interface=127.0.0.1,
        tcp6:3493:interface=\\:\\:1, systemd:domain=INET6:index=0.
        """
        self["listen"].append(endpoint)

    def opt_listen_tls(self, endpoint: str) -> None:
        """
        A TLS-only listener on this endpoint string (repeatable; every
        client must STARTTLS first; needs CERTFILE), e.g.
        tcp6:401:interface=\\:\\:.
        """
        self["listen_tls"].append(endpoint)

    def opt_http(self, endpoint: str) -> None:
        """
        Serve the read-only HTTP side (Prometheus /metrics, JSON under
        /api/v1, the status page /) on this endpoint (repeatable; replaces
        HTTP_LISTEN): a port (127.0.0.1 only), e.g. 9199, an endpoint
        string, e.g. tcp:9199:interface=0.0.0.0, or tls:<port or endpoint>
        for HTTPS with the daemon's CERTFILE.
        """
        from nutshim.web.service import parse_http_endpoint

        try:
            parse_http_endpoint(endpoint)
        except ValueError as e:
            raise usage.UsageError(f"--http: {e}")
        self["http"].append(endpoint)

    def postOptions(self) -> None:
        if self["statepath"] is not None and not os.path.isdir(self["statepath"]):
            raise usage.UsageError(f"--statepath {self['statepath']}: not a directory")
        path = choose_confdir(self["confdir"])
        self["confdir"] = path
        from nutshim.tls import server_tls_options
        from nutshim.upsd.listeners import plan_listeners
        from nutshim.upsd.service import check_sections

        try:
            config = self["config"] = load_config(path, self["cmdvartab"])
            check_sections(config)
            # The certificate and key are checked here too, so that a
            # missing, mismatched or expired one stops twistd with one line.
            self["tls"] = server_tls_options(config.upsd, path)
            self["plan"] = plan_listeners(
                config.upsd, os.path.join(path, "upsd.conf"), self["listen"], self["listen_tls"]
            )
            from nutshim.web.daemon import check_http

            check_http(config, self["http"], self["tls"])
        except ConfigError as e:
            raise _fatal(str(e)) from None


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the daemon's service tree from checked options, and open its
    listeners.

    @raise SystemExit: one line, when NUT would not start (a listener that
        cannot be opened).
    """
    installs_signals = reactor is None
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from nutshim.upsd.service import LOAD_TLS, UpsdService

    notifier = None
    if installs_signals:
        # The real daemon: tell systemd (NOTIFY_SOCKET) when it serves.
        from nutshim.sdnotify import ServiceNotifier

        notifier = ServiceNotifier.from_environ(reactor, lambda: "")
    service = UpsdService(
        options["config"],
        reactor,
        listen_override=options["listen"],
        listen_tls_override=options["listen_tls"],
        statepath_override=options["statepath"],
        cmdvartab_override=options["cmdvartab"],
        tls_options=options["tls"] if "tls" in options else LOAD_TLS,
        plan=options["plan"] if "plan" in options else None,
        signals=signal if installs_signals else None,
        http_override=options["http"],
        notifier=notifier,
    )
    service.bind()
    return service
