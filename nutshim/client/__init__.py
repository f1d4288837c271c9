# -*- test-case-name: nutshim.test.test_client -*-
"""
A NUT (RFC 9271) client on Twisted: the protocol, TLS options, connection
helpers and the C{nutshim-client} command line (upsc, upscmd, upsrw).

The names most callers need are re-exported here; the modules say why each
piece is the way it is.  UPS names as users write them,
C{[group:]ups[@host[:port]]} (RFC 9271, section 4.2), are read by
L{parse_upsname}: connect to C{name.host}, C{name.port} and give
C{name.ups} to the requests; the group is the caller's label, never sent.
"""

from nutshim.client.connect import NUT_PORT, NUTClientFactory, authenticate, connect, negotiate_tls
from nutshim.client.errors import (
    NUTClientError,
    NUTError,
    PinMismatch,
    PlaintextCredentialsRefused,
    ProtocolError,
    RequestTimeout,
    StartTLSUnavailable,
    TLSTrustNotConfigured,
)
from nutshim.client.protocol import DEFAULT_TIMEOUT, NUTClientProtocol, VarType
from nutshim.client.service import NUTClientService
from nutshim.client.tls import TLSConfigError, TLSSettings, client_tls_options
from nutshim.protocol.upsname import UPSName, UPSNameError, parse_upsname

__all__ = [
    "NUT_PORT",
    "DEFAULT_TIMEOUT",
    "NUTClientFactory",
    "NUTClientProtocol",
    "NUTClientService",
    "VarType",
    "TLSSettings",
    "client_tls_options",
    "connect",
    "negotiate_tls",
    "authenticate",
    "NUTClientError",
    "NUTError",
    "StartTLSUnavailable",
    "ProtocolError",
    "RequestTimeout",
    "PlaintextCredentialsRefused",
    "TLSTrustNotConfigured",
    "PinMismatch",
    "TLSConfigError",
    "UPSName",
    "UPSNameError",
    "parse_upsname",
]
