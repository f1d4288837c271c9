# -*- test-case-name: nutshim.test.test_upsd_service -*-
"""
C{twistd nut-upsd}: options and service construction.

The configuration is read while the options are checked, so that a broken
file stops the daemon before it starts, with the file and line in a
one-line message instead of a traceback.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from nutshim.config import ConfigError, load_config
from nutshim.config.paths import confdir as default_confdir

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    """
    nut-upsd reads NUT's own ups.conf, upsd.conf and upsd.users.
    """

    synopsis = "[nut-upsd options]"
    longdesc = (
        "A drop-in replacement for NUT's upsd. Reads ups.conf, upsd.conf and "
        "upsd.users from --confdir (default: $NUT_CONFPATH, else /etc/nut). "
        "With no UPS configured it serves a simulated demo UPS on localhost."
    )
    optParameters = [
        ["confdir", "c", None, "NUT configuration directory (default $NUT_CONFPATH or /etc/nut)."],
        ["statepath", None, None, "Driver socket directory (default $NUT_STATEPATH, STATEPATH, /var/run/nut)."],
        ["cmdvartab", None, None, "cmdvartab file for GET DESC/CMDDESC."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """
        Listen on this endpoint string (repeatable; overrides LISTEN),
        e.g. tcp:3493:interface=127.0.0.1, tcp6:3493:interface=\\:\\:1,
        systemd:domain=INET6:name=nut-upsd.socket.
        """
        self["listen"].append(endpoint)

    def postOptions(self) -> None:
        path = default_confdir(self["confdir"])
        self["confdir"] = path
        try:
            self["config"] = load_config(path, self["cmdvartab"])
            from nutshim.upsd.service import check_sections

            check_sections(self["config"])
            # The certificate and key are checked here too, so that a
            # missing, mismatched or expired one stops twistd with one line.
            from nutshim.tls import server_tls_options

            self["tls"] = server_tls_options(self["config"].upsd, path)
        except ConfigError as e:
            raise usage.UsageError(str(e))
        if self["statepath"] is not None and not os.path.isdir(self["statepath"]):
            raise usage.UsageError(f"--statepath {self['statepath']}: not a directory")


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the daemon's service tree from checked options.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from nutshim.upsd.service import LOAD_TLS, UpsdService

    return UpsdService(
        options["config"],
        reactor,
        listen_override=options["listen"],
        statepath_override=options["statepath"],
        cmdvartab_override=options["cmdvartab"],
        tls_options=options["tls"] if "tls" in options else LOAD_TLS,
    )
