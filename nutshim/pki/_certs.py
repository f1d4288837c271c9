# -*- test-case-name: nutshim.test.test_pki -*-
"""
Building and inspecting the certificates of a small, private NUT PKI.

Why this module exists: NUT's TLS is only as good as the certificates it is
given, and the ones people usually make for it are the kind strict verifiers
(Python 3.13's default ``VERIFY_X509_STRICT``, OpenSSL's ``-x509_strict``,
NSS) reject or, worse, accept for the wrong reasons: one self-signed
certificate acting as CA and server at once, IP addresses written as DNS
names, no expiry.  Here the CA is separate from the leaves, every certificate
carries the extensions those verifiers look for (basicConstraints, keyUsage,
SKI/AKI, EKU, DNS *and* iPAddress SANs), lifetimes are finite, and the
helpers that answer "is this bundle usable?" are shared by the CLI
(``nutshim-pki``) and by the daemon's TLS code, so both judge a certificate
the same way.

Everything here is pure computation on ``cryptography`` objects: no files, no
printing, no clock other than an optional ``now`` (tests pass one to make
expired or not-yet-valid certificates).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "Bundle",
    "CertStatus",
    "LeafProfile",
    "PKIError",
    "PrivateKey",
    "KEY_TYPES",
    "PURPOSES",
    "certificate_status",
    "check_bundle",
    "days_left",
    "describe_key",
    "extended_key_usages",
    "fingerprint_sha256",
    "fingerprint_sha256_colons",
    "generate_key",
    "is_ca",
    "key_matches",
    "key_pem",
    "certificate_pem",
    "leaf_pem",
    "leaf_profile",
    "load_pem_bundle",
    "make_ca",
    "make_leaf",
    "name_to_text",
    "parse_sans",
    "purpose_of",
    "reissue_leaf",
    "subject_alt_names",
    "verify_issued_by",
]

#: The private key types a bundle may hold and a CA may sign with.  DSA is
#: left out on purpose: nothing modern should verify with it.
PrivateKey = Union[
    ec.EllipticCurvePrivateKey,
    rsa.RSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
]

#: Key types :func:`generate_key` makes: EC P-256 (the default: small, fast,
#: accepted everywhere NUT runs) or RSA 3072 (for peers without ECDSA).
KEY_TYPES = ("ec", "rsa")
RSA_BITS = 3072

#: What a leaf certificate is for, and the extended key usage that says so.
PURPOSES = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
}

#: Leaves are back-dated this much so that a peer whose clock is a little
#: behind does not see a "not yet valid" certificate just after issuance.
BACKDATE = timedelta(minutes=5)


class PKIError(Exception):
    """
    A certificate, key or request that cannot be used; the message is meant
    for a human and names the file or object concerned.
    """

    @property
    def message(self) -> str:
        """The human-readable explanation."""
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Bundle:
    """
    What a PEM file holds: its certificates in file order (leaf first, then
    the chain) and the private key, if there is one.
    """

    certificates: tuple[x509.Certificate, ...]
    key: PrivateKey | None = None

    @property
    def certificate(self) -> x509.Certificate:
        """
        The first (leaf) certificate.

        @raise PKIError: if the bundle holds no certificate.
        """
        if not self.certificates:
            raise PKIError("the bundle holds no certificate")
        return self.certificates[0]


@dataclass(frozen=True)
class CertStatus:
    """
    How a certificate stands at a given moment.

    @ivar state: one of C{"ok"}, C{"expiring"} (valid, but within the warning
        window), C{"expired"} or C{"not-yet-valid"}.
    @ivar days_left: whole days until C{not after}; negative once expired.
    """

    state: str
    days_left: int

    @property
    def ok(self) -> bool:
        """True if nothing needs doing about this certificate."""
        return self.state == "ok"


@dataclass(frozen=True)
class LeafProfile:
    """
    What a leaf certificate was issued as, so that it can be issued again
    (renewed) unchanged apart from key, serial and validity.
    """

    subject: x509.Name
    sans: tuple[x509.GeneralName, ...]
    usages: tuple[x509.ObjectIdentifier, ...]
    key_type: str
    lifetime_days: int


# ---------------------------------------------------------------------------
# small helpers


def _utc(now: datetime | None) -> datetime:
    """
    Return C{now} as an aware UTC datetime (the current time if C{None};
    naive datetimes are taken to be UTC already).
    """
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def _check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise PKIError(f"the lifetime must be a whole number of days >= 1, not {days!r}")
    if days > 36500:
        raise PKIError(f"a lifetime of {days} days is not finite enough (at most 36500)")


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | None:
    """EdDSA signs without a separate hash; everything else uses SHA-256."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    return hashes.SHA256()


