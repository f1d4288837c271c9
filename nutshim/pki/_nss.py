# -*- test-case-name: nutshim.test.test_pki -*-
"""
Putting nutshim's CA (and optionally a server identity) into an NSS database.

Why: Debian's NUT is built with NSS, not OpenSSL, so its upsmon/upsc never
read a PEM file: to make them verify nutshim's certificate, the CA has to be
imported, as a trusted peer CA, into an NSS database that upsmon.conf's
C{CERTPATH} names; a Debian (NSS) upsd likewise finds its own certificate and
key in such a database (upsd.conf C{CERTPATH} + C{CERTIDENT}).  NSS's own
tools, C{certutil} and C{pk12util} from C{libnss3-tools}, are the only
supported way to write those databases, so this module drives them.

No printing here: failures raise L{PKIError} carrying the tool's complaint.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ._certs import PKIError, PrivateKey, load_pem_bundle

__all__ = [
    "CA_NICKNAME",
    "check_password",
    "find_tool",
    "create_database",
    "database_exists",
    "import_ca",
    "import_identity",
    "list_certificates",
    "list_nicknames",
]

#: The nickname the CA gets in the database (what C{certutil -L} shows).
CA_NICKNAME = "nutshim-ca"

_INSTALL_HINT = (
    "install NSS's tools (Debian/Ubuntu: apt install libnss3-tools; "
    "Fedora/RHEL: dnf install nss-tools)"
)


def find_tool(name: str) -> str:
    """
    The path of an NSS tool (C{certutil}, C{pk12util}).

    @raise PKIError: if it is not on C{PATH}.
    """
    path = shutil.which(name)
    if path is None:
        raise PKIError(f"{name} not found: {_INSTALL_HINT}")
    return path


def _run(
    argv: Sequence[str], what: str, stdin: bytes | None = None, tolerate: str | None = None
) -> str:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin if stdin is not None else b"",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
            # No controlling terminal: NSS would otherwise ask for a missing
            # database password on /dev/tty, behind our captured output.
            start_new_session=True,
        )
    except OSError as e:
        raise PKIError(f"cannot run {argv[0]}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise PKIError(f"{what}: {Path(argv[0]).name} did not finish in 120 s") from None
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        complaint = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
        if tolerate is not None and tolerate in complaint:
            return output
        first = complaint.splitlines()[-1] if complaint else f"exit status {done.returncode}"
        if "SEC_ERROR_BAD_PASSWORD" in complaint or "terminal for read" in complaint:
            first = ("the database is protected by a password: give the right one "
                     "with --password-file")
        raise PKIError(f"{what} failed: {first}")
    return output


def _db(directory: Path) -> str:
    return f"sql:{directory}"


def database_exists(directory: Path) -> bool:
    """True if C{directory} already holds an NSS (sql) database."""
    return (directory / "cert9.db").exists() and (directory / "key4.db").exists()


def create_database(
    certutil: str, directory: Path, password_file: Path | None = None
) -> bool:
    """
    Create an NSS database in C{directory} (made if missing, mode 0700),
    with an empty password or the one in C{password_file}.  An existing
    database is left alone.

    @return: True if a database was created.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if database_exists(directory):
        return False
    argv = [certutil, "-N", "-d", _db(directory)]
    if password_file is None:
        argv.append("--empty-password")
    else:
        argv += ["-f", str(password_file)]
    _run(argv, f"creating the NSS database in {directory}")
    return True


def list_certificates(certutil: str, directory: Path) -> dict[str, str]:
    """
    The certificates in the database (C{certutil -L}): nickname to trust
    flags (e.g. C{"C,,"}, C{"u,u,u"}).
    """
    output = _run(
        [certutil, "-L", "-d", _db(directory)], f"listing the NSS database {directory}"
    )
    found: dict[str, str] = {}
    for line in output.splitlines():
        # Data lines are "<nickname><spaces><trust flags like C,, or u,u,u>".
        stripped = line.rstrip()
        if not stripped or stripped.startswith("Certificate Nickname"):
            continue
        nickname, _, trust = stripped.rpartition(" ")
        if trust.count(",") == 2 and nickname.strip():
            found[nickname.strip()] = trust
    return found


def list_nicknames(certutil: str, directory: Path) -> list[str]:
    """The nicknames of the certificates in the database."""
    return list(list_certificates(certutil, directory))


def _certificates(
    certutil: str, directory: Path, nickname: str
) -> tuple[x509.Certificate, ...]:
    output = _run(
        [certutil, "-L", "-d", _db(directory), "-n", nickname, "-a"],
        f"reading {nickname!r} from {directory}",
    )
    source = f"{directory} {nickname}"
    return load_pem_bundle(output.encode("ascii", "replace"), source).certificates


