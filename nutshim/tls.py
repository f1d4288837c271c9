# -*- test-case-name: nutshim.test.test_tls -*-
"""
The Attachment Daemon's side of STARTTLS: the server context built from
upsd.conf, and what a finished (or failed) handshake tells us about the peer.

Why this is its own module: the daemon must refuse a bad certificate I{before}
it starts serving (NUT's OpenSSL build exits at startup; a reload must keep
the old settings), and an administrator reading the log after a failed
handshake must learn I{why} it failed -- wrong CA, expired certificate, no
client certificate, TLS version -- not just that OpenSSL said "error".  Both
need the configuration and OpenSSL's vocabulary in one place.

The upsd.conf keys, as NUT's OpenSSL build reads them, and nutshim's
additions:

 - C{CERTFILE}: one PEM file holding the server certificate, its chain and
   the private key (what C{nutshim-pki server NAME} writes).  A relative
   path is relative to the configuration directory.  An encrypted key is
   decrypted with C{CERTIDENT}'s password, as NUT does.
 - C{CERTPATH}: a PEM file, or a directory of PEM files, holding the CA
   certificates client certificates must chain to.
 - C{CERTREQUEST 0|1|2}: do not ask for a client certificate / ask and
   verify one if given / require one.  1 and 2 need C{CERTPATH}.
 - C{TLS_MIN_VERSION 1.3|1.2} (nutshim): TLS 1.3 only by default; 1.2 is
   the lowest ever offered, so C{DISABLE_WEAK_SSL} always holds.

Only verified client certificates are reported (L{peer_identity}): a
certificate that was merely presented, or presented while nobody asked for
verification, never names anyone.
"""

from __future__ import annotations

import os
import stat
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.python.failure import Failure

from nutshim.config import ConfigError, UpsdConf
from nutshim.pki._certs import (
    Bundle,
    PKIError,
    certificate_status,
    check_bundle,
    fingerprint_sha256,
    is_ca,
    load_pem_bundle,
    name_to_text,
    purpose_of,
    subject_alt_names,
)

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "PeerIdentity",
    "ServerTLSOptions",
    "describe_handshake_failure",
    "negotiated",
    "peer_identity",
    "server_tls_options",
]

log = Logger()

#: Seconds a client may take between C{OK STARTTLS} and a finished handshake.
DEFAULT_HANDSHAKE_TIMEOUT = 10

#: Warn about the server certificate this long before it expires.
EXPIRY_WARNING = timedelta(days=30)

_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}

#: TLS 1.2 suites when TLS_MIN_VERSION 1.2 lets them in: forward secrecy and
#: AEAD only (TLS 1.3's suites are all of that kind and are not affected).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"

#: OpenSSL's X.509 verification codes that a misconfigured client runs into,
#: in words an administrator can act on (stable values from x509_vfy.h).
_VERIFY_ERRORS = {
    2: "unable to get the issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate not in CERTPATH",
    19: "self-signed certificate in the chain, not in CERTPATH",
    20: "issued by a CA that is not in CERTPATH",
    21: "unable to verify the first certificate",
    24: "invalid CA certificate",
    26: "not a client certificate (wrong extended key usage)",
    27: "certificate not trusted",
    28: "certificate rejected",
}

#: The first failed check of each connection's client-certificate
#: verification, recorded by the context's verify callback.
_verify_failures: "weakref.WeakKeyDictionary[SSL.Connection, str]" = weakref.WeakKeyDictionary()


def _fail(confdir: str, message: str) -> ConfigError:
    return ConfigError(os.path.join(confdir, "upsd.conf"), None, message)