def _spki(key: x509.Certificate | PrivateKey) -> bytes:
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _common_name(name: str) -> x509.Name:
    if not name or not name.strip():
        raise PKIError("the common name must not be empty")
    if len(name) > 64:
        raise PKIError(f"the common name {name!r} is longer than 64 characters")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _serial() -> int:
    """A random positive serial of (at most) 159 bits, never zero."""
    while True:
        serial = x509.random_serial_number()
        if serial > 0:
            return serial


def generate_key(key_type: str = "ec") -> PrivateKey:
    """
    Make a fresh private key: C{"ec"} (P-256) or C{"rsa"} (3072 bits).

    @raise PKIError: for any other C{key_type}.
    """
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise PKIError(f"unknown key type {key_type!r} (choose one of: {', '.join(KEY_TYPES)})")


def _key_type_of(key: object) -> str:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ec"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa"
    raise PKIError(f"cannot make a new key like {describe_key(key)}")


# ---------------------------------------------------------------------------
# subject alternative names

_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def _dns_name(text: str) -> str:
    """
    Normalise a host name for a DNS SAN: lower case, no trailing dot,
    internationalised names as A-labels, an optional leading C{*} label.

    @raise PKIError: if C{text} is not a host name.
    """
    name = text.strip().rstrip(".").lower()
    if not name:
        raise PKIError(f"{text!r} is not a host name")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise PKIError(f"{text!r} is not a host name") from None
    labels = name.split(".")
    if labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise PKIError(f"{text!r} is not a host name")
    return name


def _is_host_name(text: str) -> bool:
    try:
        _dns_name(text)
    except PKIError:
        return False
    return True


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def parse_sans(values: Sequence[str]) -> tuple[x509.GeneralName, ...]:
    """
    Turn names into SAN entries: anything that parses as an IPv4 or IPv6
    address (brackets allowed) becomes an C{iPAddress} entry, everything else
    a C{dNSName}.  Duplicates are dropped, order is kept.

    Writing an address as a DNS name is the classic mistake that makes
    verification by IP fail; this is why the split is done here, once.

    @raise PKIError: for a value that is neither an address nor a host name.
    """
    result: list[x509.GeneralName] = []
    for value in values:
        address = _ip(value)
        entry: x509.GeneralName
        if address is not None:
            entry = x509.IPAddress(address)
        else:
            entry = x509.DNSName(_dns_name(value))
        if entry not in result:
            result.append(entry)
    return tuple(result)


def subject_alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    """
    The SANs of C{cert} as text (C{"DNS:host"}, C{"IP:192.0.2.10"}, ...);
    empty if it has none.
    """
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    out: list[str] = []
    for entry in ext.value:
        if isinstance(entry, x509.DNSName):
            out.append(f"DNS:{entry.value}")
        elif isinstance(entry, x509.IPAddress):
            out.append(f"IP:{entry.value}")
        elif isinstance(entry, x509.RFC822Name):
            out.append(f"email:{entry.value}")
        elif isinstance(entry, x509.UniformResourceIdentifier):
            out.append(f"URI:{entry.value}")
        else:
            out.append(f"{type(entry).__name__}:{entry.value!r}")
    return tuple(out)


# ---------------------------------------------------------------------------
# building


