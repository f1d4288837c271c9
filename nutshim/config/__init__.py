# -*- test-case-name: nutshim.test.test_config -*-
"""
NUT's configuration files, read exactly as NUT 2.8.0 reads them.

nutshim is meant to replace upsd on a machine that already has NUT's
configuration, so it reads the same C{ups.conf}, C{upsd.conf},
C{upsd.users} and C{cmdvartab}, with NUT's tokenizer and NUT's quirks.  The
parsers are pure (bytes in, frozen dataclasses out); only the C{load_*}
functions touch the file system, and problems NUT merely logs come back as
L{ConfigWarning}s for the daemon to log.  See each module for its file's
rules and for nutshim's few extension keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

from . import paths
from ._errors import ConfigError, ConfigWarning
from .cmdvartab import CmdVarTab, load_cmdvartab, parse_cmdvartab
from .upsconf import UpsConf, UpsSection, load_ups_conf, parse_ups_conf
from .upsdconf import (
    DEFAULT_LISTEN,
    DEFAULT_PORT,
    Listen,
    UpsdConf,
    load_upsd_conf,
    parse_upsd_conf,
)
from .upsmonconf import CertHost, Monitor, UpsmonConf, load_upsmon_conf, parse_upsmon_conf
from .users import User, Users, load_users, normalize_fingerprint, parse_users

__all__ = [
    "CertHost",
    "CmdVarTab",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "DEFAULT_LISTEN",
    "DEFAULT_PORT",
    "Listen",
    "Monitor",
    "UpsConf",
    "UpsSection",
    "UpsdConf",
    "UpsmonConf",
    "User",
    "Users",
    "load_cmdvartab",
    "load_config",
    "load_ups_conf",
    "load_upsd_conf",
    "load_upsmon_conf",
    "load_users",
    "normalize_fingerprint",
    "parse_cmdvartab",
    "parse_ups_conf",
    "parse_upsd_conf",
    "parse_upsmon_conf",
    "parse_users",
    "paths",
]


@dataclass(frozen=True)
class Config:
    """
    Everything upsd reads at startup and on reload.

    @ivar confdir: the directory the files came from.
    @ivar ups: L{None} when there is no C{ups.conf} (NUT then refuses to
        start unless C{ALLOW_NO_DEVICE}; the caller decides).
    @ivar cmdvartab_path: the descriptions file that was read (or missing).
    @ivar warnings: all files' warnings, in reading order.
    """

    confdir: str
    ups: Optional[UpsConf]
    upsd: UpsdConf
    users: Users
    cmdvartab: CmdVarTab
    cmdvartab_path: str = ""
    warnings: tuple[ConfigWarning, ...] = ()


def load_config(confdir: str, cmdvartab_path: Optional[str] = None) -> Config:
    """
    Read C{ups.conf}, C{upsd.conf}, C{upsd.users} from C{confdir}, and the
    descriptions file.

    The descriptions file is C{cmdvartab_path} if given, else C{CMDVARTAB}
    from C{upsd.conf}, else C{cmdvartab} in C{DATAPATH} (default
    C{/usr/share/nut}).  A missing C{upsd.conf} gives the defaults and a
    warning (NUT would refuse to start).

    @raise ConfigError: when a file cannot be read or has an unusable value.
    """
    warnings: List[ConfigWarning] = []
    ups = load_ups_conf(os.path.join(confdir, "ups.conf"))
    upsd_path = os.path.join(confdir, "upsd.conf")
    upsd = load_upsd_conf(upsd_path)
    if upsd is None:
        upsd = UpsdConf(
            warnings=(ConfigWarning(upsd_path, None, "not found - using the defaults"),)
        )
    users = load_users(os.path.join(confdir, "upsd.users"))
    if cmdvartab_path is None:
        cmdvartab_path = upsd.cmdvartab or os.path.join(
            paths.datapath(None, upsd.datapath), "cmdvartab"
        )
    cmdvartab = load_cmdvartab(cmdvartab_path)
    if ups is not None:
        warnings.extend(ups.warnings)
    warnings.extend(upsd.warnings)
    warnings.extend(users.warnings)
    warnings.extend(cmdvartab.warnings)
    return Config(
        confdir=confdir,
        ups=ups,
        upsd=upsd,
        users=users,
        cmdvartab=cmdvartab,
        cmdvartab_path=cmdvartab_path,
        warnings=tuple(warnings),
    )