def check_password(certutil: str, directory: Path, password_file: Path | None) -> None:
    """
    Prove that the database opens with C{password_file} (or without a
    password), before anything is changed: NSS lets some changes (deleting
    a certificate) through without it and refuses others (setting trust,
    importing a key), which would leave a half-done import.

    @raise PKIError: if the password is missing or wrong.
    """
    argv = [certutil, "-K", "-d", _db(directory)]
    if password_file is not None:
        argv += ["-f", str(password_file)]
    # Listing the private keys needs a login; an empty list is no error here.
    _run(argv, f"opening the NSS database {directory}", tolerate="no keys found")


def _delete_all(
    certutil: str,
    directory: Path,
    nickname: str,
    password_file: Path | None,
    with_key: bool = False,
) -> None:
    # One certificate per call, and a nickname may name several.  -F also
    # removes the private key, so that no orphaned key is left behind.
    for _ in range(16):
        if nickname not in list_nicknames(certutil, directory):
            return
        argv = [certutil, "-F" if with_key else "-D", "-d", _db(directory), "-n", nickname]
        if password_file is not None:
            argv += ["-f", str(password_file)]
        _run(argv, f"removing the old {nickname!r} from {directory}")


def import_ca(
    certutil: str,
    directory: Path,
    ca_pem: Path,
    password_file: Path | None = None,
    nickname: str = CA_NICKNAME,
) -> None:
    """
    Import C{ca_pem} as C{nickname}, trusted to issue TLS server certificates
    (C{-t "C,,"}), replacing any other certificate under that nickname (a
    re-run after C{init --force} must not leave the old CA trusted).

    The database password is proven first (L{check_password}): a wrong or
    missing one fails before anything is removed.
    """
    try:
        wanted = load_pem_bundle(ca_pem.read_bytes(), str(ca_pem)).certificates[:1]
    except OSError as e:
        raise PKIError(f"cannot read {ca_pem}: {e.strerror or e}") from None
    auth = [] if password_file is None else ["-f", str(password_file)]
    db = _db(directory)
    check_password(certutil, directory, password_file)
    if nickname in list_nicknames(certutil, directory):
        if _certificates(certutil, directory, nickname) == wanted:
            _run([certutil, "-M", "-d", db, "-n", nickname, "-t", "C,,", *auth],
                 f"setting the trust of {nickname!r} in {directory}")
            return
        _delete_all(certutil, directory, nickname, password_file)
    _run([certutil, "-A", "-d", db, "-n", nickname, "-t", "C,,", "-i", str(ca_pem), *auth],
         f"importing {ca_pem} into {directory}")
    trust = list_certificates(certutil, directory).get(nickname)
    if trust is None or not trust.startswith("C"):
        raise PKIError(f"{directory}: {nickname!r} was imported but is not trusted "
                       f"(trust flags {trust!r})")


def import_identity(
    pk12util: str,
    certutil: str,
    directory: Path,
    nickname: str,
    cert: x509.Certificate,
    key: PrivateKey,
    chain: Sequence[x509.Certificate],
    password_file: Path | None = None,
) -> None:
    """
    Import a certificate and its private key (as a PKCS#12 file handed to
    C{pk12util}) under C{nickname}, replacing an older one of that name, so
    that an NSS upsd can use it with C{CERTIDENT "nickname" "password"}.

    The database password is proven before anything is removed.
    """
    check_password(certutil, directory, password_file)
    _delete_all(certutil, directory, nickname, password_file, with_key=True)
    transport = secrets.token_urlsafe(24)
    blob = pkcs12.serialize_key_and_certificates(
        nickname.encode("utf-8"),
        key,
        cert,
        list(chain) or None,
        # PBES2/AES-256 + SHA-256 MAC: NSS >= 3.31 reads it.
        serialization.BestAvailableEncryption(transport.encode("ascii")),
    )
    with tempfile.TemporaryDirectory(prefix="nutshim-pki-") as scratch:
        p12 = Path(scratch) / "identity.p12"
        pw = Path(scratch) / "p12.pw"
        for path, data in ((p12, blob), (pw, transport.encode("ascii") + b"\n")):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        argv = [pk12util, "-i", str(p12), "-d", _db(directory), "-w", str(pw)]
        if password_file is not None:
            argv += ["-k", str(password_file)]
        _run(argv, f"importing {nickname!r} into {directory}")
