# -*- test-case-name: nutshim.test.test_client -*-
"""
Client TLS options for NUT's STARTTLS: CA verification, certificate pins,
client certificates, TLS 1.3 by default.

NUT's own clients verify nothing unless told to (C{CERTVERIFY}), and the
certificates NUT servers carry are mostly self-made, so two kinds of trust
are offered:

  - a CA file: the chain and the host name (or IP address) are verified, as
    Twisted's L{optionsForClientTLS} does;
  - a pin, the SHA-256 fingerprint of the server's own certificate
    (C{sha256:<hex>}, as C{nutshim-pki fingerprint} prints it): any chain is
    accepted, but the handshake is refused unless the leaf certificate has
    that fingerprint.  The check runs inside OpenSSL's verify callback, so a
    mismatch fails the handshake before a single byte of application data
    (credentials) is sent.

Both may be given (chain, name and pin are then all checked).  C{insecure}
encrypts without any verification, only when asked for explicitly.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)
from zope.interface import implementer

from nutshim.client.errors import NUTClientError, PinMismatch

__all__ = [
    "TLSSettings",
    "TLSConfigError",
    "client_tls_options",
    "parse_pin",
    "format_pin",
]

_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}


class TLSConfigError(NUTClientError):
    """
    A TLS option that cannot be used: unreadable file, bad pin, bad version.
    """


@dataclass(frozen=True)
class TLSSettings:
    """
    How a client connection should use STARTTLS.

    @ivar cafile: PEM file of CA certificates to verify the server with.
    @ivar pin: C{sha256:<hex>} fingerprint of the server certificate.
    @ivar certfile: PEM file with this client's certificate chain and key.
    @ivar min_tls: C{"1.3"} (default) or C{"1.2"}.
    @ivar server_name: the name to verify and send as SNI, if not the host
        connected to.
    @ivar insecure: encrypt without verifying the server at all.
    @ivar required: fail unless TLS is established; otherwise a server that
        answers C{FEATURE-NOT-CONFIGURED}/C{FEATURE-NOT-SUPPORTED} is used in
        plaintext.
    """

    cafile: Optional[str] = None
    pin: Optional[str] = None
    certfile: Optional[str] = None
    min_tls: str = "1.3"
    server_name: Optional[str] = None
    insecure: bool = False
    required: bool = False

    @property
    def has_trust(self) -> bool:
        """
        Whether the server's certificate can be checked (or is explicitly not).
        """
        return bool(self.cafile or self.pin or self.insecure)

    def options(self, host: str) -> Optional[IOpenSSLClientConnectionCreator]:
        """
        The connection creator for C{host}, or L{None} without any trust
        (a STARTTLS probe only; see L{NUTClientProtocol.starttls}).
        """
        if not self.has_trust:
            return None
        return client_tls_options(
            self.server_name or host,
            cafile=self.cafile,
            pin=self.pin,
            client_cert_pem=self.certfile,
            min_tls=self.min_tls,
            insecure=self.insecure,
        )


def parse_pin(pin: str) -> bytes:
    """
    The 32 bytes of a C{sha256:<hex>} pin (colons and case ignored).

    @raise TLSConfigError: for anything else.
    """
    algorithm, _, digest = pin.partition(":")
    if algorithm.lower() != "sha256":
        raise TLSConfigError(f"pin must look like sha256:<64 hex digits>, not {pin!r}")
    try:
        raw = bytes.fromhex(digest.replace(":", ""))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise TLSConfigError(f"pin must look like sha256:<64 hex digits>, not {pin!r}")
    return raw


def format_pin(digest: bytes) -> str:
    """The pin form of a SHA-256 digest."""
    return "sha256:" + digest.hex()


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(f"cannot read {what} {path}: {e.strerror}") from None


def _load_certificates(path: str, what: str) -> List[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read(path, what))
    except ValueError:
        certs = []
    if not certs:
        raise TLSConfigError(f"no PEM certificate in {what} {path}")
    return certs


def _load_identity(path: str) -> Tuple[crypto.PKey, crypto.X509, List[crypto.X509]]:
    data = _read(path, "certificate file")
    certs = _load_certificates(path, "certificate file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise TLSConfigError(f"no usable private key in {path}: {e}") from None
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf = [
        c for c in certs
        if c.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == public
    ]
    if not leaf:
        raise TLSConfigError(f"the private key in {path} matches none of its certificates")
    chain = [crypto.X509.from_cryptography(c) for c in certs if c is not leaf[0]]
    pkey = crypto.PKey.from_cryptography_key(key)  # type: ignore[arg-type]
    return pkey, crypto.X509.from_cryptography(leaf[0]), chain


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@implementer(IOpenSSLClientConnectionCreator)
class _CheckingCreator:
    """
    Client connections that verify the leaf certificate in OpenSSL's verify
    callback: against a pin, and (with a CA) the chain and the host name.

    @ivar mismatch: the last pin mismatch seen, to explain a failed handshake.
    """

    def __init__(self, hostname: str, options: CertificateOptions, pin: Optional[bytes],
                 verify_chain: bool) -> None:
        self._hostname = hostname
        self._options: Any = options
        self._pin = pin
        self._verify_chain = verify_chain
        self.mismatch: Optional[PinMismatch] = None

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        conn: SSL.Connection = self._options.clientConnectionForTLS(tlsProtocol)
        if not _is_ip(self._hostname):
            conn.set_tlsext_host_name(self._hostname.encode("idna"))
        if self._pin is None and not self._verify_chain:
            conn.set_verify(SSL.VERIFY_NONE)
        else:
            conn.set_verify(SSL.VERIFY_PEER, self._verify)
        return conn

    def _verify(self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                ok: int) -> bool:
        if depth != 0:
            return bool(ok) or not self._verify_chain
        leaf = cert.to_cryptography()
        if self._verify_chain:
            if not ok or not self._name_matches(leaf):
                return False
        if self._pin is not None:
            digest = leaf.fingerprint(hashes.SHA256())
            if not hmac.compare_digest(digest, self._pin):
                self.mismatch = PinMismatch(format_pin(self._pin), format_pin(digest))
                return False
        return True

    def _name_matches(self, leaf: x509.Certificate) -> bool:
        try:
            if _is_ip(self._hostname):
                verify_certificate_ip_address(leaf, self._hostname)
            else:
                verify_certificate_hostname(leaf, self._hostname)
        except VerificationError:
            return False
        return True


def client_tls_options(
    hostname: str,
    cafile: Optional[str] = None,
    pin: Optional[str] = None,
    client_cert_pem: Optional[str] = None,
    min_tls: str = "1.3",
    insecure: bool = False,
) -> IOpenSSLClientConnectionCreator:
    """
    Build the options for L{ITLSTransport.startTLS} on a NUT connection.

    @param hostname: the server's name or IP address, verified against the
        certificate's subjectAltName when a CA file is used.
    @param cafile: PEM CA certificates; without it and without a pin (and
        without C{insecure}) the platform's trust store is used.
    @param pin: C{sha256:<hex>} of the server certificate.
    @param client_cert_pem: a PEM file with the client certificate (and its
        chain) and the private key.
    @param min_tls: the lowest TLS version accepted, C{"1.3"} or C{"1.2"}.
    @param insecure: with neither CA file nor pin, accept any certificate.
    @raise TLSConfigError: for unusable files or values.
    """
    version = _VERSIONS.get(min_tls)
    if version is None:
        raise TLSConfigError(f"minimum TLS version must be 1.2 or 1.3, not {min_tls!r}")
    raw_pin = parse_pin(pin) if pin else None
    extra: dict[str, Any] = {"raiseMinimumTo": version}
    if client_cert_pem:
        key, cert, chain = _load_identity(client_cert_pem)
        extra.update(privateKey=key, certificate=cert)
        if chain:
            extra["extraCertChain"] = chain
    trust: Any = None
    if cafile:
        trust = trustRootFromCertificates(  # type: ignore[no-untyped-call]
            [Certificate(crypto.X509.from_cryptography(c))  # type: ignore[no-untyped-call]
             for c in _load_certificates(cafile, "CA file")]
        )
    if raw_pin is None and (trust is not None or not insecure):
        return optionsForClientTLS(hostname, trust, extraCertificateOptions=extra)
    if trust is not None:
        options = CertificateOptions(trustRoot=trust, **extra)
    else:
        options = CertificateOptions(verify=False, **extra)
    creator = _CheckingCreator(hostname, options, raw_pin, verify_chain=trust is not None)
    return cast(IOpenSSLClientConnectionCreator, creator)
