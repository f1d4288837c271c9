# -*- test-case-name: nutshim.test.test_client -*-
"""
The exceptions of the NUT client, and libupsclient's wording of server errors.

Callers need to tell apart "the server said no" (L{NUTError}, with the exact
error name so that code can branch on it), "the server said something we
cannot parse" (L{ProtocolError}: the connection is out of step and dropped)
and the security refusals this client adds on its own (plaintext credentials,
an unverifiable or mismatched certificate).  The messages for error names are
the ones NUT's C{libupsclient} prints (C{upscli_errlist}), because users and
scripts match on them.
"""

from __future__ import annotations

from typing import Dict, Sequence, Union

from nutshim.protocol.errors import NutError

__all__ = [
    "NUTClientError",
    "NUTError",
    "StartTLSUnavailable",
    "ProtocolError",
    "RequestTimeout",
    "PlaintextCredentialsRefused",
    "TLSTrustNotConfigured",
    "PinMismatch",
    "upscli_message",
    "error_from_words",
]

ErrorName = Union[NutError, str]


class NUTClientError(Exception):
    """
    Base of every error the NUT client raises by itself.
    """


class NUTError(NUTClientError):
    """
    The server answered C{ERR <name> [<extra>...]}.

    @ivar error: the error as a L{NutError}, or the raw name as C{str} when
        the name is not one nutshim knows.
    @ivar extra: words after the name (NSS builds send e.g.
        C{"SSL handshake failed"}).
    @ivar line: the reply line as received.
    @ivar request: the request line this error answers.
    """

    def __init__(
        self,
        error: ErrorName,
        line: str = "",
        request: str = "",
        extra: Sequence[str] = (),
    ) -> None:
        self.error = error
        self.line = line or "ERR " + self.name
        self.request = request
        self.extra = tuple(extra)
        super().__init__(self.line)

    @property
    def name(self) -> str:
        """
        The error name as on the wire, e.g. C{VAR-NOT-SUPPORTED}.
        """
        return self.error.value if isinstance(self.error, NutError) else self.error

    @property
    def message(self) -> str:
        """
        The text C{libupsclient} would print for this error.
        """
        return upscli_message(self.error)

    def __str__(self) -> str:
        if self.request:
            return f"{self.line} (in reply to {self.request!r})"
        return self.line


class StartTLSUnavailable(NUTError):
    """
    The server refused STARTTLS with C{FEATURE-NOT-CONFIGURED} or
    C{FEATURE-NOT-SUPPORTED}: the connection is still usable in plaintext.
    """


class ProtocolError(NUTClientError):
    """
    A reply that does not fit the request; the connection has been dropped
    because the replies can no longer be matched to requests.
    """


class RequestTimeout(NUTClientError):
    """
    No complete reply came within the request timeout; the connection has
    been dropped and every pending request failed with this error.
    """


class PlaintextCredentialsRefused(NUTClientError):
    """
    USERNAME or PASSWORD was asked for on a connection without TLS while
    C{require_tls} is set; nothing was written.
    """


class TLSTrustNotConfigured(NUTClientError):
    """
    The server accepted STARTTLS but no way to verify its certificate was
    given (no CA file, no pin, no explicit C{insecure}); the connection has
    been dropped, since it cannot go back to plaintext after C{OK STARTTLS}.
    """


class PinMismatch(NUTClientError):
    """
    The server's certificate does not have the pinned SHA-256 fingerprint.

    @ivar expected: the pin, C{sha256:<hex>}.
    @ivar actual: the fingerprint the server presented, same form.
    """

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"certificate fingerprint {actual} does not match the pin {expected}"
        )


# libupsclient's table (clients/upsclient.c: upsd_errlist -> upscli_errlist).
# INVALID-ARGUMENT, FEATURE-NOT-* and ALREADY-SSL-MODE are absent there, so
# NUT's tools print "Unknown error" for them; so do we.
_UPSCLI: Dict[str, str] = {
    "VAR-NOT-SUPPORTED": "Variable not supported by UPS",
    "UNKNOWN-UPS": "Unknown UPS",
    "ACCESS-DENIED": "Access denied",
    "PASSWORD-REQUIRED": "Password required",
    "PASSWORD-INCORRECT": "Password incorrect",
    "MISSING-ARGUMENT": "Missing argument",
    "DATA-STALE": "Data stale",
    "VAR-UNKNOWN": "Variable unknown",
    "ALREADY-LOGGED-IN": "Already logged in",
    "ALREADY-SET-PASSWORD": "Already set password",
    "UNKNOWN-TYPE": "Unknown variable type",
    "UNKNOWN-VAR": "Unknown variable",
    "READONLY": "Read-only variable",
    "TOO-LONG": "New value is too long",
    "INVALID-VALUE": "Invalid value for variable",
    "SET-FAILED": "Set command failed",
    "UNKNOWN-INSTCMD": "Unknown instant command",
    "INSTCMD-FAILED": "Instant command failed",
    "CMD-NOT-SUPPORTED": "Instant command not supported",
    "INVALID-USERNAME": "Invalid username",
    "ALREADY-SET-USERNAME": "Already set username",
    "UNKNOWN-COMMAND": "Unknown command",
    "INVALID-PASSWORD": "Invalid password",
    "USERNAME-REQUIRED": "Username required",
    "DRIVER-NOT-CONNECTED": "Driver not connected",
    # RFC 9271 names that libupsclient 2.8.0 predates.
    "ALREADY-ATTACHED": "Already attached",
    "TLS-ALREADY-ENABLED": "TLS already enabled",
    "TLS-NOT-ENABLED": "TLS is required by the server but not enabled",
}


def upscli_message(error: ErrorName) -> str:
    """
    The message NUT's client library gives for an error name.

    Matching is by prefix, as C{upscli_errcheck} does (so C{UNKNOWN-UPSX}
    reads as C{UNKNOWN-UPS}); unknown names give C{Unknown error}.
    """
    name = error.value if isinstance(error, NutError) else error
    text = _UPSCLI.get(name)
    if text is not None:
        return text
    for token, text in _UPSCLI.items():
        if name.startswith(token):
            return text
    return "Unknown error"


def error_from_words(words: Sequence[str], line: str, request: str) -> NUTError:
    """
    Build the error for a reply C{ERR <name> [<extra>...]} already split
    into words.
    """
    token = words[1] if len(words) > 1 else ""
    error: ErrorName
    try:
        error = NutError(token)
    except ValueError:
        error = token
    cls = NUTError
    if error in (NutError.FEATURE_NOT_CONFIGURED, NutError.FEATURE_NOT_SUPPORTED):
        if request.split()[:1] == ["STARTTLS"]:
            cls = StartTLSUnavailable
    return cls(error, line, request, words[2:])
