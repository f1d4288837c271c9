# -*- test-case-name: nutshim.test.test_pki -*-
"""
C{nutshim-pki}: a small, private certificate authority for NUT over TLS.

Why a tool of our own: the certificates people make for NUT by hand (or with
the RFC 9271 shims' C{mkNUTcert.py}) are self-signed all-in-one certificates
without expiry and with IP addresses written as DNS names, which strict
verifiers reject or which cannot be verified by IP at all.  This tool keeps a
CA apart from the leaves, issues leaves that Python 3.13's strict mode,
OpenSSL's C{-x509_strict} and NSS accept, writes them in the one-file layout
NUT's OpenSSL C{CERTFILE} and nutshim's upsd read, and helps with the rest of
the life cycle: inspection, fingerprints for pinning, expiry checks from
cron, renewal, the NSS database Debian's NSS-built NUT clients need, and
the hashed CA directory NUT clients built with OpenSSL need.

Files, in the certificate directory (C{--dir}; see L{resolve_directory}):

  - C{ca.pem}: the CA certificate (mode 0644; give it to every client);
  - C{ca.key}: the CA private key (mode 0600; only needed to issue);
  - C{NAME.pem}: a leaf: certificate, then the CA certificate, then the
    unencrypted PKCS#8 private key (mode 0600);
  - C{capath/HASH.0}: a copy of C{ca.pem} named by its OpenSSL subject
    hash, the C{CERTPATH} directory NUT built with OpenSSL needs (written
    by C{init}, or anywhere by C{export-capath}; see L{_capath});
  - C{*.bak}: the previous version after C{renew} or C{--force}.

Fingerprints come in two spellings of the same SHA-256 digest of the DER
certificate: the display form C{sha256:AB:CD:...} (upper case, colons, as
C{openssl x509 -fingerprint -sha256} shows it) and the pin form
C{sha256:abcd...} (lower case, no colons) that nutshim's pinning options take
and C{fingerprint} prints.

Exit status: 0 success; 1 C{check} found a certificate expired, expiring,
not yet valid or with a mismatched key; 2 usage or input error (one line on
stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping, NoReturn, Sequence, TextIO

from cryptography import x509

from . import _capath, _certs, _nss
from ._certs import Bundle, PKIError, PrivateKey

__all__ = ["main", "resolve_directory"]

PROG = "nutshim-pki"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+:-]{0,63}\Z")


class _ParserExit(Exception):
    def __init__(self, status: int, message: str | None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports instead of exiting the process."""

    def error(self, message: str) -> NoReturn:
        raise _ParserExit(2, f"{self.prog}: error: {message} (see {PROG} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _ParserExit(status, message)


@dataclass
class _Context:
    out: TextIO
    err: TextIO
    directory: Path
    reason: str

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def warn(self, line: str) -> None:
        self.err.write(f"{PROG}: {line}\n")

    def announce_directory(self) -> None:
        self.say(f"certificate directory: {self.directory} ({self.reason})")


# ---------------------------------------------------------------------------
# the directory and files


def resolve_directory(
    option: str | None, cwd: Path, environ: Mapping[str, str]
) -> tuple[Path, str]:
    """
    Choose the certificate directory: C{--dir} if given; else C{./certs} in
    a nutshim checkout (C{setup.cfg} and C{nutshim/} present); else
    C{$NUT_CONFPATH/certs} if C{NUT_CONFPATH} is set; else C{./certs}.

    @return: the directory (absolute) and why it was chosen.
    """
    if option is not None:
        return (cwd / option).absolute(), "from --dir"
    if (cwd / "setup.cfg").is_file() and (cwd / "nutshim").is_dir():
        return cwd / "certs", "default in a nutshim checkout"
    confpath = environ.get("NUT_CONFPATH")
    if confpath:
        return (cwd / confpath / "certs").absolute(), "from $NUT_CONFPATH"
    return cwd / "certs", "default"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PKIError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PKIError(f"{path}: is a directory") from None
    except OSError as e:
        raise PKIError(f"cannot read {path}: {e.strerror or e}") from None


def _load(path: Path) -> Bundle:
    return _certs.load_pem_bundle(_read(path), str(path))


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write C{data} to C{path} atomically with exactly C{mode}."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as e:
        try:
            temporary.unlink()
        except OSError:
            pass
        raise PKIError(f"cannot write {path}: {e.strerror or e}") from None


def _backup(path: Path) -> Path | None:
    """Copy C{path} to C{path.bak} (same mode); None if there was nothing."""
    if not path.exists():
        return None
    backup = path.with_name(path.name + ".bak")
    _write(backup, _read(path), path.stat().st_mode & 0o777)
    return backup


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as e:
        raise PKIError(f"cannot create {directory}: {e.strerror or e}") from None


def _find(ctx: _Context, name: str) -> Path:
    """A FILE argument: as given, else in the certificate directory."""
    given = Path(name)
    candidates = [given]
    if not given.is_absolute():
        candidates += [ctx.directory / name, ctx.directory / f"{name}.pem"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return given


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name.lower() == "ca":
        raise PKIError(
            f"{name!r} cannot name a certificate file: use letters, digits and "
            "._@+:- (at most 64, not starting with a symbol; 'ca' is taken)"
        )
    return name


def _load_ca(ctx: _Context) -> tuple[x509.Certificate, PrivateKey]:
    cert_path = ctx.directory / "ca.pem"
    key_path = ctx.directory / "ca.key"
    if not cert_path.exists():
        raise PKIError(f"no CA in {ctx.directory} (no ca.pem): run '{PROG} init' first")
    if not key_path.exists():
        raise PKIError(f"{key_path}: no such file (the CA key is needed to issue)")
    cert = _load(cert_path).certificate
    key = _load(key_path).key
    if key is None:
        raise PKIError(f"{key_path}: no private key in it")
    if not _certs.is_ca(cert):
        raise PKIError(f"{cert_path}: not a CA certificate")
    if not _certs.key_matches(cert, key):
        raise PKIError(f"{key_path}: does not match {cert_path}")
    status = _certs.certificate_status(cert)
    if status.state != "ok" and status.state != "expiring":
        raise PKIError(f"{cert_path}: the CA is {status.state}; run '{PROG} init --force'")
    return cert, key


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe_leaf(ctx: _Context, path: Path, cert: x509.Certificate) -> None:
    ctx.say(f"wrote {path} (certificate, CA certificate, private key; mode 0600)")
    ctx.say(f"  subject:    {_certs.name_to_text(cert.subject)}")
    sans = _certs.subject_alt_names(cert)
    ctx.say(f"  SANs:       {', '.join(sans) if sans else '(none)'}")
    ctx.say(f"  usage:      {_certs.purpose_of(cert)}")
    ctx.say(f"  not after:  {_date(cert.not_valid_after_utc)} "
            f"({_certs.days_left(cert)} days)")
    ctx.say(f"  pin:        {_certs.fingerprint_sha256(cert)}")


def _issue(ctx: _Context, args: argparse.Namespace, purpose: str) -> int:
    name = _check_name(args.name)
    ctx.announce_directory()
    ca_cert, ca_key = _load_ca(ctx)
    path = ctx.directory / f"{name}.pem"
    if path.exists() and not args.force:
        raise PKIError(f"{path} exists: use '{PROG} renew {name}' or --force")
    cert, key = _certs.make_leaf(
        ca_cert, ca_key, name, args.san, purpose, days=args.days, key_type=args.key
    )
    backup = _backup(path)
    _write(path, _certs.leaf_pem(cert, key, [ca_cert]), 0o600)
    if backup is not None:
        ctx.say(f"saved the previous {path.name} as {backup.name}")
    _describe_leaf(ctx, path, cert)
    if cert.not_valid_after_utc == ca_cert.not_valid_after_utc:
        ctx.warn("note: the validity was cut short to the CA's own expiry")
    if purpose == "server":
        ctx.say("use it: nutshim upsd / NUT built with OpenSSL (upsd.conf): "
                f"CERTFILE {path}")
        ctx.say(f"clients verify it with {ctx.directory / 'ca.pem'}, "
                "or pin the fingerprint above")
        if not any(s.startswith("IP:") for s in _certs.subject_alt_names(cert)):
            ctx.say("(clients connecting by IP address need that address as a --san)")
    else:
        ctx.say("use it as the client's certificate+key file; the server trusts "
                f"clients issued by {ctx.directory / 'ca.pem'}")
    return 0


# ---------------------------------------------------------------------------
# commands


def cmd_init(ctx: _Context, args: argparse.Namespace) -> int:
    ctx.announce_directory()
    cert_path = ctx.directory / "ca.pem"
    key_path = ctx.directory / "ca.key"
    existing = [p for p in (cert_path, key_path) if p.exists()]
    if existing and not args.force:
        raise PKIError(
            f"{ctx.directory} already holds a CA ({existing[0].name}); use --force to "
            "replace it (every certificate it issued must then be reissued)"
        )
    common_name = args.cn or f"nutshim CA ({socket.gethostname()[:48]})"
    cert, key = _certs.make_ca(common_name, days=args.days, key_type=args.key)
    # Planned before anything is written: a capath/ OpenSSL could not read
    # fails the command with the old CA still in place.
    capath = ctx.directory / "capath"
    entries = _capath.read_capath(capath)
    plan = _capath.plan_capath(entries, [cert], _old_ca(cert_path))
    _make_directory(ctx.directory)
    for path in existing:
        backup = _backup(path)
        if backup is not None:
            ctx.say(f"saved the previous {path.name} as {backup.name}")
    _write(key_path, _certs.key_pem(key), 0o600)
    _write(cert_path, _certs.certificate_pem(cert), 0o644)
    ctx.say(f"wrote {cert_path} (CA certificate, mode 0644: give it to clients)")
    ctx.say(f"wrote {key_path} (CA private key, mode 0600: keep it secret)")
    ctx.say(f"  subject:    {_certs.name_to_text(cert.subject)}")
    ctx.say(f"  key:        {_certs.describe_key(key)}")
    ctx.say(f"  not after:  {_date(cert.not_valid_after_utc)}")
    ctx.say(f"  sha256:     {_certs.fingerprint_sha256_colons(cert)}")
    _capath.apply_plan(capath, plan, entries, _write)
    for line in _capath.describe_plan(plan, capath):
        ctx.say(line)
    ctx.say("  (ca.pem under its OpenSSL subject hash: CERTPATH for upsmon built "
            f"with OpenSSL; '{PROG} export-capath' makes more)")
    if existing:
        ctx.say(f"the old CA's certificates are no longer trusted: reissue them "
                f"with '{PROG} renew NAME'")
    ctx.say(f"next: {PROG} server NAME --san HOST --san ADDRESS")
    return 0


def cmd_server(ctx: _Context, args: argparse.Namespace) -> int:
    return _issue(ctx, args, "server")


def cmd_client(ctx: _Context, args: argparse.Namespace) -> int:
    return _issue(ctx, args, "client")


def cmd_show(ctx: _Context, args: argparse.Namespace) -> int:
    path = _find(ctx, args.file)
    bundle = _load(path)
    ctx.say(f"file:          {path}")
    total = len(bundle.certificates)
    for index, cert in enumerate(bundle.certificates, 1):
        if total > 1:
            role = "CA" if _certs.is_ca(cert) else "leaf"
            ctx.say(f"certificate {index} of {total} ({role})")
        sans = _certs.subject_alt_names(cert)
        ctx.say(f"  subject:     {_certs.name_to_text(cert.subject)}")
        ctx.say(f"  issuer:      {_certs.name_to_text(cert.issuer)}")
        ctx.say(f"  SANs:        {', '.join(sans) if sans else '(none)'}")
        ctx.say(f"  usage:       {_certs.purpose_of(cert)}")
        ctx.say(f"  not before:  {_date(cert.not_valid_before_utc)}")
        status = _certs.certificate_status(cert, 0)
        left = _certs.days_left(cert)
        if status.state == "expired":
            remark = f"EXPIRED {-left} days ago"
        elif status.state == "not-yet-valid":
            remark = "NOT YET VALID"
        else:
            remark = f"{left} days left"
        ctx.say(f"  not after:   {_date(cert.not_valid_after_utc)} ({remark})")
        ctx.say(f"  key:         {_certs.describe_key(cert.public_key())}")
        ctx.say(f"  serial:      {cert.serial_number:x}")
        ctx.say(f"  sha256:      {_certs.fingerprint_sha256_colons(cert)}")
        ctx.say(f"  pin:         {_certs.fingerprint_sha256(cert)}")
    if bundle.key is None:
        ctx.say("private key:   none in this file")
    elif not bundle.certificates:
        ctx.say(f"private key:   {_certs.describe_key(bundle.key)} (no certificate)")
    elif _certs.key_matches(bundle.certificate, bundle.key):
        ctx.say(f"private key:   {_certs.describe_key(bundle.key)}, matches the "
                "(first) certificate")
    else:
        ctx.say(f"private key:   {_certs.describe_key(bundle.key)}, DOES NOT MATCH "
                "the (first) certificate")
    return 0


def cmd_fingerprint(ctx: _Context, args: argparse.Namespace) -> int:
    path = _find(ctx, args.file)
    bundle = _load(path)
    if not bundle.certificates:
        raise PKIError(f"{path}: no certificate in it")
    ctx.say(_certs.fingerprint_sha256(bundle.certificate))
    return 0


def cmd_check(ctx: _Context, args: argparse.Namespace) -> int:
    if args.days < 0:
        raise PKIError("--days must not be negative")
    in_directory = not args.files
    if in_directory:
        ctx.announce_directory()
        if not ctx.directory.is_dir():
            raise PKIError(f"{ctx.directory}: no such directory")
        pems = sorted(ctx.directory.glob("*.pem"))
        paths = sorted(pems, key=lambda p: p.name != "ca.pem")
        if not paths:
            raise PKIError(f"no certificates (*.pem) in {ctx.directory}")
    else:
        paths = [_find(ctx, name) for name in args.files]
    ca: x509.Certificate | None = None
    ca_path = ctx.directory / "ca.pem"
    problems: list[str] = []
    errors = 0
    seen: set[str] = set()

    def problem(text: str) -> None:
        problems.append(text)

    for path in paths:
        label = path.name if in_directory else str(path)
        try:
            bundle = _load(path)
        except PKIError as e:
            ctx.warn(f"error: {e}")
            errors += 1
            continue
        if in_directory and path == ca_path and bundle.certificates:
            ca = bundle.certificate
            key_path = ctx.directory / "ca.key"
            if key_path.exists():
                try:
                    ca_key = _load(key_path).key
                except PKIError as e:
                    ctx.warn(f"error: {e}")
                    errors += 1
                    ca_key = None
                if ca_key is not None and not _certs.key_matches(ca, ca_key):
                    problem("ca.key does not match ca.pem")
        if not bundle.certificates:
            problem(f"{label}: no certificate in it")
            continue
        for index, cert in enumerate(bundle.certificates):
            pin = _certs.fingerprint_sha256(cert)
            if pin in seen:
                continue  # e.g. the CA copy in every leaf's chain
            seen.add(pin)
            where = label if index == 0 else f"{label} (chain #{index + 1})"
            status = _certs.certificate_status(cert, args.days)
            subject = _certs.name_to_text(cert.subject)
            until = cert.not_valid_after_utc.strftime("%Y-%m-%d")
            word = {"ok": "ok", "expiring": "EXPIRING", "expired": "EXPIRED",
                    "not-yet-valid": "NOT-YET-VALID"}[status.state]
            ctx.say(f"{word:<13} {status.days_left:>6} days left  {where}  "
                    f"{subject} (until {until})")
            if status.state == "expired":
                problem(f"{where}: {subject} expired on {until}")
            elif status.state == "expiring":
                problem(f"{where}: {subject} expires within {args.days} days "
                        f"({status.days_left} days left, on {until})")
            elif status.state == "not-yet-valid":
                problem(f"{where}: {subject} is not valid before "
                        f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        leaf = bundle.certificate
        is_leaf_file = in_directory and path != ca_path
        if bundle.key is not None:
            if not _certs.key_matches(leaf, bundle.key):
                problem(f"{label}: the private key does not match the certificate "
                        f"{_certs.name_to_text(leaf.subject)}")
        elif is_leaf_file and not _certs.is_ca(leaf):
            problem(f"{label}: no private key in it")
        if is_leaf_file and ca is not None and not _certs.is_ca(leaf):
            if not _certs.verify_issued_by(leaf, ca):
                problem(f"{label}: not issued by the current ca.pem (reissue it "
                        f"with '{PROG} renew {path.stem}')")
    for text in problems:
        ctx.warn(f"problem: {text}")
    if errors:
        return 2
    if problems:
        return 1
    ctx.say(f"all certificates valid for more than {args.days} days")
    return 0


def cmd_renew(ctx: _Context, args: argparse.Namespace) -> int:
    name = _check_name(args.name)
    ctx.announce_directory()
    ca_cert, ca_key = _load_ca(ctx)
    path = ctx.directory / f"{name}.pem"
    if not path.exists():
        raise PKIError(f"{path}: no such file (issue it with '{PROG} server|client {name}')")
    old = _load(path).certificate
    cert, key = _certs.reissue_leaf(old, ca_cert, ca_key, days=args.days)
    backup = _backup(path)
    _write(path, _certs.leaf_pem(cert, key, [ca_cert]), 0o600)
    ctx.say(f"saved the previous {path.name} as {backup.name if backup else '?'} "
            f"(pin {_certs.fingerprint_sha256(old)})")
    _describe_leaf(ctx, path, cert)
    if cert.not_valid_after_utc == ca_cert.not_valid_after_utc:
        ctx.warn("note: the validity was cut short to the CA's own expiry")
    ctx.say("new key and fingerprint: update any pins; restart or reload the "
            "daemon using it")
    return 0


def _server_certificates(directory: Path) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    for path in sorted(directory.glob("*.pem")):
        try:
            bundle = _load(path)
        except PKIError:
            continue
        if bundle.certificates and "server" in _certs.purpose_of(bundle.certificate):
            found.append(bundle.certificate)
    return found


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def cmd_export_nss(ctx: _Context, args: argparse.Namespace) -> int:
    certutil = _nss.find_tool("certutil")
    pk12util = _nss.find_tool("pk12util") if args.server else None
    ctx.announce_directory()
    ca_path = ctx.directory / "ca.pem"
    if not ca_path.exists():
        raise PKIError(f"no CA in {ctx.directory} (no ca.pem): run '{PROG} init' first")
    ca_bundle = _load(ca_path)
    ca_cert = ca_bundle.certificate
    password_file: Path | None = None
    if args.password_file is not None:
        password_file = Path(args.password_file).absolute()
        _read(password_file)
    identity: tuple[x509.Certificate, PrivateKey, str] | None = None
    if args.server:
        name = _check_name(args.server)
        leaf_path = ctx.directory / f"{name}.pem"
        bundle = _load(leaf_path)
        _certs.check_bundle(bundle, str(leaf_path))
        assert bundle.key is not None
        identity = (bundle.certificate, bundle.key, name)
    database = Path(args.nssdir).absolute()
    created = _nss.create_database(certutil, database, password_file)
    ctx.say(f"NSS database: {database} ({'created' if created else 'existing'})")
    _nss.import_ca(certutil, database, ca_path, password_file)
    ctx.say(f"imported {ca_path} as \"{_nss.CA_NICKNAME}\" (trust C,,: "
            "issuer of TLS servers)")
    if identity is not None:
        assert pk12util is not None
        cert, key, nickname = identity
        _nss.import_identity(pk12util, certutil, database, nickname, cert, key,
                             [ca_cert], password_file)
        ctx.say(f"imported {nickname}.pem's certificate and key as \"{nickname}\"")
    nicknames = _nss.list_nicknames(certutil, database)
    if _nss.CA_NICKNAME not in nicknames:
        raise PKIError(f"{database}: {_nss.CA_NICKNAME} missing after the import")
    ctx.say("")
    ctx.say("upsmon.conf (NUT built with NSS, e.g. Debian's):")
    ctx.say(f"    CERTPATH {database}")
    ctx.say("    CERTVERIFY 1")
    ctx.say("    FORCESSL 1")
    servers = [identity[0]] if identity is not None else _server_certificates(ctx.directory)
    if servers:
        for cert in servers:
            sans = _certs.subject_alt_names(cert)
            host = sans[0].split(":", 1)[1] if sans else "<host>"
            ctx.say(f"    # CERTHOST {host} \"{_cn(cert)}\" 1 1")
    else:
        ctx.say("    # CERTHOST <host> \"<server certificate CN>\" 1 1")
    if identity is not None:
        secret = "<the database password>" if password_file else ""
        ctx.say("upsd.conf (upsd built with NSS):")
        ctx.say(f"    CERTPATH {database}")
        ctx.say(f"    CERTIDENT \"{identity[2]}\" \"{secret}\"")
    return 0


def _old_ca(cert_path: Path) -> list[x509.Certificate]:
    """The CA certificate(s) in C{cert_path}, if it holds any (for retiring)."""
    if not cert_path.exists():
        return []
    try:
        return list(_load(cert_path).certificates)
    except PKIError:
        return []


def cmd_export_capath(ctx: _Context, args: argparse.Namespace) -> int:
    ctx.announce_directory()
    ca_path = ctx.directory / "ca.pem"
    if not ca_path.exists():
        raise PKIError(f"no CA in {ctx.directory} (no ca.pem): run '{PROG} init' first, "
                       "or copy the server's ca.pem there")
    wanted = _load(ca_path).certificates
    if not wanted:
        raise PKIError(f"{ca_path}: no certificate in it")
    for cert in wanted:
        subject = _certs.name_to_text(cert.subject)
        if not _certs.is_ca(cert):
            raise PKIError(f"{ca_path}: {subject} is not a CA certificate")
        status = _certs.certificate_status(cert)
        if status.state in ("expired", "not-yet-valid"):
            raise PKIError(f"{ca_path}: the CA {subject} is {status.state}")
        if status.state == "expiring":
            ctx.warn(f"warning: the CA {subject} expires in {status.days_left} days")
    # After 'init --force' the previous CA is in ca.pem.bak: stop trusting it.
    retire = [c for c in _old_ca(ctx.directory / "ca.pem.bak") if c not in wanted]
    outdir = (Path(args.outdir).absolute() if args.outdir is not None
              else ctx.directory / "capath")
    entries = _capath.read_capath(outdir)
    plan = _capath.plan_capath(entries, wanted, retire)
    _capath.apply_plan(outdir, plan, entries, _write)
    ctx.say(f"CA directory: {outdir} ({'updated' if plan.changed else 'up to date'}; "
            "regular files, self-contained: copy it to client hosts as it is)")
    for line in _capath.describe_plan(plan, outdir):
        ctx.say(line)
    for cert in wanted:
        if not _capath.verify_lookup(outdir, cert):
            raise PKIError(f"{outdir}: OpenSSL does not find "
                           f"{_certs.name_to_text(cert.subject)} there")
    if os.stat(outdir).st_mode & 0o022:
        ctx.warn(f"warning: {outdir} is writable by group or others: whoever can write "
                 "there can make upsmon trust their own CA")
    ctx.say("checked: OpenSSL's directory lookup finds the CA there")
    ctx.say("")
    ctx.say("upsmon.conf (NUT built with OpenSSL; nutshim's nut-upsmon reads it too):")
    ctx.say(f"    CERTPATH {outdir}")
    ctx.say("    CERTVERIFY 1")
    ctx.say("    FORCESSL 1")
    ctx.say("note: NUT 2.8.5 and older built with OpenSSL check the chain but not the")
    ctx.say("host name: any server certificate from this CA passes for any server, and")
    ctx.say("CERTHOST/CERTIDENT do nothing there (see docs/tls.md)")
    return 0


# ---------------------------------------------------------------------------
# parsing


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


_Handler = Callable[[_Context, argparse.Namespace], int]

_EPILOG = """\
files: ca.pem (CA certificate, 0644), ca.key (CA key, 0600), NAME.pem
(certificate + CA certificate + PKCS#8 key, 0600: NUT's OpenSSL CERTFILE),
capath/HASH.0 (a copy of ca.pem named by its OpenSSL subject hash: the
CERTPATH directory of upsmon built with OpenSSL).
Fingerprints: 'sha256:AB:CD:...' is the display form (openssl x509
-fingerprint -sha256); 'sha256:abcd...' (lower case, no colons) is the pin
form printed by 'fingerprint'. Exit status: 0 ok, 1 check found a problem,
2 error."""


def _parser() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--dir", default=argparse.SUPPRESS, metavar="D",
        help="certificate directory (default: ./certs in a nutshim checkout, "
             "else $NUT_CONFPATH/certs, else ./certs)",
    )
    parser = _Parser(
        prog=PROG,
        description="A small private CA for NUT (RFC 9271) over TLS.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: _Handler, help: str) -> _Parser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(handler=handler)
        assert isinstance(sub, _Parser)
        return sub

    p = command("init", cmd_init, "create the CA (ca.pem, ca.key)")
    p.add_argument("--cn", help="the CA's common name (default: nutshim CA (HOST))")
    p.add_argument("--days", type=_positive, default=3650, help="lifetime (default 3650)")
    p.add_argument("--key", choices=_certs.KEY_TYPES, default="ec",
                   help="EC P-256 (default) or RSA 3072")
    p.add_argument("--force", action="store_true", help="replace an existing CA")

    for name, handler, days, text in (
        ("server", cmd_server, 825, "issue a server certificate NAME.pem (EKU serverAuth)"),
        ("client", cmd_client, 825, "issue a client certificate NAME.pem (EKU clientAuth)"),
    ):
        p = command(name, handler, text)
        p.add_argument("name", metavar="NAME", help="common name and file name")
        p.add_argument("--san", action="append", default=[], metavar="HOST|ADDRESS",
                       help="a DNS name or IPv4/IPv6 address the certificate is for "
                            "(repeatable; NAME is added if it is a host name)")
        p.add_argument("--days", type=_positive, default=days,
                       help=f"lifetime (default {days})")
        p.add_argument("--key", choices=_certs.KEY_TYPES, default="ec",
                       help="EC P-256 (default) or RSA 3072")
        p.add_argument("--force", action="store_true",
                       help="replace an existing NAME.pem (kept as NAME.pem.bak)")

    p = command("show", cmd_show, "describe the certificates (and key) in a file")
    p.add_argument("file", metavar="FILE")

    p = command("fingerprint", cmd_fingerprint,
                "print the pin 'sha256:<hex>' of the (first) certificate in a file")
    p.add_argument("file", metavar="FILE")

    p = command("check", cmd_check,
                "check expiry and keys of ca.pem and *.pem (or FILES); exit 1 on a problem")
    p.add_argument("--days", type=_nonnegative, default=30,
                   help="warn about certificates expiring within N days (default 30)")
    p.add_argument("files", nargs="*", metavar="FILE")

    p = command("renew", cmd_renew,
                "reissue NAME.pem (same subject, SANs, usage; new key and serial)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--days", type=_positive, default=None,
                   help="lifetime (default: the old certificate's)")

    p = command("export-nss", cmd_export_nss,
                "put the CA into an NSS database for NUT built with NSS (Debian)")
    p.add_argument("nssdir", metavar="DIR",
                   help="the NSS database directory (relative to the current directory)")
    p.add_argument("--password-file", metavar="F",
                   help="protect a new database with the password in F")
    p.add_argument("--server", metavar="NAME",
                   help="also import NAME.pem's certificate and key (for an NSS upsd)")

    p = command("export-capath", cmd_export_capath,
                "copy ca.pem into a hashed CA directory (HASH.0, as openssl rehash "
                "names it) for NUT built with OpenSSL")
    p.add_argument("outdir", nargs="?", default=None, metavar="OUTDIR",
                   help="the directory (default: capath/ in the certificate directory); "
                        "other CAs in it are kept, an older CA of the same name replaced")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run C{nutshim-pki} with C{argv} (default: C{sys.argv[1:]}) and return
    the exit status; all output goes to C{sys.stdout} / C{sys.stderr}.
    """
    out, err = sys.stdout, sys.stderr
    try:
        args = _parser().parse_args(argv)
    except _ParserExit as e:
        if e.message:
            (out if e.status == 0 else err).write(e.message)
        return e.status
    directory, reason = resolve_directory(getattr(args, "dir", None), Path.cwd(), os.environ)
    ctx = _Context(out=out, err=err, directory=directory, reason=reason)
    handler: _Handler = args.handler
    try:
        return handler(ctx, args)
    except PKIError as e:
        ctx.warn(f"error: {e}")
        return 2
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        ctx.warn(f"error:{where} {e.strerror or e}")
        return 2
    except KeyboardInterrupt:
        ctx.warn("interrupted")
        return 130
    except Exception as e:  # never show a traceback to the user
        ctx.warn(f"internal error: {type(e).__name__}: {e}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
