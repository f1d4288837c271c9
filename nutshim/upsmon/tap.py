# -*- test-case-name: nutshim.test.test_upsmonconf -*-
"""
C{twistd nut-upsmon}: options and service construction.

The configuration, and the TLS files it names, are read while the options
are checked, so that a broken file stops twistd before anything starts, as
NUT's upsmon refuses to start: one line on standard error,
C{nut-upsmon: FILE:LINE: message}, and exit status 1 -- no usage text (a
L{usage.UsageError} would print twistd's whole C{--help} first), no
traceback.  twistd lets a L{SystemExit} from C{parseOptions} through.
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

__all__ = ["Options", "makeService", "read_config", "StartupError"]

log = Logger()


def default_config(environ: Optional[dict[str, str]] = None) -> str:
    """C{$NUT_CONFPATH/upsmon.conf}, else C{/etc/nut/upsmon.conf}."""
    return os.path.join(confdir(None, environ), "upsmon.conf")


#: NUT upsmon's C{-c} commands (C{twistd nut-upsmon -c fsd} would read a
#: file named C{fsd}), and what does the same for nut-upsmon.
_NUT_COMMANDS = {
    "fsd": "to force the shutdown send SIGUSR2 (kill -USR2 <pid>), or SIGUSR1 "
           "(NUT's upsmon -c fsd) when there is no --logfile",
    "stop": "to stop send SIGTERM (NUT's upsmon -c stop, or kill <pid>)",
    "reload": "to reload send SIGHUP (NUT's upsmon -c reload, or kill -HUP <pid>)",
}


class StartupError(SystemExit):
    """
    What stops nut-upsmon before it starts: one line, exit status 1.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"nut-upsmon: {message}")


class Options(usage.Options):
    """
    nut-upsmon reads NUT's own upsmon.conf.
    """

    synopsis = "[nut-upsmon options]"
    longdesc = (
        "A drop-in replacement for NUT's upsmon: monitors the UPSes of "
        "upsmon.conf, notifies as upsmon does, and shuts the system down "
        "when too few power supplies are left. SIGHUP reloads upsmon.conf; "
        "SIGUSR1 (upsmon -c fsd) forces the shutdown unless --logfile rotates "
        "on it; SIGUSR2 forces the shutdown."
    )
    optParameters = [
        ["config", "c", None,
         "upsmon.conf to read (default $NUT_CONFPATH/upsmon.conf or /etc/nut/upsmon.conf)."],
    ]

    def postOptions(self) -> None:
        path = self["config"] or default_config()
        self["config"] = path
        hint = _NUT_COMMANDS.get(path)
        if hint is not None and not os.path.exists(path):
            raise StartupError(f"-c {path}: -c is --config for nut-upsmon, not NUT's upsmon "
                               f"command; {hint}")
        try:
            self["conf"] = read_config(path)
        except ConfigError as e:
            raise StartupError(str(e)) from None


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
        log.warn("{problem}", problem=str(warning))
    top = MultiService()
    path = options["config"]
    from nutshim.sdnotify import ServiceNotifier

    notifier = ServiceNotifier.from_environ(reactor, lambda: "")
    UpsmonService.for_reactor(conf, reactor, reader=lambda: read_config(path),
                              notifier=notifier).setServiceParent(top)
    return top
