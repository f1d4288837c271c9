# -*- test-case-name: nutshim.test.test_upsmonconf -*-
"""
From C{upsmon.conf}'s TLS keys to the client library's L{TLSSettings}.

NUT's upsmon always tries STARTTLS and, unless told to verify
(C{CERTVERIFY}, or C{CERTHOST}'s third field), does not check the
certificate; unless C{FORCESSL}, it goes on in plaintext when the server
has no TLS.  The same policy here: unverified TLS is no worse than the
plaintext it replaces, and refusing it would break NUT configurations.
What verification means:

  - C{CERTPATH} a PEM file: the chain up to those CAs, and the host name
    (or C{CERTHOST}'s certificate name);
  - C{CERTPATH} a directory: every PEM certificate in it is a CA (NUT's
    OpenSSL build reads a hashed directory; its NSS build, Debian's, a
    certificate database, which cannot be read here);
  - C{CERTPIN}: the server certificate's SHA-256 fingerprint, alone, or
    with the CA file when both are given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet.ssl import (
    Certificate,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)

from nutshim.client.tls import TLSConfigError, TLSSettings
from nutshim.config.upsmonconf import UpsmonConf

__all__ = ["tls_settings", "CADirectorySettings", "load_ca_directory"]

_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}


def load_ca_directory(path: str) -> List[x509.Certificate]:
    """
    Every PEM certificate in the regular files of a directory.

    @raise TLSConfigError: when it cannot be read or holds none.
    """
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise TLSConfigError(f"cannot read CA directory {path}: {e.strerror}") from None
    certs: List[x509.Certificate] = []
    for name in names:
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        try:
            with open(full, "rb") as f:
                data = f.read()
            certs.extend(x509.load_pem_x509_certificates(data))
        except (OSError, ValueError):
            continue
    if not certs:
        raise TLSConfigError(f"no PEM certificate in CA directory {path}")
    return certs


@dataclass(frozen=True)
class CADirectorySettings(TLSSettings):
    """
    L{TLSSettings} that trust every certificate of a directory.

    @ivar capath: the directory.
    """

    capath: str = ""

    def options(self, host: str) -> Any:
        if self.pin:
            # A pin is checked by the library's own creator; the chain is not.
            return super().options(host)
        trust = trustRootFromCertificates(  # type: ignore[no-untyped-call]
            [Certificate.loadPEM(c.public_bytes(Encoding.PEM)) for c in load_ca_directory(self.capath)]
        )
        client: Optional[PrivateCertificate] = None
        if self.certfile:
            try:
                with open(self.certfile, "rb") as f:
                    client = PrivateCertificate.loadPEM(f.read())
            except Exception as e:
                raise TLSConfigError(f"cannot use client certificate {self.certfile}: {e}") from None
        return optionsForClientTLS(
            self.server_name or host, trust, clientCertificate=client,
            extraCertificateOptions={"raiseMinimumTo": _VERSIONS[self.min_tls]},
        )


def tls_settings(conf: UpsmonConf, host: str) -> TLSSettings:
    """
    The STARTTLS policy for the server C{host}.
    """
    entry = conf.certhost(host)
    verify = entry.verify if entry is not None else conf.certverify
    required = entry.forcessl if entry is not None else conf.forcessl
    server_name = entry.certname if entry is not None else None
    pin = conf.pin(host)
    common = dict(certfile=conf.certfile, min_tls=conf.tls_min_version,
                  server_name=server_name, required=required)
    if not verify and pin is None:
        return TLSSettings(insecure=True, **common)  # type: ignore[arg-type]
    path = conf.certpath if verify else None
    if path and os.path.isdir(path):
        return CADirectorySettings(pin=pin, capath=path, **common)  # type: ignore[arg-type]
    return TLSSettings(cafile=path, pin=pin, **common)  # type: ignore[arg-type]
