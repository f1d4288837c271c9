# -*- test-case-name: nutshim.test.test_pki -*-
"""
A small private PKI for NUT over TLS: a CA kept apart from its leaves, leaf
certificates that strict verifiers (Python 3.13, OpenSSL -x509_strict, NSS)
accept by host name and by IP address, and the checks the daemon and the
C{nutshim-pki} command share.

Why a package: the daemon's TLS code needs the certificate helpers
(L{load_pem_bundle}, L{check_bundle}, L{fingerprint_sha256}, and
L{make_ca}/L{make_leaf} for tests) without the command-line tool, and the tool
(L{nutshim.pki.cli}) needs them without the daemon.
"""

from ._certs import (
    Bundle,
    PKIError,
    PrivateKey,
    check_bundle,
    fingerprint_sha256,
    leaf_pem,
    load_pem_bundle,
    make_ca,
    make_leaf,
)

__all__ = [
    "Bundle",
    "PKIError",
    "PrivateKey",
    "check_bundle",
    "fingerprint_sha256",
    "leaf_pem",
    "load_pem_bundle",
    "make_ca",
    "make_leaf",
]