def _pki_message(error: PKIError, source: str) -> str:
    """
    A L{PKIError}'s message without its leading C{"<source>: "}, since
    L{ConfigError} names the file itself.
    """
    text = error.message
    prefix = source + ": "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _resolve(confdir: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(confdir, path)


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(path, None, f"{key}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(path, None, f"{key}: is a directory") from None
    except OSError as e:
        raise ConfigError(path, None, f"{key}: cannot read: {e.strerror or e}") from None


_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def _split_key_blocks(data: bytes) -> Tuple[bytes, List[bytes]]:
    """
    Separate the private-key PEM blocks from the rest, so that an encrypted
    key can be decrypted with CERTIDENT's password.
    """
    rest: List[bytes] = []
    keys: List[bytes] = []
    block: List[bytes] = []
    in_key = False
    for line in data.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(b"-----BEGIN ") and b"PRIVATE KEY" in stripped:
            in_key = True
        if in_key:
            block.append(line)
            if stripped.startswith(b"-----END "):
                keys.append(b"".join(block))
                block = []
                in_key = False
        else:
            rest.append(line)
    return b"".join(rest), keys


def _load_certfile(path: str, password: Optional[str]) -> Bundle:
    """
    The CERTFILE bundle; an encrypted key is opened with C{password}.

    @raise ConfigError: naming the file.
    """
    if os.path.isdir(path):
        raise ConfigError(
            path,
            None,
            "CERTFILE is a directory: that is an NSS database (NUT built with NSS);"
            " nutshim needs one PEM file with the certificate, its chain and the key"
            " (make one with: nutshim-pki server NAME)",
        )
    data = _read(path, "CERTFILE")
    try:
        if os.stat(path).st_mode & stat.S_IROTH:
            log.warn(
                "CERTFILE {file} holds the private key and is world readable: chmod 600 it",
                file=path,
            )
    except OSError:
        pass
    if any(marker in data for marker in _ENCRYPTED_MARKERS):
        if password is None:
            raise ConfigError(
                path, None, "CERTFILE: the private key is encrypted and CERTIDENT gives no password"
            )
        rest, keys = _split_key_blocks(data)
        if len(keys) != 1:
            raise ConfigError(path, None, "CERTFILE: expected exactly one private key")
        try:
            bundle = load_pem_bundle(rest, path)
            key = serialization.load_pem_private_key(keys[0], password.encode("utf-8"))
        except PKIError as e:
            raise ConfigError(path, None, "CERTFILE: " + _pki_message(e, path)) from None
        except (ValueError, TypeError):
            raise ConfigError(
                path, None, "CERTFILE: cannot decrypt the private key with CERTIDENT's password"
            ) from None
        return Bundle(bundle.certificates, key)  # type: ignore[arg-type]
    try:
        return load_pem_bundle(data, path)
    except PKIError as e:
        raise ConfigError(path, None, "CERTFILE: " + _pki_message(e, path)) from None


def _load_authorities(path: str, now: Optional[datetime]) -> List[x509.Certificate]:
    """
    The CA certificates of CERTPATH (a PEM file or a directory of them).

    In a directory, files that are not PEM or hold no CA certificate (keys,
    leaves, OpenSSL's hash links to the same files) are skipped; duplicate
    CAs are kept once.  Expired CAs are left out with a warning.

    @raise ConfigError: if no usable CA certificate is found.
    """
    if os.path.isdir(path):
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            raise ConfigError(path, None, f"CERTPATH: cannot list: {e.strerror or e}") from None
        files = [os.path.join(path, n) for n in names]
        files = [f for f in files if os.path.isfile(f)]
        lenient = True
    else:
        files = [path]
        lenient = False
    found: dict[str, x509.Certificate] = {}
    for name in files:
        data = _read(name, "CERTPATH")
        try:
            bundle = load_pem_bundle(data, name)
        except PKIError as e:
            if lenient:
                continue
            raise ConfigError(name, None, "CERTPATH: " + _pki_message(e, name)) from None
        for cert in bundle.certificates:
            if not is_ca(cert):
                continue
            state = certificate_status(cert, 0, now).state
            if state != "ok":
                log.warn(
                    "CERTPATH {file}: CA {subject} is {state}: not trusted",
                    file=name,
                    subject=name_to_text(cert.subject),
                    state=state,
                )
                continue
            found.setdefault(fingerprint_sha256(cert), cert)
    if not found:
        raise ConfigError(
            path, None, "CERTPATH: no valid CA certificate found (client certificates cannot be verified)"
        )
    return list(found.values())


@dataclass(frozen=True)
class PeerIdentity:
    """
    A client certificate that was verified against CERTPATH.

    @ivar cn: its subject's first common name, or L{None}.
    @ivar subject: its whole subject, as RFC 4514 text.
    @ivar fingerprint: C{sha256:<hex>}, the form upsd.users' C{certificate}
        lines and C{nutshim-pki fingerprint} use.
    """

    cn: Optional[str]
    subject: str
    fingerprint: str

    @property
    def name(self) -> str:
        """What the logs and L{Session.tls_identity} call this peer."""
        return self.cn if self.cn else self.subject


class ServerTLSOptions(CertificateOptions):
    """
    L{CertificateOptions} for upsd, plus client-certificate verification
    configured the way NUT's C{CERTREQUEST} means it.

    Twisted's C{trustRoot} always requires a certificate; C{CERTREQUEST 1}
    must ask for one and accept its absence, so the verify mode is set here
    on the context instead.  The verify callback only records why a check
    failed, for the log; it never changes OpenSSL's verdict.

    @ivar certfile: the CERTFILE path, for messages.
    @ivar leaf: the server certificate.
    @ivar certrequest: 0, 1 or 2.
    @ivar authorities: the CAs client certificates must chain to.
    @ivar minimum_version: C{"1.2"} or C{"1.3"}.
    """

    def __init__(
        self,
        certfile: str,
        bundle: Bundle,
        certrequest: int,
        authorities: Sequence[x509.Certificate],
        minimum_version: str,
    ) -> None:
        assert bundle.key is not None
        super().__init__(
            privateKey=bundle.key,  # type: ignore[arg-type]
            certificate=bundle.certificates[0],  # type: ignore[arg-type]
            extraCertChain=list(bundle.certificates[1:]),  # type: ignore[arg-type]
            raiseMinimumTo=_VERSIONS[minimum_version],
            acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(TLS12_CIPHERS),
        )
        self.certfile = certfile
        self.leaf = bundle.certificates[0]
        self.certrequest = certrequest
        self.authorities = tuple(authorities)
        self.minimum_version = minimum_version
        self._configured: Optional[SSL.Context] = None

    def getContext(self) -> SSL.Context:
        """
        The shared context, with NUT's client-certificate policy added once.
        """
        ctx = super().getContext()
        if self._configured is not ctx:
            self._configure(ctx)
            self._configured = ctx
        return ctx

    def _configure(self, ctx: SSL.Context) -> None:
        # A client cannot renegotiate its way around the handshake timeout
        # or make the server redo expensive handshakes on one connection.
        ctx.set_options(getattr(SSL, "OP_NO_RENEGOTIATION", 0))
        if self.certrequest == 0:
            ctx.set_verify(SSL.VERIFY_NONE)
            return
        store = ctx.get_cert_store()
        assert store is not None
        for ca in self.authorities:
            store.add_cert(crypto.X509.from_cryptography(ca))
            # Tell clients which CAs we accept, so one holding several
            # certificates picks the right one.
            ctx.add_client_ca(ca)
        mode = SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE
        if self.certrequest >= 2:
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        ctx.set_verify(mode, _record_verify_result)

    def describe(self) -> str:
        """
        One line for the log: which certificate, which versions, which
        client-certificate policy.
        """
        policy = {0: "not requested", 1: "verified if sent", 2: "required"}[self.certrequest]
        if self.certrequest:
            policy += f" ({len(self.authorities)} CA(s) from CERTPATH)"
        return (
            f"certificate {name_to_text(self.leaf.subject)} ({fingerprint_sha256(self.leaf)},"
            f" expires {self.leaf.not_valid_after_utc:%Y-%m-%d}) from {self.certfile};"
            f" TLS {self.minimum_version} and later; client certificates {policy}"
        )


def _record_verify_result(
    conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """
    OpenSSL's verify callback: remember the first failure, keep the verdict.
    """
    if not ok and conn not in _verify_failures:
        try:
            subject = name_to_text(cert.to_cryptography().subject)
        except Exception:
            subject = "?"
        reason = _VERIFY_ERRORS.get(errno, f"X.509 verification error {errno}")
        _verify_failures[conn] = f"{reason} ({subject}, depth {depth})"
    return bool(ok)


def server_tls_options(
    upsd: UpsdConf, confdir: str, now: Optional[datetime] = None
) -> Optional[ServerTLSOptions]:
    """
    The server TLS settings upsd.conf asks for, checked now so that a bad
    file stops the daemon (or a reload) instead of failing every handshake.

    @param confdir: relative CERTFILE/CERTPATH are relative to this.
    @param now: the moment for the validity checks (tests); default now.
    @return: L{None} when there is no CERTFILE: STARTTLS is then
        C{FEATURE-NOT-CONFIGURED}.
    @raise ConfigError: naming the file, when the certificate or key is
        missing, unreadable, mismatched, expired or not yet valid, when the
        CAs cannot be read, when C{CERTREQUEST} needs a C{CERTPATH} that is
        not given, or when C{TLS_REQUIRED} asks for TLS that cannot be had.
    """
    if upsd.certfile is None:
        if upsd.tls_required in ("remote", "all"):
            raise _fail(
                confdir,
                f"TLS_REQUIRED {upsd.tls_required} needs CERTFILE (without it no client"
                " could ever be served)",
            )
        if upsd.certrequest:
            log.warn("upsd.conf: CERTREQUEST {n} ignored: no CERTFILE", n=upsd.certrequest)
        return None
    certfile = _resolve(confdir, upsd.certfile)
    password = upsd.certident[1] if upsd.certident is not None else None
    bundle = _load_certfile(certfile, password)
    try:
        check_bundle(bundle, certfile, now)
    except PKIError as e:
        raise ConfigError(certfile, None, "CERTFILE: " + _pki_message(e, certfile)) from None
    leaf = bundle.certificates[0]
    purpose = purpose_of(leaf)
    if purpose in ("CA", "client"):
        raise ConfigError(
            certfile,
            None,
            f"CERTFILE: {name_to_text(leaf.subject)} is a {purpose} certificate,"
            " not a server certificate",
        )
    moment = now if now is not None else datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if leaf.not_valid_after_utc - moment < EXPIRY_WARNING:
        log.warn(
            "CERTFILE {file}: the certificate {subject} expires on {when:%Y-%m-%d}:"
            " renew it (nutshim-pki renew)",
            file=certfile,
            subject=name_to_text(leaf.subject),
            when=leaf.not_valid_after_utc,
        )
    if upsd.certident is not None:
        _check_certident(certfile, leaf, upsd.certident[0])
    authorities: List[x509.Certificate] = []
    if upsd.certrequest:
        if upsd.certpath is None:
            raise _fail(
                confdir,
                f"CERTREQUEST {upsd.certrequest} needs CERTPATH (the CA certificates"
                " client certificates are verified against)",
            )
        authorities = _load_authorities(_resolve(confdir, upsd.certpath), now)
    options = ServerTLSOptions(
        certfile, bundle, upsd.certrequest, authorities, upsd.tls_min_version
    )
    try:
        # Build the context now: OpenSSL's own checks (key type, key/cert
        # match) fail here rather than on the first client's STARTTLS.
        options.getContext()
    except SSL.Error as e:
        raise ConfigError(certfile, None, f"CERTFILE: OpenSSL refuses it: {_ssl_reasons(e)}") from None
    return options


def _check_certident(certfile: str, leaf: x509.Certificate, name: str) -> None:
    """
    NUT's OpenSSL build compares CERTIDENT's name with the certificate: a
    mismatch there is only worth a warning (the name is often a nickname).
    """
    names = {a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.update(str(n) for n in san.get_values_for_type(x509.DNSName))
        names.update(str(n) for n in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    if name not in names:
        log.warn(
            "CERTIDENT {name} does not name the certificate in {file} ({subject})",
            name=name,
            file=certfile,
            subject=name_to_text(leaf.subject),
        )


# After the handshake.


def _handle(transport: Any) -> Optional[SSL.Connection]:
    get = getattr(transport, "getHandle", None)
    if get is None:
        return None
    try:
        handle = get()
    except Exception:
        return None
    return handle if isinstance(handle, SSL.Connection) else None


def peer_identity(transport: Any) -> Optional[PeerIdentity]:
    """
    The client certificate the handshake verified, if any.

    Only a chain OpenSSL verified counts (C{SSL_get0_verified_chain}): with
    C{CERTREQUEST 0} nothing is asked for, so nothing is reported.

    @param transport: a transport after C{handshakeCompleted}.
    """
    conn = _handle(transport)
    if conn is None:
        return None
    try:
        chain = conn.get_verified_chain()
    except Exception:
        return None
    if not chain:
        return None
    cert = chain[0]
    leaf = cert if isinstance(cert, x509.Certificate) else cert.to_cryptography()
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    return PeerIdentity(cn, name_to_text(leaf.subject), fingerprint_sha256(leaf))


def negotiated(transport: Any) -> str:
    """
    The protocol version, cipher and key-exchange group of a finished
    handshake, for the log (C{"TLSv1.3 TLS_AES_256_GCM_SHA384 X25519"}).
    """
    conn = _handle(transport)
    if conn is None:
        return "TLS"
    try:
        text = f"{conn.get_protocol_version_name()} {conn.get_cipher_name()}"
        group = getattr(conn, "get_group_name", lambda: None)()
    except Exception:
        return "TLS"
    return f"{text} {group}" if group else text


def _ssl_reasons(error: BaseException) -> str:
    """
    OpenSSL's error queue as text: C{"certificate verify failed"}.
    """
    parts: List[str] = []
    args = error.args[0] if error.args else None
    if isinstance(args, list):
        for entry in args:
            if isinstance(entry, tuple) and entry:
                parts.append(str(entry[-1]))
            else:
                parts.append(str(entry))
    text = "; ".join(p for p in parts if p)
    return text or str(error) or type(error).__name__


def _client_alert(alert: str, conn: Optional[SSL.Connection]) -> str:
    """
    What an alert the client sent instead of finishing the handshake says.

    A certificate alert does not say which check failed: NUT's NSS upsmon
    sends C{bad certificate} when our certificate's names do not include
    the one it asked for (C{CERTHOST}'s certificate name, else the host it
    connected to), C{unknown ca} for a CA it does not trust (also what NUT
    built with OpenSSL sends when C{CERTPATH} is a PEM file instead of a
    hashed directory), C{certificate expired} by its clock -- and other
    clients use other alerts.  So all three causes are named, the likeliest
    first, with the names our certificate does carry.
    """
    if "certificate" not in alert and alert != "unknown ca":
        return f"the client rejected the handshake (alert: {alert})"
    names = ""
    try:
        cert = conn.get_certificate().to_cryptography()  # type: ignore[union-attr]
        names = " (" + (", ".join(subject_alt_names(cert)) or name_to_text(cert.subject)) + ")"
    except Exception:
        pass  # no connection or no certificate at hand: the causes still hold
    causes = {
        "name": "the name it asked for (CERTHOST in upsmon.conf, else the host it "
        f"connected to) may not be one of our certificate's{names}",
        "ca": "it may not trust our CA (NUT built with OpenSSL: CERTPATH must be a "
        "hashed directory, nutshim-pki export-capath)",
        "time": "our certificate may be expired or not yet valid by its clock",
    }
    first = "ca" if alert == "unknown ca" else "time" if "expired" in alert else "name"
    order = [first] + [cause for cause in causes if cause != first]
    text = [causes[cause] for cause in order]
    return (f"the client rejected the handshake (alert: {alert}): "
            f"{text[0]}, {text[1]}, or {text[2]}")


def describe_handshake_failure(
    reason: Any, transport: Any, minimum_version: str = "1.3"
) -> str:
    """
    Why a STARTTLS handshake failed, in an administrator's words, followed
    by OpenSSL's own.

    @param reason: the L{Failure} (or exception) the connection was lost
        with.
    @param transport: the connection's transport, to find the client
        certificate's verification error.
    @param minimum_version: TLS_MIN_VERSION, for the version message.
    """
    error = reason.value if isinstance(reason, Failure) else reason
    if not isinstance(error, SSL.Error):
        return "the connection closed during the handshake"
    raw = _ssl_reasons(error)
    text = raw.lower()
    conn = _handle(transport)
    verify = _verify_failures.get(conn) if conn is not None else None
    if "peer did not return a certificate" in text:
        summary = "no client certificate (CERTREQUEST 2 requires one)"
    elif "certificate verify failed" in text or verify is not None:
        summary = f"client certificate rejected: {verify or 'verification failed'}"
    elif (
        "unsupported protocol" in text
        or "no protocols available" in text
        or "version too low" in text
        or "alert protocol version" in text
    ):
        summary = f"no TLS version in common (TLS_MIN_VERSION {minimum_version})"
    elif "no shared cipher" in text or "no suitable" in text:
        summary = "no cipher in common"
    elif "alert" in text:
        summary = _client_alert(text.split("alert", 1)[1].strip(), conn)
    elif (
        "wrong version number" in text
        or "http request" in text
        or "packet length too long" in text
        or "record layer failure" in text
        or "unexpected record" in text
    ):
        summary = "the client did not speak TLS after OK STARTTLS"
    else:
        summary = "handshake failed"
    return f"{summary} [OpenSSL: {raw}]"
