# -*- test-case-name: nutshim.test.test_config -*-
"""
Where NUT's files live, decided the way NUT decides it.

NUT lets the environment override the compiled-in directories
(C{NUT_CONFPATH}, C{NUT_STATEPATH}) and, for the state directory, the
environment even beats C{STATEPATH} in C{upsd.conf}: init scripts and the test
harness (NIT) rely on that to run a private instance.  An explicit option
(nutshim's command line) beats everything.  An empty environment variable
counts as unset, as in NUT 2.8.

There is no environment variable for the data directory (where C{cmdvartab}
lives): only C{DATAPATH} in C{upsd.conf}.

The functions take the environment as an optional argument so tests need not
touch C{os.environ}.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

__all__ = [
    "DEFAULT_CONFDIR",
    "DEFAULT_STATEPATH",
    "DEFAULT_DATAPATH",
    "confdir",
    "statepath",
    "datapath",
]

#: NUT's compiled-in configuration directory (Debian: C{/etc/nut}).
DEFAULT_CONFDIR = "/etc/nut"
#: NUT's compiled-in state directory, holding the drivers' sockets.
DEFAULT_STATEPATH = "/var/run/nut"
#: NUT's compiled-in data directory, holding C{cmdvartab}.
DEFAULT_DATAPATH = "/usr/share/nut"


def _env(name: str, environ: Optional[Mapping[str, str]]) -> Optional[str]:
    value = (os.environ if environ is None else environ).get(name)
    return value or None


def confdir(
    explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None
) -> str:
    """
    The configuration directory: C{explicit}, else C{$NUT_CONFPATH}, else
    L{DEFAULT_CONFDIR}.
    """
    return explicit or _env("NUT_CONFPATH", environ) or DEFAULT_CONFDIR


def statepath(
    explicit: Optional[str] = None,
    upsd_conf_value: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> str:
    """
    The drivers' socket directory: C{explicit}, else C{$NUT_STATEPATH}, else
    C{STATEPATH} from C{upsd.conf} (C{upsd_conf_value}), else
    L{DEFAULT_STATEPATH}.
    """
    return (
        explicit
        or _env("NUT_STATEPATH", environ)
        or upsd_conf_value
        or DEFAULT_STATEPATH
    )


def datapath(explicit: Optional[str] = None, upsd_conf_value: Optional[str] = None) -> str:
    """
    The data directory: C{explicit}, else C{DATAPATH} from C{upsd.conf}, else
    L{DEFAULT_DATAPATH}.
    """
    return explicit or upsd_conf_value or DEFAULT_DATAPATH
