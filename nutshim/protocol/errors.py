# -*- test-case-name: nutshim.test.test_commands -*-
"""
The error names of NUT's protocol, as one C{Enum}.

Clients map these exact tokens to messages (libupsclient's C{upscli_errlist},
PyNUT's exceptions), so they are data, not prose.
"""

from __future__ import annotations

import enum

__all__ = ["NutError"]


class NutError(enum.Enum):
    """
    Every error name NUT 2.8.0 defines, plus those RFC 9271 adds.

    The value is the token on the wire (C{ERR <value>}).
    """

    ACCESS_DENIED = "ACCESS-DENIED"
    UNKNOWN_UPS = "UNKNOWN-UPS"
    VAR_NOT_SUPPORTED = "VAR-NOT-SUPPORTED"
    CMD_NOT_SUPPORTED = "CMD-NOT-SUPPORTED"
    INVALID_ARGUMENT = "INVALID-ARGUMENT"
    INSTCMD_FAILED = "INSTCMD-FAILED"
    SET_FAILED = "SET-FAILED"
    READONLY = "READONLY"
    TOO_LONG = "TOO-LONG"
    FEATURE_NOT_SUPPORTED = "FEATURE-NOT-SUPPORTED"
    FEATURE_NOT_CONFIGURED = "FEATURE-NOT-CONFIGURED"
    ALREADY_SSL_MODE = "ALREADY-SSL-MODE"
    DRIVER_NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    DATA_STALE = "DATA-STALE"
    ALREADY_LOGGED_IN = "ALREADY-LOGGED-IN"
    INVALID_PASSWORD = "INVALID-PASSWORD"
    ALREADY_SET_PASSWORD = "ALREADY-SET-PASSWORD"
    INVALID_USERNAME = "INVALID-USERNAME"
    ALREADY_SET_USERNAME = "ALREADY-SET-USERNAME"
    USERNAME_REQUIRED = "USERNAME-REQUIRED"
    PASSWORD_REQUIRED = "PASSWORD-REQUIRED"
    UNKNOWN_COMMAND = "UNKNOWN-COMMAND"
    VAR_UNKNOWN = "VAR-UNKNOWN"
    UNKNOWN_TYPE = "UNKNOWN-TYPE"
    UNKNOWN_INSTCMD = "UNKNOWN-INSTCMD"
    MISSING_ARGUMENT = "MISSING-ARGUMENT"
    INVALID_VALUE = "INVALID-VALUE"
    # RFC 9271 additions.
    ALREADY_ATTACHED = "ALREADY-ATTACHED"
    TLS_ALREADY_ENABLED = "TLS-ALREADY-ENABLED"
    TLS_NOT_ENABLED = "TLS-NOT-ENABLED"

    @property
    def line(self) -> bytes:
        """
        The complete reply line, C{ERR NAME\\n}.
        """
        return b"ERR " + self.value.encode("ascii") + b"\n"
