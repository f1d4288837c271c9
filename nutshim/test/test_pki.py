# -*- test-case-name: nutshim.test.test_pki -*-
"""
Tests for L{nutshim.pki}: the certificates it builds must be accepted by the
strictest verifiers nutshim's peers use (Python's C{ssl} with
C{VERIFY_X509_STRICT}, C{openssl verify -x509_strict}, NSS's C{certutil}),
by host name and by IP address, and the C{nutshim-pki} command must manage
their files safely and fail with one clear line.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import shutil
import ssl
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twisted.trial.unittest import SynchronousTestCase

from nutshim.pki import _capath, _certs
from nutshim.pki._certs import (
    Bundle,
    PKIError,
    check_bundle,
    fingerprint_sha256,
    leaf_pem,
    load_pem_bundle,
    make_ca,
    make_leaf,
)
from nutshim.pki.cli import main, resolve_directory
from nutshim.testing import skip_or_fail

OPENSSL = shutil.which("openssl")
CERTUTIL = shutil.which("certutil")
PK12UTIL = shutil.which("pk12util")

# One CA for the in-memory tests: key generation is the slow part.
CA_CERT, CA_KEY = make_ca("nutshim test CA")


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """
    Run a TLS handshake between two contexts over memory BIOs (no sockets);
    verification errors propagate as L{ssl.SSLError}.
    """
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(50):
        for name, obj in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                obj.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        # Shuttle the bytes across.
        data = c_out.read()
        if data:
            s_in.write(data)
        data = s_out.read()
        if data:
            c_in.write(data)
        if all(done.values()) and not c_out.pending and not s_out.pending:
            break
    if not all(done.values()):
        raise AssertionError(f"handshake did not finish: {done}")
    # Prove the channel works both ways.
    client.write(b"VER\n")
    s_in.write(c_out.read())
    assert server.read(100) == b"VER\n"
    return client, server


def _strict_client(cafile: str | None = None, cadata: bytes | None = None) -> ssl.SSLContext:
    """A client context as strict as Python 3.13's default one."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile,
                                     cadata=cadata.decode("ascii") if cadata else None)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def _server_context(certfile: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(certfile)
    return ctx


class CATests(SynchronousTestCase):
    """
    L{make_ca} makes a CA with the extensions strict verifiers require.
    """

    def test_extensions(self) -> None:
        """
        basicConstraints is critical CA:TRUE pathlen 0, keyUsage is critical
        keyCertSign + cRLSign + digitalSignature, and there is an SKI.
        """
        bc = _ext(CA_CERT, x509.BasicConstraints)
        self.assertTrue(bc.critical)
        self.assertIsInstance(bc.value, x509.BasicConstraints)
        assert isinstance(bc.value, x509.BasicConstraints)
        self.assertTrue(bc.value.ca)
        self.assertEqual(bc.value.path_length, 0)
        ku = _ext(CA_CERT, x509.KeyUsage)
        self.assertTrue(ku.critical)
        assert isinstance(ku.value, x509.KeyUsage)
        self.assertTrue(ku.value.key_cert_sign)
        self.assertTrue(ku.value.crl_sign)
        self.assertTrue(ku.value.digital_signature)
        self.assertFalse(ku.value.key_encipherment)
        ski = _ext(CA_CERT, x509.SubjectKeyIdentifier)
        self.assertEqual(
            ski.value,
            x509.SubjectKeyIdentifier.from_public_key(CA_KEY.public_key()),
        )

    def test_self_signed_ec_p256(self) -> None:
        """
        The default CA key is EC P-256 and the certificate is self-signed
        with subject = issuer = the common name.
        """
        self.assertIsInstance(CA_KEY, ec.EllipticCurvePrivateKey)
        assert isinstance(CA_KEY, ec.EllipticCurvePrivateKey)
        self.assertEqual(CA_KEY.curve.name, "secp256r1")
        self.assertEqual(CA_CERT.subject, CA_CERT.issuer)
        self.assertEqual(
            CA_CERT.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            "nutshim test CA",
        )
        CA_CERT.verify_directly_issued_by(CA_CERT)

    def test_finite_lifetime(self) -> None:
        """
        The CA is valid from (about) C{now} for exactly C{days} days.
        """
        now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        cert, _ = make_ca("x", days=10, now=now)
        self.assertEqual(cert.not_valid_after_utc, now + timedelta(days=10))
        self.assertLessEqual(cert.not_valid_before_utc, now)
        self.assertGreater(cert.not_valid_before_utc, now - timedelta(hours=1))

    def test_rsa(self) -> None:
        """
        C{key_type="rsa"} makes an RSA 3072 CA signed with SHA-256.
        """
        cert, key = make_ca("rsa CA", key_type="rsa")
        self.assertIsInstance(key, rsa.RSAPrivateKey)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.assertEqual(key.key_size, 3072)
        self.assertIsInstance(cert.signature_hash_algorithm, hashes.SHA256)

    def test_bad_arguments(self) -> None:
        """
        An empty or over-long name, a lifetime below one day and an unknown
        key type are refused with L{PKIError}.
        """
        for kwargs in (
            {"common_name": ""},
            {"common_name": "x" * 65},
            {"common_name": "x", "days": 0},
            {"common_name": "x", "key_type": "dsa"},
        ):
            self.assertRaises(PKIError, make_ca, **kwargs)


class LeafTests(SynchronousTestCase):
    """
    L{make_leaf} issues server and client certificates that chain to the CA.
    """

    def test_server_extensions(self) -> None:
        """
        A server leaf has basicConstraints critical CA:FALSE, keyUsage
        critical digitalSignature only (EC), EKU serverAuth, AKI = the CA's
        SKI, its own SKI and subject CN=NAME.
        """
        cert, key = make_leaf(CA_CERT, CA_KEY, "ups1", ["192.0.2.10"], "server")
        bc = _ext(cert, x509.BasicConstraints)
        assert isinstance(bc.value, x509.BasicConstraints)
        self.assertTrue(bc.critical)
        self.assertFalse(bc.value.ca)
        ku = _ext(cert, x509.KeyUsage)
        assert isinstance(ku.value, x509.KeyUsage)
        self.assertTrue(ku.critical)
        self.assertTrue(ku.value.digital_signature)
        self.assertFalse(ku.value.key_encipherment)
        self.assertFalse(ku.value.key_cert_sign)
        eku = _ext(cert, x509.ExtendedKeyUsage)
        self.assertEqual(list(eku.value), [ExtendedKeyUsageOID.SERVER_AUTH])  # type: ignore[call-overload]
        aki = _ext(cert, x509.AuthorityKeyIdentifier).value
        assert isinstance(aki, x509.AuthorityKeyIdentifier)
        ca_ski = _ext(CA_CERT, x509.SubjectKeyIdentifier).value
        assert isinstance(ca_ski, x509.SubjectKeyIdentifier)
        self.assertEqual(aki.key_identifier, ca_ski.digest)
        ski = _ext(cert, x509.SubjectKeyIdentifier).value
        self.assertEqual(ski, x509.SubjectKeyIdentifier.from_public_key(key.public_key()))
        self.assertEqual(cert.subject.rfc4514_string(), "CN=ups1")
        self.assertEqual(cert.issuer, CA_CERT.subject)
        cert.verify_directly_issued_by(CA_CERT)

    def test_serial(self) -> None:
        """
        Serials are random, positive and at most 159 bits (20 octets DER).
        """
        serials = {
            make_leaf(CA_CERT, CA_KEY, "a", [], "server")[0].serial_number
            for _ in range(5)
        }
        self.assertEqual(len(serials), 5)
        for serial in serials:
            self.assertGreater(serial, 0)
            self.assertLess(serial, 2**159)

    def test_sans_split(self) -> None:
        """
        IPv4 and IPv6 addresses become iPAddress SANs, names become dNSName
        SANs, and NAME itself comes first as a DNS SAN.
        """
        cert, _ = make_leaf(
            CA_CERT, CA_KEY, "ups1",
            ["ups1.example.net", "192.0.2.10", "2001:db8::1", "[::1]"], "server",
        )
        san = _ext(cert, x509.SubjectAlternativeName).value
        assert isinstance(san, x509.SubjectAlternativeName)
        self.assertFalse(_ext(cert, x509.SubjectAlternativeName).critical)
        self.assertEqual(
            list(san),
            [
                x509.DNSName("ups1"),
                x509.DNSName("ups1.example.net"),
                x509.IPAddress(ipaddress.ip_address("192.0.2.10")),
                x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ],
        )

    def test_name_not_duplicated(self) -> None:
        """
        NAME already given as a SAN (in any case) is not added twice; an
        address as NAME becomes an iPAddress SAN, never a DNS one.
        """
        cert, _ = make_leaf(CA_CERT, CA_KEY, "UPS1", ["ups1"], "server")
        self.assertEqual(_certs.subject_alt_names(cert), ("DNS:ups1",))
        cert, _ = make_leaf(CA_CERT, CA_KEY, "192.0.2.7", [], "server")
        self.assertEqual(_certs.subject_alt_names(cert), ("IP:192.0.2.7",))
        self.assertEqual(cert.subject.rfc4514_string(), "CN=192.0.2.7")

    def test_rsa_key_encipherment(self) -> None:
        """
        An RSA leaf also has keyEncipherment.
        """
        cert, key = make_leaf(CA_CERT, CA_KEY, "ups1", [], "server", key_type="rsa")
        self.assertIsInstance(key, rsa.RSAPrivateKey)
        ku = _ext(cert, x509.KeyUsage).value
        assert isinstance(ku, x509.KeyUsage)
        self.assertTrue(ku.key_encipherment)
        self.assertTrue(ku.digital_signature)

    def test_rsa_ca_signs_ec_leaf(self) -> None:
        """
        An RSA CA can issue an EC leaf, and the result passes strict Python
        verification.
        """
        ca, ca_key = make_ca("rsa CA", key_type="rsa")
        cert, key = make_leaf(ca, ca_key, "ups1", [], "server")
        cert.verify_directly_issued_by(ca)
        path = self.mktemp()
        Path(path).write_bytes(leaf_pem(cert, key, [ca]))
        _handshake(_server_context(path),
                   _strict_client(cadata=_certs.certificate_pem(ca)), "ups1")

    def test_client(self) -> None:
        """
        A client leaf has EKU clientAuth; a NAME that is not a host name is
        only the CN, and without SANs there is no SAN extension.
        """
        cert, _ = make_leaf(CA_CERT, CA_KEY, "upsmon@box", [], "client")
        self.assertEqual(
            list(_ext(cert, x509.ExtendedKeyUsage).value),  # type: ignore[call-overload]
            [ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        self.assertEqual(cert.subject.rfc4514_string(), "CN=upsmon@box")
        self.assertRaises(
            x509.ExtensionNotFound,
            cert.extensions.get_extension_for_class, x509.SubjectAlternativeName,
        )
        self.assertEqual(_certs.purpose_of(cert), "client")

    def test_server_needs_a_san(self) -> None:
        """
        A server whose NAME is not a host name must be given SANs.
        """
        e = self.assertRaises(PKIError, make_leaf, CA_CERT, CA_KEY, "my ups", [], "server")
        self.assertIn("SAN", str(e))
        cert, _ = make_leaf(CA_CERT, CA_KEY, "my ups", ["ups.lan"], "server")
        self.assertEqual(_certs.subject_alt_names(cert), ("DNS:ups.lan",))

    def test_bad_arguments(self) -> None:
        """
        Unknown purposes and key types, bad lifetimes and SANs that are
        neither host names nor addresses raise L{PKIError}.
        """
        self.assertRaises(PKIError, make_leaf, CA_CERT, CA_KEY, "a", [], "both")
        self.assertRaises(PKIError, make_leaf, CA_CERT, CA_KEY, "a", [], "server", key_type="x")
        self.assertRaises(PKIError, make_leaf, CA_CERT, CA_KEY, "a", [], "server", days=0)
        for bad in ("", "two words", "a..b", "-x.example", "a/b"):
            self.assertRaises(PKIError, make_leaf, CA_CERT, CA_KEY, "a", [bad], "server")

    def test_not_a_ca(self) -> None:
        """
        A leaf cannot issue, and a CA key must match the CA certificate.
        """
        leaf, leaf_key = make_leaf(CA_CERT, CA_KEY, "a", [], "server")
        self.assertRaises(PKIError, make_leaf, leaf, leaf_key, "b", [], "server")
        _, other_key = make_ca("other")
        e = self.assertRaises(PKIError, make_leaf, CA_CERT, other_key, "b", [], "server")
        self.assertIn("does not match", str(e))

    def test_clamped_to_ca(self) -> None:
        """
        A leaf never outlives its CA; a CA that expired cannot issue.
        """
        ca, ca_key = make_ca("short", days=10)
        cert, _ = make_leaf(ca, ca_key, "a", [], "server", days=825)
        self.assertEqual(cert.not_valid_after_utc, ca.not_valid_after_utc)
        later = datetime.now(timezone.utc) + timedelta(days=11)
        e = self.assertRaises(PKIError, make_leaf, ca, ca_key, "a", [], "server", now=later)
        self.assertIn("expired", str(e))

    def test_now(self) -> None:
        """
        C{now} sets the issuance time, so tests can make expired certificates.
        """
        past = datetime(2020, 1, 1, tzinfo=timezone.utc)
        ca, ca_key = make_ca("old", now=past)
        cert, _ = make_leaf(ca, ca_key, "a", [], "server", days=30, now=past)
        self.assertEqual(cert.not_valid_after_utc, past + timedelta(days=30))
        self.assertEqual(_certs.certificate_status(cert).state, "expired")

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
    def test_any_address_is_an_ip_san(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> None:
        """
        Every IPv4 or IPv6 address, however written, becomes an iPAddress
        SAN and never a DNS one.
        """
        cert, _ = make_leaf(CA_CERT, CA_KEY, "ups", [str(address)], "server")
        san = _ext(cert, x509.SubjectAlternativeName).value
        assert isinstance(san, x509.SubjectAlternativeName)
        self.assertEqual(san.get_values_for_type(x509.IPAddress), [address])
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["ups"])


class PEMTests(SynchronousTestCase):
    """
    L{leaf_pem} writes and L{load_pem_bundle} reads the one-file layout.
    """

    def setUp(self) -> None:
        self.cert, self.key = make_leaf(CA_CERT, CA_KEY, "ups1", [], "server")

    def test_layout(self) -> None:
        """
        The file is the leaf, then the chain, then an unencrypted PKCS#8 key.
        """
        data = leaf_pem(self.cert, self.key, [CA_CERT])
        labels = [line for line in data.splitlines() if line.startswith(b"-----BEGIN")]
        self.assertEqual(
            labels,
            [b"-----BEGIN CERTIFICATE-----", b"-----BEGIN CERTIFICATE-----",
             b"-----BEGIN PRIVATE KEY-----"],
        )
        self.assertTrue(data.startswith(self.cert.public_bytes(serialization.Encoding.PEM)))

    def test_round_trip(self) -> None:
        """
        Loading the file gives back the certificates in order and the key.
        """
        bundle = load_pem_bundle(leaf_pem(self.cert, self.key, [CA_CERT]), "x.pem")
        self.assertIsInstance(bundle, Bundle)
        self.assertEqual(bundle.certificates, (self.cert, CA_CERT))
        assert bundle.key is not None
        self.assertTrue(_certs.key_matches(self.cert, bundle.key))
        self.assertEqual(bundle.certificate, self.cert)

    def test_traditional_key_and_der(self) -> None:
        """
        A traditional C{EC PRIVATE KEY} block is read; so is a bare DER
        certificate.
        """
        trad = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        bundle = load_pem_bundle(_certs.certificate_pem(self.cert) + trad, "t.pem")
        self.assertIsNotNone(bundle.key)
        der = self.cert.public_bytes(serialization.Encoding.DER)
        self.assertEqual(load_pem_bundle(der, "c.der").certificates, (self.cert,))

    def test_errors_name_the_source(self) -> None:
        """
        Garbage, damaged blocks, encrypted keys, two keys and an empty file
        raise L{PKIError} naming the source.
        """
        pem = _certs.certificate_pem(self.cert)
        key = _certs.key_pem(self.key)
        encrypted = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        damaged = pem.replace(pem[100:120], b"!!!!!!!!!!!!!!!!!!!!")
        for data in (b"", b"hello world", pem[:200], damaged, encrypted,
                     key + key, b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n"):
            e = self.assertRaises(PKIError, load_pem_bundle, data, "/some/file.pem")
            self.assertIn("/some/file.pem", str(e))

    def test_fingerprint(self) -> None:
        """
        The pin is C{sha256:} and the lower-case hex SHA-256 of the DER
        certificate; the display form is the same digest, upper case with
        colons.
        """
        digest = hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        self.assertEqual(fingerprint_sha256(self.cert), "sha256:" + digest)
        colons = _certs.fingerprint_sha256_colons(self.cert)
        self.assertEqual(colons.replace(":", "").lower(), "sha256" + digest)
        self.assertRegex(colons, r"^sha256:([0-9A-F]{2}:){31}[0-9A-F]{2}$")


class CheckBundleTests(SynchronousTestCase):
    """
    L{check_bundle} accepts only a usable, current identity.
    """

    def test_good(self) -> None:
        """
        A fresh leaf with its key passes.
        """
        cert, key = make_leaf(CA_CERT, CA_KEY, "a", [], "server")
        check_bundle(Bundle((cert, CA_CERT), key), "a.pem")

    def test_missing_key(self) -> None:
        """
        A bundle without key or without certificate fails.
        """
        cert, _ = make_leaf(CA_CERT, CA_KEY, "a", [], "server")
        e = self.assertRaises(PKIError, check_bundle, Bundle((cert,)), "a.pem")
        self.assertIn("a.pem", str(e))
        self.assertIn("no private key", str(e))
        self.assertRaises(PKIError, check_bundle, Bundle((), CA_KEY), "a.pem")

    def test_mismatch(self) -> None:
        """
        A key that is not the certificate's fails.
        """
        cert, _ = make_leaf(CA_CERT, CA_KEY, "a", [], "server")
        _, other = make_leaf(CA_CERT, CA_KEY, "b", [], "server")
        e = self.assertRaises(PKIError, check_bundle, Bundle((cert,), other), "a.pem")
        self.assertIn("does not match", str(e))

    def test_expired_and_not_yet_valid(self) -> None:
        """
        Expired and not-yet-valid certificates fail; C{now} moves the clock.
        """
        past = datetime(2020, 1, 1, tzinfo=timezone.utc)
        ca, ca_key = make_ca("old", now=past)
        cert, key = make_leaf(ca, ca_key, "a", [], "server", days=30, now=past)
        e = self.assertRaises(PKIError, check_bundle, Bundle((cert,), key), "a.pem")
        self.assertIn("expired", str(e))
        check_bundle(Bundle((cert,), key), "a.pem", now=past + timedelta(days=1))
        e = self.assertRaises(PKIError, check_bundle, Bundle((cert,), key), "a.pem",
                              now=past - timedelta(days=1))
        self.assertIn("not valid before", str(e))

    def test_status(self) -> None:
        """
        L{_certs.certificate_status} says "expiring" inside the window and
        counts days left.
        """
        cert, _ = make_leaf(CA_CERT, CA_KEY, "a", [], "server", days=10)
        self.assertEqual(_certs.certificate_status(cert, 30).state, "expiring")
        self.assertEqual(_certs.certificate_status(cert, 5).state, "ok")
        self.assertEqual(_certs.days_left(cert), 10)


class ReissueTests(SynchronousTestCase):
    """
    L{_certs.reissue_leaf} renews a leaf unchanged except key, serial, dates.
    """

    def test_same_profile(self) -> None:
        """
        Subject, SANs, EKU and key type are kept; key and serial are new;
        the lifetime defaults to the old one.
        """
        old, old_key = make_leaf(CA_CERT, CA_KEY, "c", ["192.0.2.1"], "client",
                                 days=100, key_type="rsa")
        new, new_key = _certs.reissue_leaf(old, CA_CERT, CA_KEY)
        self.assertEqual(new.subject, old.subject)
        self.assertEqual(_certs.subject_alt_names(new), _certs.subject_alt_names(old))
        self.assertEqual(_certs.extended_key_usages(new), (ExtendedKeyUsageOID.CLIENT_AUTH,))
        self.assertNotEqual(new.serial_number, old.serial_number)
        self.assertFalse(_certs.key_matches(new, old_key))
        self.assertIsInstance(new_key, rsa.RSAPrivateKey)
        self.assertEqual(_certs.days_left(new), 100)
        new, _ = _certs.reissue_leaf(old, CA_CERT, CA_KEY, days=7)
        self.assertEqual(_certs.days_left(new), 7)

    def test_not_a_ca(self) -> None:
        """
        A CA certificate is not renewed as a leaf.
        """
        self.assertRaises(PKIError, _certs.reissue_leaf, CA_CERT, CA_CERT, CA_KEY)


class StrictTLSTests(SynchronousTestCase):
    """
    A server using NAME.pem is accepted by a strict Python client that
    trusts only ca.pem, by DNS name and by IP address; OpenSSL's strict
    verifier agrees.
    """

    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()
        cert, key = make_leaf(CA_CERT, CA_KEY, "ups1",
                              ["ups1.example.net", "192.0.2.10", "::1"], "server")
        self.leaf_cert = cert
        self.pem = self.dir / "ups1.pem"
        self.pem.write_bytes(leaf_pem(cert, key, [CA_CERT]))
        self.ca = self.dir / "ca.pem"
        self.ca.write_bytes(_certs.certificate_pem(CA_CERT))

    def test_strict_flag_is_set(self) -> None:
        """
        The client context used here really is in strict mode.
        """
        self.assertTrue(_strict_client(str(self.ca)).verify_flags & ssl.VERIFY_X509_STRICT)

    def test_by_name(self) -> None:
        """
        Verification by host name (NAME and an extra DNS SAN) succeeds.
        """
        for host in ("ups1", "ups1.example.net"):
            client, _ = _handshake(_server_context(str(self.pem)),
                                   _strict_client(str(self.ca)), host)
            self.assertEqual(client.version(), "TLSv1.3")

    def test_by_ip(self) -> None:
        """
        Verification by IPv4 and IPv6 address succeeds (iPAddress SANs).
        """
        for host in ("192.0.2.10", "::1"):
            _handshake(_server_context(str(self.pem)), _strict_client(str(self.ca)), host)

    def test_wrong_name_or_ca(self) -> None:
        """
        A name or address not in the SANs, or another CA, is rejected.
        """
        for host in ("other.example.net", "192.0.2.11"):
            self.assertRaises(ssl.SSLCertVerificationError, _handshake,
                              _server_context(str(self.pem)), _strict_client(str(self.ca)),
                              host)
        other, _ = make_ca("other CA")
        self.assertRaises(ssl.SSLCertVerificationError, _handshake,
                          _server_context(str(self.pem)),
                          _strict_client(cadata=_certs.certificate_pem(other)), "ups1")

    def test_strict_mode_bites(self) -> None:
        """
        Strict mode really is stricter: a leaf without AKI (as hand-made
        certificates often are) passes a default client but not a strict
        one, so the acceptance tests above prove something.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ups1")]))
            .issuer_name(CA_CERT.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ups1")]), critical=False)
            .sign(CA_KEY, hashes.SHA256())
        )
        pem = self.dir / "no-aki.pem"
        pem.write_bytes(leaf_pem(cert, key, [CA_CERT]))
        lenient = ssl.create_default_context(cafile=str(self.ca))
        lenient.verify_flags &= ~ssl.VERIFY_X509_STRICT
        _handshake(_server_context(str(pem)), lenient, "ups1")
        self.assertRaises(ssl.SSLCertVerificationError, _handshake,
                          _server_context(str(pem)), _strict_client(str(self.ca)), "ups1")

    def test_mutual_tls(self) -> None:
        """
        A client certificate from the same CA satisfies a server that
        requires one (strictly verified too).
        """
        cert, key = make_leaf(CA_CERT, CA_KEY, "upsmon", [], "client")
        client_pem = self.dir / "upsmon.pem"
        client_pem.write_bytes(leaf_pem(cert, key, [CA_CERT]))
        server_ctx = _server_context(str(self.pem))
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
        server_ctx.load_verify_locations(str(self.ca))
        client_ctx = _strict_client(str(self.ca))
        client_ctx.load_cert_chain(str(client_pem))
        _, server = _handshake(server_ctx, client_ctx, "ups1")
        peer = server.getpeercert()
        assert peer is not None
        self.assertEqual(peer["subject"], ((("commonName", "upsmon"),),))

    def _openssl_verify(self, cert: x509.Certificate, *extra: str) -> subprocess.CompletedProcess[str]:
        if OPENSSL is None:
            skip_or_fail(self, "no openssl command")
        leaf = self.dir / f"leaf-{cert.serial_number}.pem"
        leaf.write_bytes(_certs.certificate_pem(cert))
        return subprocess.run(
            [OPENSSL, "verify", "-x509_strict", "-CAfile", str(self.ca), *extra, str(leaf)],
            capture_output=True, text=True, check=False,
        )

    def test_openssl_strict_server(self) -> None:
        """
        C{openssl verify -x509_strict -purpose sslserver} accepts the server
        leaf, also with host name and IP checks.
        """
        for extra in ((), ("-verify_hostname", "ups1.example.net"),
                      ("-verify_ip", "192.0.2.10")):
            done = self._openssl_verify(self.leaf_cert, "-purpose", "sslserver", *extra)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            self.assertIn(": OK", done.stdout)
        done = self._openssl_verify(self.leaf_cert, "-verify_ip", "192.0.2.99")
        self.assertNotEqual(done.returncode, 0)

    def test_openssl_strict_client(self) -> None:
        """
        OpenSSL accepts a client leaf for C{sslclient} and refuses it for
        C{sslserver} (the EKU is honoured).
        """
        cert, _ = make_leaf(CA_CERT, CA_KEY, "upsmon", [], "client")
        done = self._openssl_verify(cert, "-purpose", "sslclient")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        done = self._openssl_verify(cert, "-purpose", "sslserver")
        self.assertNotEqual(done.returncode, 0)


class CLITestCase(SynchronousTestCase):
    """
    Helpers to run L{main} in-process against a temporary directory.
    """

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).absolute()

    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        """
        Run C{nutshim-pki --dir <temp> argv...}; return status, stdout, stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = main(["--dir", str(self.dir), *argv])
        return status, out.getvalue(), err.getvalue()

    def ok(self, *argv: str) -> str:
        """Run the command, insist on success, return stdout."""
        status, out, err = self.run_cli(*argv)
        self.assertEqual(status, 0, f"{argv}: {out}{err}")
        return out

    def assertError(self, expected: str, *argv: str) -> str:
        """
        Run the command, insist on exit status 2 and exactly one stderr line
        containing C{expected} (no traceback); return that line.
        """
        status, out, err = self.run_cli(*argv)
        self.assertEqual(status, 2, f"{argv}: {out}{err}")
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertNotIn("Traceback", err)
        self.assertIn(expected, err)
        return err

    def mode(self, name: str) -> int:
        """The permission bits of a file in the directory."""
        return stat.S_IMODE((self.dir / name).stat().st_mode)


class CLIIssueTests(CLITestCase):
    """
    C{init}, C{server}, C{client} and C{renew}.
    """

    def test_init(self) -> None:
        """
        C{init} writes ca.pem (certificate only, 0644) and ca.key (0600) and
        says which directory it used.
        """
        out = self.ok("init", "--cn", "Test CA", "--days", "100")
        self.assertIn(f"certificate directory: {self.dir} (from --dir)", out)
        self.assertEqual(self.mode("ca.pem"), 0o644)
        self.assertEqual(self.mode("ca.key"), 0o600)
        ca = load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca.pem")
        self.assertIsNone(ca.key)
        self.assertEqual(len(ca.certificates), 1)
        self.assertEqual(ca.certificate.subject.rfc4514_string(), "CN=Test CA")
        self.assertEqual(_certs.days_left(ca.certificate), 100)
        key = load_pem_bundle((self.dir / "ca.key").read_bytes(), "ca.key").key
        assert key is not None
        self.assertTrue(_certs.key_matches(ca.certificate, key))

    def test_init_rsa(self) -> None:
        """
        C{init --key rsa} makes an RSA CA.
        """
        self.ok("init", "--key", "rsa")
        ca = load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca.pem")
        self.assertEqual(_certs.describe_key(ca.certificate.public_key()), "RSA 3072")

    def test_init_refuses_overwrite(self) -> None:
        """
        A second C{init} fails without --force; with --force it replaces the
        CA and keeps the old one as .bak.
        """
        self.ok("init")
        first = (self.dir / "ca.pem").read_bytes()
        self.assertError("--force", "init")
        self.assertEqual((self.dir / "ca.pem").read_bytes(), first)
        self.ok("init", "--force")
        self.assertNotEqual((self.dir / "ca.pem").read_bytes(), first)
        self.assertEqual((self.dir / "ca.pem.bak").read_bytes(), first)
        self.assertEqual(self.mode("ca.key.bak"), 0o600)

    def test_server(self) -> None:
        """
        C{server NAME} writes NAME.pem (mode 0600): leaf, CA, PKCS#8 key,
        with the SANs split into DNS and IP entries.
        """
        self.ok("init")
        out = self.ok("server", "ups1", "--san", "ups1.example.net", "--san", "192.0.2.10")
        self.assertEqual(self.mode("ups1.pem"), 0o600)
        data = (self.dir / "ups1.pem").read_bytes()
        self.assertIn(b"-----BEGIN PRIVATE KEY-----", data)
        bundle = load_pem_bundle(data, "ups1.pem")
        ca = load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca.pem").certificate
        self.assertEqual(bundle.certificates[1], ca)
        check_bundle(bundle, "ups1.pem")
        leaf = bundle.certificate
        self.assertEqual(
            _certs.subject_alt_names(leaf),
            ("DNS:ups1", "DNS:ups1.example.net", "IP:192.0.2.10"),
        )
        self.assertEqual(_certs.purpose_of(leaf), "server")
        self.assertEqual(_certs.days_left(leaf), 825)
        self.assertIn(fingerprint_sha256(leaf), out)
        self.assertIn(f"CERTFILE {self.dir / 'ups1.pem'}", out)

    def test_server_files_pass_strict_tls(self) -> None:
        """
        The files the CLI writes work as-is: Python's C{load_cert_chain} on
        NAME.pem serves a strict client trusting ca.pem, by name and by IP;
        C{openssl verify -x509_strict -purpose sslserver} accepts the leaf.
        """
        self.ok("init")
        self.ok("server", "ups1", "--san", "192.0.2.10", "--san", "2001:db8::10")
        pem, ca = str(self.dir / "ups1.pem"), str(self.dir / "ca.pem")
        for host in ("ups1", "192.0.2.10", "2001:db8::10"):
            _handshake(_server_context(pem), _strict_client(ca), host)
        if OPENSSL is None:
            skip_or_fail(self, "no openssl command")
        leaf = self.dir / "leaf-only.pem"
        leaf.write_bytes(_certs.certificate_pem(
            load_pem_bundle((self.dir / "ups1.pem").read_bytes(), "x").certificate))
        done = subprocess.run(
            [OPENSSL, "verify", "-x509_strict", "-CAfile", ca, "-purpose", "sslserver",
             "-verify_ip", "192.0.2.10", str(leaf)],
            capture_output=True, text=True, check=False,
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_client(self) -> None:
        """
        C{client NAME} issues a clientAuth certificate with CN=NAME.
        """
        self.ok("init")
        self.ok("client", "upsmon@box", "--days", "30")
        bundle = load_pem_bundle((self.dir / "upsmon@box.pem").read_bytes(), "x")
        self.assertEqual(_certs.purpose_of(bundle.certificate), "client")
        self.assertEqual(bundle.certificate.subject.rfc4514_string(), "CN=upsmon@box")
        self.assertEqual(_certs.days_left(bundle.certificate), 30)
        self.assertEqual(self.mode("upsmon@box.pem"), 0o600)

    def test_server_refuses_overwrite(self) -> None:
        """
        An existing NAME.pem is not replaced without --force.
        """
        self.ok("init")
        self.ok("server", "ups1")
        self.assertError("renew", "server", "ups1")
        self.ok("server", "ups1", "--force")
        self.assertTrue((self.dir / "ups1.pem.bak").exists())

    def test_no_ca(self) -> None:
        """
        Issuing without a CA is one clear error line, exit 2.
        """
        self.assertError("init", "server", "ups1")
        self.assertError("init", "renew", "ups1")

    def test_bad_names(self) -> None:
        """
        NAMEs that would escape the directory or clash with the CA, and bad
        SANs, are refused.
        """
        self.ok("init")
        for name in ("../evil", "ca", "a/b", ".hidden"):
            self.assertError("cannot name", "server", name)
        self.assertError("not a host name", "server", "ups1", "--san", "bad name")

    def test_renew(self) -> None:
        """
        C{renew NAME} reissues NAME.pem with the same subject, SANs and EKU,
        a new key and serial, and keeps NAME.pem.bak.
        """
        self.ok("init")
        self.ok("server", "ups1", "--san", "192.0.2.10", "--days", "60")
        old_data = (self.dir / "ups1.pem").read_bytes()
        old = load_pem_bundle(old_data, "old")
        self.ok("renew", "ups1")
        new = load_pem_bundle((self.dir / "ups1.pem").read_bytes(), "new")
        self.assertEqual((self.dir / "ups1.pem.bak").read_bytes(), old_data)
        self.assertEqual(self.mode("ups1.pem"), 0o600)
        self.assertEqual(self.mode("ups1.pem.bak"), 0o600)
        self.assertEqual(new.certificate.subject, old.certificate.subject)
        self.assertEqual(_certs.subject_alt_names(new.certificate),
                         _certs.subject_alt_names(old.certificate))
        self.assertEqual(_certs.purpose_of(new.certificate), "server")
        self.assertNotEqual(new.certificate.serial_number, old.certificate.serial_number)
        assert old.key is not None
        self.assertFalse(_certs.key_matches(new.certificate, old.key))
        check_bundle(new, "new")
        self.assertEqual(_certs.days_left(new.certificate), 60)
        self.ok("renew", "ups1", "--days", "400")
        new = load_pem_bundle((self.dir / "ups1.pem").read_bytes(), "new")
        self.assertEqual(_certs.days_left(new.certificate), 400)

    def test_renew_missing(self) -> None:
        """
        Renewing a NAME that was never issued is an error.
        """
        self.ok("init")
        self.assertError("no such file", "renew", "nothere")


class CLIInspectTests(CLITestCase):
    """
    C{show}, C{fingerprint} and C{check}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.ok("init")
        self.ok("server", "ups1", "--san", "192.0.2.10")
        self.leaf = load_pem_bundle((self.dir / "ups1.pem").read_bytes(), "x").certificate

    def test_show(self) -> None:
        """
        C{show} gives subject, issuer, SANs, validity with days left, key
        type and both fingerprint forms.
        """
        out = self.ok("show", str(self.dir / "ups1.pem"))
        self.assertIn("subject:     CN=ups1", out)
        self.assertIn("issuer:      CN=nutshim CA", out)
        self.assertIn("DNS:ups1, IP:192.0.2.10", out)
        self.assertIn("not before:", out)
        self.assertIn("(825 days left)", out)
        self.assertIn("key:         EC P-256", out)
        self.assertIn(_certs.fingerprint_sha256_colons(self.leaf), out)
        self.assertIn(fingerprint_sha256(self.leaf), out)
        self.assertIn("matches the (first) certificate", out)

    def test_show_finds_files_in_directory(self) -> None:
        """
        C{show NAME} and C{show NAME.pem} look in the certificate directory.
        """
        self.assertIn("CN=ups1", self.ok("show", "ups1"))
        self.assertIn("CN=ups1", self.ok("show", "ups1.pem"))

    def test_fingerprint(self) -> None:
        """
        C{fingerprint} prints only the pin of the first certificate.
        """
        out = self.ok("fingerprint", str(self.dir / "ups1.pem"))
        self.assertEqual(out, fingerprint_sha256(self.leaf) + "\n")
        self.assertRegex(out, r"^sha256:[0-9a-f]{64}\n$")

    def test_bad_files(self) -> None:
        """
        Missing, unreadable-as-PEM and key-only files are one-line errors.
        """
        self.assertError("no such file", "show", str(self.dir / "nope.pem"))
        junk = self.dir / "junk.txt"
        junk.write_text("not a certificate\n")
        self.assertError("not a PEM file", "show", str(junk))
        self.assertError("not a PEM file", "fingerprint", str(junk))
        self.assertError("no certificate", "fingerprint", str(self.dir / "ca.key"))
        self.assertError("is a directory", "show", str(self.dir))

    def test_check_ok(self) -> None:
        """
        A fresh directory checks clean: one line per certificate (the CA copy
        in each chain is not repeated), exit 0.
        """
        out = self.ok("check")
        lines = [line for line in out.splitlines() if line.startswith("ok")]
        self.assertEqual(len(lines), 2)
        self.assertIn("ca.pem", lines[0])
        self.assertIn("825 days left  ups1.pem", lines[1])

    def test_check_expiring(self) -> None:
        """
        A certificate expiring within --days (default 30) makes C{check}
        exit 1 with a line naming it.
        """
        self.ok("client", "soon", "--days", "10")
        status, out, err = self.run_cli("check")
        self.assertEqual(status, 1)
        self.assertIn("EXPIRING", out)
        self.assertIn("soon.pem: CN=soon expires within 30 days", err)
        self.assertNotIn("ups1", err)
        status, _, _ = self.run_cli("check", "--days", "5")
        self.assertEqual(status, 0)
        status, _, err = self.run_cli("check", "--days", "900")
        self.assertEqual(status, 1)
        self.assertIn("ups1.pem", err)

    def _write_leaf(self, name: str, cert: x509.Certificate,
                    key: _certs.PrivateKey, ca: x509.Certificate) -> None:
        path = self.dir / f"{name}.pem"
        path.write_bytes(leaf_pem(cert, key, [ca]))
        path.chmod(0o600)

    def test_check_expired(self) -> None:
        """
        An expired certificate (made with C{now=} in the past) fails the
        check, also when named explicitly.
        """
        past = datetime.now(timezone.utc) - timedelta(days=400)
        ca, ca_key = make_ca("old CA", now=past)
        cert, key = make_leaf(ca, ca_key, "stale", [], "server", days=30, now=past)
        self._write_leaf("stale", cert, key, ca)
        status, out, err = self.run_cli("check")
        self.assertEqual(status, 1)
        self.assertIn("EXPIRED", out)
        self.assertIn("stale.pem: CN=stale expired on", err)
        status, _, err = self.run_cli("check", str(self.dir / "stale.pem"))
        self.assertEqual(status, 1)
        self.assertIn("expired", err)
        status, _, _ = self.run_cli("check", str(self.dir / "ups1.pem"))
        self.assertEqual(status, 0)

    def test_check_key_mismatch(self) -> None:
        """
        A NAME.pem whose key is not its certificate's is flagged.
        """
        ca = load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca").certificate
        ca_key = load_pem_bundle((self.dir / "ca.key").read_bytes(), "k").key
        assert ca_key is not None
        cert, _ = make_leaf(ca, ca_key, "mixed", [], "server")
        _, other_key = make_leaf(ca, ca_key, "other", [], "server")
        self._write_leaf("mixed", cert, other_key, ca)
        status, _, err = self.run_cli("check")
        self.assertEqual(status, 1)
        self.assertIn("mixed.pem: the private key does not match", err)
        self.assertNotIn("ups1", err)

    def test_check_foreign_issuer(self) -> None:
        """
        After C{init --force}, leaves of the old CA are flagged for renewal.
        """
        self.ok("init", "--force")
        status, _, err = self.run_cli("check")
        self.assertEqual(status, 1)
        self.assertIn("ups1.pem: not issued by the current ca.pem", err)
        self.ok("renew", "ups1")
        self.ok("check")

    def test_check_bad_file(self) -> None:
        """
        A damaged *.pem is reported (one line) and makes the exit status 2.
        """
        (self.dir / "broken.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
        status, _, err = self.run_cli("check")
        self.assertEqual(status, 2)
        self.assertIn("broken.pem", err)
        self.assertNotIn("Traceback", err)

    def test_check_empty(self) -> None:
        """
        Checking a directory without certificates is an error, not a pass.
        """
        self.dir = Path(self.mktemp()).absolute()
        self.dir.mkdir()
        self.assertError("no certificates", "check")


class CLIMiscTests(CLITestCase):
    """
    Usage errors, help and the choice of directory.
    """

    def test_unknown_command(self) -> None:
        """
        An unknown command is one error line and exit 2.
        """
        self.assertError("invalid choice", "frobnicate")

    def test_no_command(self) -> None:
        """
        No command at all is a usage error.
        """
        self.assertError("required", )

    def test_bad_option_values(self) -> None:
        """
        Bad numbers and key types are usage errors, not tracebacks.
        """
        self.assertError("--days", "init", "--days", "zero")
        self.assertError("--days", "init", "--days", "-3")
        self.assertError("--key", "init", "--key", "dsa")

    def test_help(self) -> None:
        """
        C{--help} prints usage, mentions both fingerprint forms and exits 0.
        """
        status, out, err = self.run_cli("--help")
        self.assertEqual(status, 0)
        self.assertIn("export-nss", out)
        self.assertIn("sha256:AB:CD", out)
        self.assertIn("sha256:abcd", out)
        self.assertEqual(err, "")

    def test_dir_after_command(self) -> None:
        """
        C{--dir} may also follow the command.
        """
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        self.assertEqual(main(["init", "--dir", str(self.dir)]), 0)
        self.assertTrue((self.dir / "ca.pem").exists())

    def test_resolve_directory(self) -> None:
        """
        --dir wins; then ./certs in a nutshim checkout; then
        $NUT_CONFPATH/certs; then ./certs.
        """
        cwd = Path(self.mktemp()).absolute()
        cwd.mkdir()
        env = {"NUT_CONFPATH": "/etc/nut"}
        self.assertEqual(resolve_directory("/x", cwd, env)[0], Path("/x"))
        self.assertEqual(resolve_directory("rel", cwd, env)[0], cwd / "rel")
        self.assertEqual(resolve_directory(None, cwd, env),
                         (Path("/etc/nut/certs"), "from $NUT_CONFPATH"))
        self.assertEqual(resolve_directory(None, cwd, {})[0], cwd / "certs")
        (cwd / "setup.cfg").write_text("[metadata]\n")
        (cwd / "nutshim").mkdir()
        self.assertEqual(resolve_directory(None, cwd, env),
                         (cwd / "certs", "default in a nutshim checkout"))


class CLIExportNSSTests(CLITestCase):
    """
    C{export-nss} builds the NSS database Debian's NUT clients read.
    """

    def setUp(self) -> None:
        super().setUp()
        if CERTUTIL is None:
            skip_or_fail(self, "certutil (libnss3-tools) is not installed")
        self.ok("init")
        self.ok("server", "ups1", "--san", "192.0.2.10")
        self.nss = Path(self.mktemp()).absolute()

    def nicknames(self) -> str:
        """What C{certutil -L} lists."""
        assert CERTUTIL is not None
        return subprocess.run([CERTUTIL, "-L", "-d", f"sql:{self.nss}"],
                              capture_output=True, text=True, check=True).stdout

    def test_export(self) -> None:
        """
        The database lists nutshim-ca with trust C,, and the upsmon.conf
        lines are printed.
        """
        out = self.ok("export-nss", str(self.nss))
        listing = self.nicknames()
        self.assertRegex(listing, r"(?m)^nutshim-ca\s+C,,")
        self.assertIn(f"CERTPATH {self.nss}", out)
        self.assertIn("CERTVERIFY 1", out)
        self.assertIn("FORCESSL 1", out)
        self.assertIn('# CERTHOST ups1 "ups1" 1 1', out)

    def test_again_replaces_ca(self) -> None:
        """
        Running it again after C{init --force} leaves exactly the new CA.
        """
        self.ok("export-nss", str(self.nss))
        self.ok("init", "--force")
        self.ok("export-nss", str(self.nss))
        assert CERTUTIL is not None
        pem = subprocess.run([CERTUTIL, "-L", "-d", f"sql:{self.nss}", "-n", "nutshim-ca",
                              "-a"], capture_output=True, check=True).stdout
        exported = load_pem_bundle(pem, "nss").certificates
        current = load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca").certificate
        self.assertEqual(exported, (current,))

    def test_password_file(self) -> None:
        """
        With --password-file the database is protected by that password.
        """
        pw = Path(self.mktemp())
        pw.write_text("s3cret\n")
        self.ok("export-nss", str(self.nss), "--password-file", str(pw))
        self.assertRegex(self.nicknames(), r"(?m)^nutshim-ca\s+C,,")
        self.assertError("no such file", "export-nss", str(self.nss),
                         "--password-file", str(pw) + ".missing")

    def test_server_identity(self) -> None:
        """
        C{--server NAME} also imports NAME.pem's certificate and key, and
        prints the upsd.conf lines.
        """
        if PK12UTIL is None:
            skip_or_fail(self, "pk12util (libnss3-tools) is not installed")
        out = self.ok("export-nss", str(self.nss), "--server", "ups1")
        self.assertRegex(self.nicknames(), r"(?m)^ups1\s+u,u,u")
        self.assertIn('CERTIDENT "ups1" ""', out)
        assert CERTUTIL is not None
        keys = subprocess.run([CERTUTIL, "-K", "-d", f"sql:{self.nss}"],
                              capture_output=True, text=True, check=True).stdout
        self.assertIn("ups1", keys)
        # NSS itself accepts the leaf as an SSL server certificate (-u V)
        # chained to the imported CA, and not as a client one (-u C).
        valid = subprocess.run([CERTUTIL, "-V", "-u", "V", "-n", "ups1", "-d", f"sql:{self.nss}"],
                               capture_output=True, text=True, check=False)
        self.assertEqual(valid.returncode, 0, valid.stdout + valid.stderr)
        self.assertIn("certificate is valid", valid.stdout + valid.stderr)
        wrong = subprocess.run([CERTUTIL, "-V", "-u", "C", "-n", "ups1", "-d", f"sql:{self.nss}"],
                               capture_output=True, text=True, check=False)
        self.assertNotEqual(wrong.returncode, 0)

    def test_wrong_password_changes_nothing(self) -> None:
        """
        On a password-protected database a missing or wrong password is a
        clear error raised before anything is removed (NSS would let the
        deletion of the old entries through and refuse the import).
        """
        if PK12UTIL is None:
            skip_or_fail(self, "pk12util (libnss3-tools) is not installed")
        pw, bad = Path(self.mktemp()), Path(self.mktemp())
        pw.write_text("s3cret\n")
        bad.write_text("wrong\n")
        self.ok("export-nss", str(self.nss), "--password-file", str(pw), "--server", "ups1")
        before = self.nicknames()
        self.ok("renew", "ups1")
        self.assertError("password", "export-nss", str(self.nss), "--server", "ups1")
        self.assertError("password", "export-nss", str(self.nss), "--password-file", str(bad),
                         "--server", "ups1")
        self.assertEqual(self.nicknames(), before)

    def test_renewed_identity_replaces_key(self) -> None:
        """
        Exporting a renewed server identity leaves one certificate and one
        key under its nickname: the new ones.
        """
        if PK12UTIL is None:
            skip_or_fail(self, "pk12util (libnss3-tools) is not installed")
        assert CERTUTIL is not None
        self.ok("export-nss", str(self.nss), "--server", "ups1")
        self.ok("renew", "ups1")
        self.ok("export-nss", str(self.nss), "--server", "ups1")
        keys = subprocess.run([CERTUTIL, "-K", "-d", f"sql:{self.nss}"],
                              capture_output=True, text=True, check=True).stdout
        self.assertEqual(len([line for line in keys.splitlines() if "ups1" in line]), 1)
        pem = subprocess.run([CERTUTIL, "-L", "-d", f"sql:{self.nss}", "-n", "ups1", "-a"],
                             capture_output=True, check=True).stdout
        current = load_pem_bundle((self.dir / "ups1.pem").read_bytes(), "x").certificate
        self.assertEqual(load_pem_bundle(pem, "nss").certificates, (current,))

    def test_missing_certutil(self) -> None:
        """
        Without certutil on PATH the error says what to install.
        """
        empty = Path(self.mktemp())
        empty.mkdir()
        self.patch(os, "environ", {**os.environ, "PATH": str(empty)})
        self.assertError("libnss3-tools", "export-nss", str(self.nss))

    def test_missing_ca(self) -> None:
        """
        Without a CA there is nothing to export.
        """
        self.dir = Path(self.mktemp()).absolute()
        self.assertError("init", "export-nss", str(self.nss))


# ---------------------------------------------------------------------------
# the hashed CA directory (CERTPATH of NUT built with OpenSSL)


def _with_subject(subject: x509.Name) -> x509.Certificate:
    """A CA certificate with C{subject}, signed by the test CA (the subject
    hash depends on the subject alone)."""
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(CA_CERT.subject)
        .public_key(CA_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(CA_KEY, hashes.SHA256())  # type: ignore[arg-type]
    )


def _openssl_hash(cert: x509.Certificate) -> str:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, "x509", "-subject_hash", "-noout"],
                          input=_certs.certificate_pem(cert), capture_output=True, check=True)
    return done.stdout.decode("ascii").strip()


class SubjectHashTests(SynchronousTestCase):
    """
    L{_capath.subject_hash} is what C{openssl x509 -subject_hash} prints,
    for the subjects whose canonical form is easy to get wrong.
    """

    def setUp(self) -> None:
        if OPENSSL is None:
            skip_or_fail(self, "no openssl command")

    def test_like_openssl(self) -> None:
        """
        Plain, case- and space-varied, multi-attribute, multi-valued-RDN,
        non-ASCII and non-UTF8String subjects hash as OpenSSL hashes them.
        """
        ava = x509.NameAttribute
        subjects = [
            CA_CERT.subject,
            x509.Name([ava(NameOID.COMMON_NAME, "  Mixed   CASE  ca ")]),
            x509.Name([ava(NameOID.COUNTRY_NAME, "DE"), ava(NameOID.ORGANIZATION_NAME, "Ops"),
                       ava(NameOID.ORGANIZATIONAL_UNIT_NAME, "Power"),
                       ava(NameOID.COMMON_NAME, "nutshim CA (ups-1)")]),
            x509.Name([x509.RelativeDistinguishedName([
                ava(NameOID.ORGANIZATION_NAME, "Ops"), ava(NameOID.COMMON_NAME, "multi")])]),
            x509.Name([ava(NameOID.COMMON_NAME, "Zürich USV-Zentrale ÄÖÜ")]),
            x509.Name([ava(NameOID.COMMON_NAME, "printable", _ASN1Type.PrintableString),
                       ava(NameOID.EMAIL_ADDRESS, "Root@Example.ORG")]),
        ]
        for subject in subjects:
            cert = _with_subject(subject)
            self.assertEqual(_capath.subject_hash(cert), _openssl_hash(cert),
                             subject.rfc4514_string())

    def test_leading_zero(self) -> None:
        """
        A hash below 0x10000000 keeps its eight digits (C{0abcdef1}).
        """
        for n in range(400):
            cert = _with_subject(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ca {n}")]))
            digest = _capath.subject_hash(cert)
            if digest.startswith("0"):
                break
        else:
            self.fail("no hash with a leading zero in 400 names")
        self.assertRegex(digest, r"\A[0-9a-f]{8}\Z")
        self.assertEqual(digest, _openssl_hash(cert))


def _ca_named(cn: str) -> x509.Certificate:
    return make_ca(cn)[0]


def _entries(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


class CapathPlanTests(SynchronousTestCase):
    """
    L{_capath.plan_capath} and L{_capath.apply_plan}: collisions get
    C{.1}, an older CA of the same name is replaced in place, other CAs
    stay, and every hash stays numbered without gaps (OpenSSL stops at the
    first missing index).  A constant C{hash_of} forces collisions.
    """

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).absolute()
        self.a, self.b, self.a2 = _ca_named("A"), _ca_named("B"), _ca_named("A")

    def run_plan(self, wanted: list[x509.Certificate],
                 retire: tuple[x509.Certificate, ...] = ()) -> _capath.CapathPlan:
        entries = _capath.read_capath(self.dir)
        plan = _capath.plan_capath(entries, wanted, retire, hash_of=lambda c: "0000abcd")
        _capath.apply_plan(self.dir, plan, entries, _write_file)
        return plan

    def holds(self) -> dict[str, x509.Certificate]:
        return {name: x509.load_pem_x509_certificate(data)
                for name, data in _entries(self.dir).items()}

    def test_collision(self) -> None:
        """
        Two CAs with one hash: C{HASH.0} and C{HASH.1}, in order.
        """
        plan = self.run_plan([self.a, self.b])
        self.assertEqual(self.holds(), {"0000abcd.0": self.a, "0000abcd.1": self.b})
        self.assertEqual([n for n, _ in plan.added], ["0000abcd.0", "0000abcd.1"])

    def test_other_ca_kept(self) -> None:
        """
        A CA already there with another subject is kept; ours gets the
        next index.
        """
        self.run_plan([self.b])
        plan = self.run_plan([self.a])
        self.assertEqual(self.holds(), {"0000abcd.0": self.b, "0000abcd.1": self.a})
        self.assertEqual([e.name for e in plan.others], ["0000abcd.0"])

    def test_same_again(self) -> None:
        """
        Exporting the same CA again changes nothing.
        """
        self.run_plan([self.a])
        before = _entries(self.dir)
        plan = self.run_plan([self.a])
        self.assertFalse(plan.changed)
        self.assertEqual(plan.present, (("0000abcd.0", self.a),))
        self.assertEqual(_entries(self.dir), before)

    def test_replaced_in_place(self) -> None:
        """
        A new CA with the subject of one already there replaces it in its
        slot (the old one is no longer trusted).
        """
        self.run_plan([self.a, self.b])
        plan = self.run_plan([self.a2])
        self.assertEqual(self.holds(), {"0000abcd.0": self.a2, "0000abcd.1": self.b})
        self.assertEqual(plan.replaced, (("0000abcd.0", self.a),))

    def test_no_gaps(self) -> None:
        """
        Removing an entry in the middle renumbers the ones after it.
        """
        self.run_plan([self.b, self.a])
        plan = self.run_plan([], retire=(self.b,))
        self.assertEqual(self.holds(), {"0000abcd.0": self.a})
        self.assertEqual(plan.replaced, (("0000abcd.0", self.b),))

    def test_symlinks_of_openssl_rehash_kept(self) -> None:
        """
        A link made by C{openssl rehash} stays a link (moved if needed).
        """
        self.dir.mkdir()
        (self.dir / "b.pem").write_bytes(_certs.certificate_pem(self.b))
        (self.dir / "0000abcd.0").write_bytes(_certs.certificate_pem(self.a))
        os.symlink("b.pem", self.dir / "0000abcd.1")
        plan = self.run_plan([], retire=(self.a,))
        self.assertEqual([e.name for e in plan.others], ["0000abcd.0"])
        self.assertTrue((self.dir / "0000abcd.0").is_symlink())
        self.assertEqual(os.readlink(self.dir / "0000abcd.0"), "b.pem")
        self.assertFalse((self.dir / "0000abcd.1").exists())

    def test_unreadable_entries_refused(self) -> None:
        """
        A dangling link or a non-PEM C{HASH.N} would end OpenSSL's lookup
        there: it is an error naming it, and nothing is changed.
        """
        self.dir.mkdir()
        os.symlink("gone.pem", self.dir / "0000abcd.0")
        self.assertRaisesRegex(PKIError, "0000abcd.0: a dangling link", _capath.read_capath, self.dir)
        os.unlink(self.dir / "0000abcd.0")
        (self.dir / "0000abcd.0").write_bytes(b"\x30\x03\x02\x01\x00")
        self.assertRaisesRegex(PKIError, "0000abcd.0: not a PEM certificate",
                               _capath.read_capath, self.dir)
        (self.dir / "ca.pem.txt").write_bytes(b"not a hash name: ignored")
        (self.dir / "0000abcd.0").unlink()
        self.assertEqual(_capath.read_capath(self.dir), ())
        file = self.dir / "ca.pem.txt"
        self.assertRaisesRegex(PKIError, "not a directory", _capath.read_capath, file)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


def _tls_server_for(pem: Path) -> ssl.SSLContext:
    return _server_context(str(pem))


class CLIExportCapathTests(CLITestCase):
    """
    C{init} and C{export-capath} write the hashed CA directory that NUT
    built with OpenSSL needs as C{CERTPATH}, as regular files.
    """

    def setUp(self) -> None:
        super().setUp()
        if OPENSSL is None:
            skip_or_fail(self, "no openssl command")
        self.ok("init", "--cn", "Site CA")
        self.ok("server", "ups1", "--san", "192.0.2.10")
        self.ca = load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca").certificate

    def leaf(self, name: str = "ups1") -> Path:
        """The leaf certificate of NAME.pem alone, as a file."""
        cert = load_pem_bundle((self.dir / f"{name}.pem").read_bytes(), name).certificate
        path = Path(self.mktemp())
        path.write_bytes(_certs.certificate_pem(cert))
        return path

    def openssl_verify(self, capath: Path, leaf: Path) -> subprocess.CompletedProcess[str]:
        """C{openssl verify -CApath} with no other trust store at all."""
        assert OPENSSL is not None
        return subprocess.run(
            [OPENSSL, "verify", "-no-CAfile", "-no-CAstore", "-CApath", str(capath),
             "-purpose", "sslserver", str(leaf)],
            capture_output=True, text=True, check=False)

    def test_init_writes_it(self) -> None:
        """
        C{init} leaves capath/HASH.0: a regular 0644 copy of ca.pem named
        by C{openssl x509 -subject_hash}, as C{openssl rehash} would name it.
        """
        name = f"{_openssl_hash(self.ca)}.0"
        entry = self.dir / "capath" / name
        self.assertEqual(_entries(self.dir / "capath"), {name: (self.dir / "ca.pem").read_bytes()})
        self.assertFalse(entry.is_symlink())
        self.assertEqual(stat.S_IMODE(entry.stat().st_mode), 0o644)
        self.assertEqual(stat.S_IMODE((self.dir / "capath").stat().st_mode), 0o755)
        assert OPENSSL is not None
        rehashed = Path(self.mktemp())
        rehashed.mkdir()
        shutil.copy(self.dir / "ca.pem", rehashed / "ca.pem")
        subprocess.run([OPENSSL, "rehash", str(rehashed)], check=True, capture_output=True)
        self.assertIn(name, os.listdir(rehashed))

    def test_openssl_verify(self) -> None:
        """
        C{openssl verify -CApath} accepts the server certificate with the
        exported directory, also copied to another host (self-contained:
        the certificate directory gone); a directory holding ca.pem under
        its own name does not.
        """
        out = Path(self.mktemp()).absolute()
        text = self.ok("export-capath", str(out))
        self.assertIn(f"CERTPATH {out}\n", text)
        leaf = self.leaf()
        done = self.openssl_verify(out, leaf)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        copied = Path(self.mktemp()).absolute()
        shutil.copytree(out, copied)
        shutil.rmtree(self.dir)
        done = self.openssl_verify(copied, leaf)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        unhashed = Path(self.mktemp())
        unhashed.mkdir()
        (unhashed / "ca.pem").write_bytes(_certs.certificate_pem(self.ca))
        self.assertNotEqual(self.openssl_verify(unhashed, leaf).returncode, 0)

    def test_like_nut_openssl_client(self) -> None:
        """
        A client that loads CERTPATH as NUT's OpenSSL build does
        (C{SSL_CTX_load_verify_locations(ctx, NULL, CERTPATH)}, which is
        what C{load_verify_locations(capath=...)} calls) verifies the
        server with the directory, and verifies nothing with ca.pem itself.
        """
        self.ok("export-capath")

        def client(capath: Path) -> ssl.SSLContext:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False  # NUT 2.8.5 (OpenSSL) checks no name
            ctx.load_verify_locations(capath=str(capath))
            return ctx

        server = _tls_server_for(self.dir / "ups1.pem")
        _handshake(server, client(self.dir / "capath"), "ups1")
        with self.assertRaises(ssl.SSLCertVerificationError):
            _handshake(server, client(self.dir / "ca.pem"), "ups1")

    def test_nut_upsmon_reads_it(self) -> None:
        """
        nutshim's own nut-upsmon takes the same directory as CERTPATH.
        """
        from nutshim.upsmon.tls import load_ca_directory

        self.assertEqual(load_ca_directory(str(self.dir / "capath")), [self.ca])

    def test_output(self) -> None:
        """
        The command prints the upsmon.conf lines and the warning that NUT's
        OpenSSL build checks no host name.
        """
        out = self.ok("export-capath")
        capath = self.dir / "capath"
        self.assertIn(f"CA directory: {capath} (up to date;", out)
        self.assertIn(f"unchanged {capath}/{_openssl_hash(self.ca)}.0: CN=Site CA", out)
        self.assertIn("checked: OpenSSL's directory lookup finds the CA there", out)
        for line in (f"    CERTPATH {capath}", "    CERTVERIFY 1", "    FORCESSL 1"):
            self.assertIn(line + "\n", out)
        self.assertIn("not the\nhost name", out)

    def test_several_servers_and_a_new_ca(self) -> None:
        """
        One client directory collects the CAs of two sites; after
        C{init --force} at one site (same CA name), exporting again
        replaces that site's old CA and keeps the other.
        """
        out = Path(self.mktemp()).absolute()
        other = Path(self.mktemp()).absolute()
        self.assertEqual(main(["--dir", str(other), "init", "--cn", "Other site CA"]), 0)
        self.assertEqual(main(["--dir", str(other), "export-capath", str(out)]), 0)
        old_leaf = self.leaf()
        text = self.ok("export-capath", str(out))
        self.assertIn("also trusted there: ", text)
        self.assertIn("CN=Other site CA", text)
        self.assertEqual(len(os.listdir(out)), 2)
        self.ok("init", "--force", "--cn", "Site CA")
        self.ok("renew", "ups1")
        text = self.ok("export-capath", str(out))
        self.assertIn("superseded by ca.pem (no longer trusted)", text)
        self.assertEqual(len(os.listdir(out)), 2)
        self.assertEqual(self.openssl_verify(out, self.leaf()).returncode, 0)
        self.assertNotEqual(self.openssl_verify(out, old_leaf).returncode, 0)

    def test_init_force_renamed_ca(self) -> None:
        """
        C{init --force} under another name leaves only the new CA in
        capath/ (the old one has another hash and would stay trusted).
        """
        self.ok("init", "--force", "--cn", "Renamed CA")
        ca = load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca").certificate
        self.assertEqual(os.listdir(self.dir / "capath"), [f"{_openssl_hash(ca)}.0"])

    def test_errors(self) -> None:
        """
        No CA, an OUTDIR that is a file, an entry OpenSSL cannot read: one
        line, exit 2, nothing written.
        """
        file = Path(self.mktemp())
        file.write_text("x")
        self.assertError("not a directory", "export-capath", str(file))
        junk = Path(self.mktemp())
        junk.mkdir()
        (junk / f"{_openssl_hash(self.ca)}.0").write_text("junk\n")
        self.assertError("not a PEM certificate", "export-capath", str(junk))
        self.assertEqual(len(os.listdir(junk)), 1)
        (self.dir / "capath" / "deadbeef.0").write_text("junk\n")
        self.assertError("deadbeef.0: not a PEM certificate", "init", "--force")
        self.assertEqual(load_pem_bundle((self.dir / "ca.pem").read_bytes(), "ca").certificate,
                         self.ca)
        self.dir = Path(self.mktemp()).absolute()
        self.assertError("init", "export-capath")

    def test_writable_directory_warned(self) -> None:
        """
        A directory others can write to is a warning: they could add a CA.
        """
        out = Path(self.mktemp()).absolute()
        out.mkdir()
        os.chmod(out, 0o777)
        status, text, err = self.run_cli("export-capath", str(out))
        self.assertEqual(status, 0, err)
        self.assertIn("writable by group or others", err)

    def test_help(self) -> None:
        """
        C{--help} lists the command and the capath/ file; its own help
        names OUTDIR.
        """
        status, out, _ = self.run_cli("--help")
        self.assertIn("export-capath", out)
        self.assertIn("capath/HASH.0", out)
        status, out, _ = self.run_cli("export-capath", "--help")
        self.assertEqual(status, 0)
        self.assertIn("OUTDIR", out)
        self.assertIn("openssl rehash", out)
