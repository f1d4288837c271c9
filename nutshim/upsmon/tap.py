# -*- test-case-name: nutshim.test.test_upsmonconf -*-
"""
C{twistd nut-upsmon}: options and service construction.

The configuration, and the TLS files it names, are read while the options
are checked, so that a broken file stops twistd with a one-line message
(file and line) before anything starts, as NUT's upsmon refuses to start.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.application.service import IService, MultiService
from twisted.logger import Logger
from twisted.python import usage

from nutshim.config import ConfigError, load_upsmon_conf
from nutshim.config.upsmonconf import UpsmonConf
from nutshim.config.paths import confdir

__all__ = ["Options", "makeService", "read_config"]

log = Logger()


def default_config(environ: Optional[dict[str, str]] = None) -> str:
    """C{$NUT_CONFPATH/upsmon.conf}, else C{/etc/nut/upsmon.conf}."""
    return os.path.join(confdir(None, environ), "upsmon.conf")


class Options(usage.Options):
    """
    nut-upsmon reads NUT's own upsmon.conf.
    """

    synopsis = "[nut-upsmon options]"
    longdesc = (
        "A drop-in replacement for NUT's upsmon: monitors the UPSes of "
        "upsmon.conf, notifies as upsmon does, and shuts the system down "
        "when too few power supplies are left."
    )
    optParameters = [
        ["config", "c", None,
         "upsmon.conf to read (default $NUT_CONFPATH/upsmon.conf or /etc/nut/upsmon.conf)."],
    ]

    def postOptions(self) -> None:
        path = self["config"] or default_config()
        self["config"] = path
        try:
            self["conf"] = read_config(path)
        except ConfigError as e:
            raise usage.UsageError(str(e))


def read_config(path: str) -> UpsmonConf:
    """
    Read and check C{upsmon.conf} and the TLS files it names, at start-up
    and for each reload.

    @raise ConfigError: naming the file and line, or the C{MONITOR} whose
        TLS settings cannot be used.
    """
    conf = load_upsmon_conf(path)
    conf.check(path)
    from nutshim.client.tls import TLSConfigError
    from nutshim.upsmon.tls import tls_settings

    for monitor in conf.monitors:
        try:
            tls_settings(conf, monitor.host).options(monitor.host)
        except TLSConfigError as e:
            raise ConfigError(path, None, f"MONITOR {monitor.system}: {e}")
    return conf


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the daemon's service tree from checked options.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from nutshim.upsmon.service import UpsmonService

    conf = options["conf"]
    for warning in conf.warnings:
        log.warn("{warning}", warning=str(warning))
    top = MultiService()
    path = options["config"]
    UpsmonService.for_reactor(conf, reactor, reader=lambda: read_config(path)).setServiceParent(top)
    return top