def make_ca(
    common_name: str,
    days: int = 3650,
    key_type: str = "ec",
    now: datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """
    Make a self-signed CA able to issue leaves and nothing else:
    basicConstraints critical CA:TRUE with pathlen 0, keyUsage critical
    keyCertSign + cRLSign + digitalSignature, SKI (and AKI = SKI), a finite
    lifetime of C{days} days.

    @raise PKIError: for an empty or over-long name, a bad lifetime or key
        type.
    """
    _check_days(days)
    subject = _common_name(common_name)
    key = generate_key(key_type)
    start = _utc(now)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
        .sign(key, _signature_hash(key))
    )
    return cert, key


def _issuer_aki(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def _build_leaf(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    subject: x509.Name,
    sans: tuple[x509.GeneralName, ...],
    usages: tuple[x509.ObjectIdentifier, ...],
    days: int,
    key: PrivateKey,
    now: datetime | None,
) -> x509.Certificate:
    _check_days(days)
    if not is_ca(ca_cert):
        raise PKIError(f"{name_to_text(ca_cert.subject)} is not a CA certificate")
    if not key_matches(ca_cert, ca_key):
        raise PKIError("the CA key does not match the CA certificate")
    start = _utc(now)
    not_before = start - BACKDATE
    # A leaf cannot usefully outlive its issuer: clamp to the CA's expiry.
    not_after = min(start + timedelta(days=days), ca_cert.not_valid_after_utc)
    if not_after <= not_before:
        raise PKIError(
            f"the CA {name_to_text(ca_cert.subject)} expired on "
            f"{ca_cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(_issuer_aki(ca_cert), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    )
    if sans:
        # RFC 5280: critical only when the subject is empty, which ours never is.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(sans)), critical=False
        )
    return builder.sign(ca_key, _signature_hash(ca_key))


def make_leaf(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    name: str,
    sans: Sequence[str],
    purpose: str,
    days: int = 825,
    key_type: str = "ec",
    now: datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """
    Issue a leaf certificate with subject C{CN=name} from the CA.

    C{sans} are split into DNS and IP entries by :func:`parse_sans`.  C{name}
    is added too unless already given: as an IP entry if it is an address,
    as a DNS entry if it is a host name.  A server certificate must end up
    with at least one SAN; for a client certificate SANs are optional (and a
    C{name} that is not a host name, e.g. C{upsmon@box}, is only the CN).

    The lifetime is C{days}, clamped to the CA's own expiry.

    @param purpose: C{"server"} (EKU serverAuth) or C{"client"} (clientAuth).
    @param now: the issuance time; tests pass a past one to make expired
        certificates.

    @raise PKIError: for a bad name, SAN, purpose, lifetime, key type, or a
        CA that cannot issue.
    """
    if purpose not in PURPOSES:
        raise PKIError(f"unknown purpose {purpose!r} (choose one of: {', '.join(PURPOSES)})")
    subject = _common_name(name)
    entries = list(parse_sans(sans))
    address = _ip(name)
    own: x509.GeneralName | None = None
    if address is not None:
        own = x509.IPAddress(address)
    elif _is_host_name(name):
        own = x509.DNSName(_dns_name(name))
    if own is not None and own not in entries:
        entries.insert(0, own)
    if purpose == "server" and not entries:
        raise PKIError(
            f"{name!r} is not a host name or address: give the server's names "
            "and addresses as SANs"
        )
    key = generate_key(key_type)
    cert = _build_leaf(
        ca_cert, ca_key, subject, tuple(entries), (PURPOSES[purpose],), days, key, now
    )
    return cert, key


def leaf_profile(cert: x509.Certificate) -> LeafProfile:
    """
    What C{cert} was issued as (subject, SANs, EKU, key type, lifetime), for
    :func:`reissue_leaf`.

    @raise PKIError: if C{cert} is a CA or has a key type we cannot generate.
    """
    if is_ca(cert):
        raise PKIError(f"{name_to_text(cert.subject)} is a CA certificate, not a leaf")
    try:
        sans = tuple(
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        )
    except x509.ExtensionNotFound:
        sans = ()
    usages = extended_key_usages(cert) or (PURPOSES["server"],)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc - BACKDATE
    days = max(1, round(lifetime / timedelta(days=1)))
    return LeafProfile(
        subject=cert.subject,
        sans=sans,
        usages=usages,
        key_type=_key_type_of(cert.public_key()),
        lifetime_days=days,
    )


def reissue_leaf(
    old: x509.Certificate,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    days: int | None = None,
    now: datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """
    Renew C{old}: same subject, SANs and EKU, a new key of the same type,
    a new serial, and C{days} of validity (by default the old lifetime).

    @raise PKIError: as :func:`leaf_profile` and :func:`make_leaf`.
    """
    profile = leaf_profile(old)
    key = generate_key(profile.key_type)
    cert = _build_leaf(
        ca_cert,
        ca_key,
        profile.subject,
        profile.sans,
        profile.usages,
        profile.lifetime_days if days is None else days,
        key,
        now,
    )
    return cert, key


# ---------------------------------------------------------------------------
# serialising and loading


def certificate_pem(cert: x509.Certificate) -> bytes:
    """C{cert} as a PEM block."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """C{key} as an unencrypted PKCS#8 PEM block (file permissions protect it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def leaf_pem(
    cert: x509.Certificate, key: PrivateKey, chain: Sequence[x509.Certificate]
) -> bytes:
    """
    The single PEM file NUT's OpenSSL C{CERTFILE} and nutshim's upsd read:
    the leaf certificate, then the chain (issuer first), then the private key.
    """
    return b"".join(
        [certificate_pem(cert), *(certificate_pem(c) for c in chain), key_pem(key)]
    )


_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)
_KEY_LABELS = {b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY"}
_IGNORED_LABELS = {b"EC PARAMETERS", b"X509 CRL", b"CERTIFICATE REQUEST"}


def load_pem_bundle(data: bytes, source: str) -> Bundle:
    """
    Read every certificate and the (at most one, unencrypted) private key
    in PEM C{data}.  A DER certificate is accepted too, for C{show}.

    @param source: where C{data} came from (a file name), used in messages.

    @raise PKIError: naming C{source}, if the data is not PEM, a block is
        damaged, the key is encrypted or of an unsupported type, there is
        more than one key, or nothing usable at all.
    """
    certificates: list[x509.Certificate] = []
    key: PrivateKey | None = None
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        if b"-----BEGIN" in data:
            raise PKIError(f"{source}: damaged PEM (a BEGIN line without its END line)")
        try:
            return Bundle(certificates=(x509.load_der_x509_certificate(data),))
        except ValueError:
            raise PKIError(
                f"{source}: not a PEM file (no -----BEGIN ...----- line)"
            ) from None
    for index, block in enumerate(blocks, 1):
        label = block.group(1)
        text = label.decode("ascii")
        if label == b"CERTIFICATE":
            try:
                certificates.append(x509.load_pem_x509_certificate(block.group(0)))
            except ValueError as e:
                raise PKIError(
                    f"{source}: PEM block {index} is not a valid certificate ({e})"
                ) from None
        elif label in _KEY_LABELS:
            if key is not None:
                raise PKIError(f"{source}: more than one private key")
            try:
                loaded = serialization.load_pem_private_key(block.group(0), password=None)
            except TypeError:
                raise PKIError(f"{source}: the private key is encrypted") from None
            except (ValueError, UnsupportedAlgorithm) as e:
                raise PKIError(
                    f"{source}: PEM block {index} is not a valid private key ({e})"
                ) from None
            if not isinstance(
                loaded,
                (
                    ec.EllipticCurvePrivateKey,
                    rsa.RSAPrivateKey,
                    ed25519.Ed25519PrivateKey,
                    ed448.Ed448PrivateKey,
                ),
            ):
                raise PKIError(f"{source}: unsupported private key type {type(loaded).__name__}")
            key = loaded
        elif label == b"ENCRYPTED PRIVATE KEY":
            raise PKIError(
                f"{source}: the private key is encrypted "
                "(nutshim needs it unencrypted, protected by mode 0600)"
            )
        elif label in _IGNORED_LABELS:
            continue
        else:
            raise PKIError(f"{source}: unexpected PEM block {text!r}")
    if not certificates and key is None:
        raise PKIError(f"{source}: no certificate or private key found")
    return Bundle(certificates=tuple(certificates), key=key)


# ---------------------------------------------------------------------------
# inspecting


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """
    The pin form of the certificate's SHA-256 fingerprint:
    C{sha256:} followed by 64 lower-case hex digits, no colons.
    """
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def fingerprint_sha256_colons(cert: x509.Certificate) -> str:
    """
    The display form of the same fingerprint, as C{openssl x509 -fingerprint}
    and browsers show it: C{sha256:AB:CD:...} (upper case, colon-separated).
    """
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex(":").upper()


def name_to_text(name: x509.Name) -> str:
    """An X.509 name as RFC 4514 text, e.g. C{CN=nutshim CA}."""
    return name.rfc4514_string() or "(empty)"


def describe_key(key: object) -> str:
    """A short description of a public or private key: C{EC P-256}, C{RSA 3072}..."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {curve.get(key.curve.name, key.curve.name)}"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA {key.key_size}"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "Ed448"
    return type(key).__name__


def is_ca(cert: x509.Certificate) -> bool:
    """True if C{cert} says (basicConstraints) that it is a CA."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def extended_key_usages(cert: x509.Certificate) -> tuple[x509.ObjectIdentifier, ...]:
    """The EKU OIDs of C{cert}; empty if it has no EKU extension."""
    try:
        return tuple(
            cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    except x509.ExtensionNotFound:
        return ()


def purpose_of(cert: x509.Certificate) -> str:
    """
    C{"CA"}, C{"server"}, C{"client"}, C{"server+client"} or C{"any"} (a leaf
    without EKU).
    """
    if is_ca(cert):
        return "CA"
    usages = extended_key_usages(cert)
    found = [name for name, oid in PURPOSES.items() if oid in usages]
    return "+".join(found) if found else "any"


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """True if C{key} is the private half of C{cert}'s public key."""
    return _spki(cert) == _spki(key)


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if C{issuer} (its name and key) signed C{cert}."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def days_left(cert: x509.Certificate, now: datetime | None = None) -> int:
    """
    Days until C{cert} expires, rounded to the nearest whole day (so a fresh
    825-day certificate shows 825, not 824); negative once expired.  For
    display only: decisions use the exact times (L{certificate_status}).
    """
    remaining = cert.not_valid_after_utc - _utc(now)
    return round(remaining / timedelta(days=1))


def certificate_status(
    cert: x509.Certificate, warn_days: int = 30, now: datetime | None = None
) -> CertStatus:
    """
    Whether C{cert} is valid at C{now} and for more than C{warn_days} days.
    """
    moment = _utc(now)
    left = days_left(cert, moment)
    if moment < cert.not_valid_before_utc:
        return CertStatus("not-yet-valid", left)
    if moment >= cert.not_valid_after_utc:
        return CertStatus("expired", left)
    if cert.not_valid_after_utc - moment <= timedelta(days=warn_days):
        return CertStatus("expiring", left)
    return CertStatus("ok", left)


def check_bundle(bundle: Bundle, source: str, now: datetime | None = None) -> None:
    """
    Make sure C{bundle} can serve as a TLS identity right now: it has a
    certificate and a private key, the key belongs to the first certificate,
    and that certificate is within its validity period.

    @raise PKIError: naming C{source} and what is wrong.
    """
    if not bundle.certificates:
        raise PKIError(f"{source}: no certificate")
    if bundle.key is None:
        raise PKIError(f"{source}: no private key")
    cert = bundle.certificates[0]
    if not key_matches(cert, bundle.key):
        raise PKIError(
            f"{source}: the private key does not match the certificate "
            f"{name_to_text(cert.subject)}"
        )
    status = certificate_status(cert, 0, now)
    if status.state == "expired":
        raise PKIError(
            f"{source}: the certificate {name_to_text(cert.subject)} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if status.state == "not-yet-valid":
        raise PKIError(
            f"{source}: the certificate {name_to_text(cert.subject)} is not valid "
            f"before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
