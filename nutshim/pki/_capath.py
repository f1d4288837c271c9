# -*- test-case-name: nutshim.test.test_pki -*-
"""
A hashed CA directory: what C{CERTPATH} must be for NUT built with OpenSSL.

Why: NUT's OpenSSL client library (libupsclient, up to and including 2.8.5)
hands upsmon.conf's C{CERTPATH} to C{SSL_CTX_load_verify_locations(ctx,
NULL, CERTPATH)}, as a CA I{directory} and never as a file.  OpenSSL looks a
CA up in such a directory by name only: C{HASH.0}, C{HASH.1}, ... where
C{HASH} is C{X509_NAME_hash} of the CA's subject, eight hex digits (what
C{openssl x509 -subject_hash} prints and C{openssl rehash} names links
after).  A PEM file named as C{CERTPATH} is accepted at start-up and then
finds no CA at all, so every verification fails; a directory of C{ca.pem}
files with other names fails the same way.

The hash is OpenSSL's own (through pyOpenSSL's C{subject_name_hash}): the
canonical form it hashes (UTF-8, case-folded ASCII, collapsed white space,
each RDN re-encoded as a DER SET) is easy to get subtly wrong in a
re-implementation, and one wrong bit is a directory that silently trusts
nothing.

Copies, not symlinks: C{openssl rehash} links C{HASH.0} to a PEM file next
to it; here C{HASH.0} I{is} the certificate (a regular 0644 file), so the
directory is self-contained -- it can be copied to every client host with
C{scp -r} or configuration management, and nothing else (least of all the
CA key beside C{ca.pem}) has to travel with it.  NUT's own security guide
installs the certificate the same way (C{cp upsd.crt CERTPATH/HASH.0}).

The directory may hold other CAs (one client host monitoring UPS servers
with different CAs): they are kept.  An entry with the subject of a CA being
written, but another certificate, is an older version of that CA (C{init
--force} keeps the default name) and is replaced, so that the old CA stops
being trusted, as C{export-nss} replaces its nickname.  OpenSSL stops at the
first missing or unreadable index, so the entries of one hash are kept
numbered 0, 1, 2... without gaps, and an entry it cannot read is an error
here rather than a silent hole.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from cryptography import x509
from OpenSSL import crypto

from ._certs import PKIError, certificate_pem, fingerprint_sha256, name_to_text

__all__ = [
    "CapathEntry",
    "CapathPlan",
    "apply_plan",
    "describe_plan",
    "plan_capath",
    "read_capath",
    "subject_hash",
    "verify_lookup",
]

#: The names OpenSSL's directory lookup tries for certificates (CRLs are
#: C{HASH.rN} and are left alone).
_ENTRY = re.compile(r"([0-9a-f]{8})\.([0-9]+)\Z")


def subject_hash(cert: x509.Certificate) -> str:
    """
    OpenSSL's subject name hash of C{cert} (C{X509_NAME_hash}, SHA-1 based,
    as since OpenSSL 1.0.0) as eight lower-case hex digits: the C{HASH} of
    C{HASH.0}.
    """
    value = crypto.X509.from_cryptography(cert).subject_name_hash()
    return f"{value & 0xFFFFFFFF:08x}"


@dataclass(frozen=True)
class CapathEntry:
    """
    One C{HASH.N} entry of a CA directory.

    @ivar certificates: what it holds (a file may hold several; OpenSSL
        loads them all).
    """

    name: str
    certificates: tuple[x509.Certificate, ...]

    @property
    def hash(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def index(self) -> int:
        return int(self.name.split(".", 1)[1])


@dataclass(frozen=True)
class CapathPlan:
    """
    What to do to a CA directory, and what to tell the user about it.

    @ivar layout: per touched hash, the final entries in index order: each
        the name of an existing entry to keep (renamed if its index
        changes) or a certificate to write.
    @ivar added: C{(name, certificate)} written new.
    @ivar present: C{(name, certificate)} already there, unchanged (the
        name after any renumbering).
    @ivar replaced: C{(old name, certificate)} removed as superseded.
    @ivar others: entries of other CAs, kept (under their name after any
        renumbering).
    """

    layout: tuple[tuple[str, tuple[str | x509.Certificate, ...]], ...]
    added: tuple[tuple[str, x509.Certificate], ...]
    present: tuple[tuple[str, x509.Certificate], ...]
    replaced: tuple[tuple[str, x509.Certificate], ...]
    others: tuple[CapathEntry, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced)


def read_capath(directory: Path) -> tuple[CapathEntry, ...]:
    """
    The C{HASH.N} entries of C{directory} (none if it does not exist).

    @raise PKIError: if C{directory} is not a directory, or an entry is a
        dangling link or not a PEM certificate: OpenSSL's lookup stops there,
        so whatever follows it under that hash is never found.
    """
    if not directory.exists():
        return ()
    if not directory.is_dir():
        raise PKIError(f"{directory}: not a directory")
    entries: list[CapathEntry] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        raise PKIError(f"cannot read {directory}: {e.strerror or e}") from None
    for name in names:
        if not _ENTRY.match(name):
            continue
        path = directory / name
        if path.is_symlink() and not path.exists():
            raise PKIError(f"{path}: a dangling link (OpenSSL stops looking there): remove it")
        try:
            data = path.read_bytes()
            certificates = tuple(x509.load_pem_x509_certificates(data))
        except (OSError, ValueError):
            raise PKIError(
                f"{path}: not a PEM certificate (OpenSSL stops looking there): remove it"
            ) from None
        entries.append(CapathEntry(name, certificates))
    return tuple(entries)


def plan_capath(
    existing: Sequence[CapathEntry],
    wanted: Sequence[x509.Certificate],
    retire: Sequence[x509.Certificate] = (),
    hash_of: Callable[[x509.Certificate], str] = subject_hash,
) -> CapathPlan:
    """
    Decide how C{existing} entries become a directory that holds every
    certificate of C{wanted}: pure, so that the collision and renumbering
    rules can be tested with any C{hash_of}.

    An existing single-certificate entry is removed if it holds a
    certificate of C{retire}, or another certificate with the subject of
    one of C{wanted}; everything else is kept.
    """
    unique: list[x509.Certificate] = []
    for cert in wanted:
        if cert not in unique:
            unique.append(cert)
    subjects = {cert.subject for cert in unique}
    buckets: dict[str, list[CapathEntry]] = {}
    for entry in existing:
        buckets.setdefault(entry.hash, []).append(entry)
    touched = {hash_of(cert) for cert in unique}
    touched |= {hash_of(cert) for cert in retire}
    layout: list[tuple[str, tuple[str | x509.Certificate, ...]]] = []
    added: list[tuple[str, x509.Certificate]] = []
    present: list[tuple[str, x509.Certificate]] = []
    replaced: list[tuple[str, x509.Certificate]] = []
    others: list[CapathEntry] = []
    for bucket in sorted(buckets):
        if bucket not in touched:
            others.extend(buckets[bucket])
    for digest in sorted(touched):
        final: list[str | x509.Certificate] = []
        found: set[x509.Certificate] = set()
        for entry in sorted(buckets.get(digest, []), key=lambda e: e.index):
            single = entry.certificates[0] if len(entry.certificates) == 1 else None
            mine = [c for c in entry.certificates if c in unique]
            if mine:
                found.update(mine)
                present.append((f"{digest}.{len(final)}", mine[0]))
                final.append(entry.name)
            elif single is not None and (single in retire or single.subject in subjects):
                replaced.append((entry.name, single))
                successor = [c for c in unique if hash_of(c) == digest and c not in found
                             and c.subject == single.subject]
                if successor:  # in the old one's slot: no other entry moves
                    found.add(successor[0])
                    added.append((f"{digest}.{len(final)}", successor[0]))
                    final.append(successor[0])
            else:
                others.append(CapathEntry(f"{digest}.{len(final)}", entry.certificates))
                final.append(entry.name)
        for cert in unique:
            if hash_of(cert) == digest and cert not in found:
                added.append((f"{digest}.{len(final)}", cert))
                final.append(cert)
        layout.append((digest, tuple(final)))
    return CapathPlan(
        layout=tuple(layout),
        added=tuple(added),
        present=tuple(present),
        replaced=tuple(replaced),
        others=tuple(others),
    )


def apply_plan(
    directory: Path,
    plan: CapathPlan,
    existing: Sequence[CapathEntry],
    write: Callable[[Path, bytes, int], None],
) -> None:
    """
    Carry out C{plan} in C{directory} (created, mode 0755, if missing).

    Each certificate is written with C{write(path, data, mode)} (atomic:
    temporary file, then rename), so the slot of a replaced CA holds the old
    or the new certificate at every moment, never nothing.  Kept entries
    only ever move to a lower index, in ascending order, so a rename never
    overwrites an entry still to be moved.
    """
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as e:
        raise PKIError(f"cannot create {directory}: {e.strerror or e}") from None
    before = {entry.name for entry in existing}
    try:
        for digest, final in plan.layout:
            for index, item in enumerate(final):
                target = directory / f"{digest}.{index}"
                if isinstance(item, str):
                    if item != target.name:
                        os.replace(directory / item, target)
                else:
                    write(target, certificate_pem(item), 0o644)
            for name in sorted(before):
                entry = _ENTRY.match(name)
                if entry and entry.group(1) == digest and int(entry.group(2)) >= len(final):
                    try:
                        (directory / name).unlink()
                    except FileNotFoundError:
                        pass  # moved to a lower index above
    except OSError as e:
        raise PKIError(f"cannot update {directory}: {e.strerror or e}") from None


def verify_lookup(directory: Path, cert: x509.Certificate) -> bool:
    """
    True if OpenSSL's own directory lookup -- the one NUT's C{CERTPATH}
    uses -- finds C{cert} in C{directory} as a trust anchor.
    """
    store = crypto.X509Store()
    store.load_locations(None, str(directory))
    store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    try:
        crypto.X509StoreContext(store, crypto.X509.from_cryptography(cert)).verify_certificate()
    except crypto.X509StoreContextError:
        return False
    return True


def describe_plan(plan: CapathPlan, directory: Path) -> list[str]:
    """What L{apply_plan} did, one line each, for the user."""
    lines: list[str] = []
    for name, cert in plan.replaced:
        lines.append(f"removed {directory / name}: {_label(cert)}, superseded by "
                     "ca.pem (no longer trusted)")
    for name, cert in plan.added:
        lines.append(f"wrote {directory / name}: {_label(cert)}")
    for name, cert in plan.present:
        lines.append(f"unchanged {directory / name}: {_label(cert)}")
    for entry in plan.others:
        subjects = "; ".join(_label(c) for c in entry.certificates) or "(empty)"
        lines.append(f"also trusted there: {entry.name}: {subjects}")
    return lines


def _label(cert: x509.Certificate) -> str:
    return f"{name_to_text(cert.subject)} ({fingerprint_sha256(cert)})"
