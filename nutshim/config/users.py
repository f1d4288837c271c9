# -*- test-case-name: nutshim.test.test_config -*-
"""
C{upsd.users}: who may log in, force a shutdown, set variables or run
instant commands, read as NUT's C{server/user.c} reads it.

Why exactly: this file decides whether upsmon on another machine can shut
its host down, and people's existing files rely on NUT's corners:

 - C{[name]} starts a user (case-sensitive).
 - Keys are case-insensitive: C{password}, C{actions}, C{instcmds},
   C{upsmon}, C{allowfrom} (ignored, with a warning).  Every word after
   C{=} is a value (C{actions = SET FSD}).
 - C{upsmon primary} or C{master} grants the actions C{login}, C{master}
   and C{fsd}; C{upsmon secondary} or C{slave} grants C{login}.  It works
   as C{upsmon primary} or C{upsmon = primary}.  Nothing grants C{SET} or
   instant commands implicitly.
 - A check needs a user of exactly that name I{with} a password, the same
   password, and the action (compared case-insensitively) or the command
   (case-insensitively, or C{all}).

What would drop or change a user is a L{ConfigError} naming the line (so a
reload keeps the running users), where NUT logs it, or nothing, and reads
on: a parse error (NUT: the rest of the file may vanish into one word); a
broken section header such as C{[bob} (NUT ignores the line and gives
bob's password and actions to the user above); a duplicate C{[name]} (NUT:
its lines go to the user above); a second C{password} (NUT keeps the
first); an unknown C{upsmon} type (NUT grants nothing); a line that is
neither C{[name]} nor C{key = value} (NUT ignores it, e.g. C{password
secret} without C{=}); a certificate line nutshim cannot use.  Warnings, as
in NUT: an unknown key, C{allowfrom}, keys outside any section (they belong
to nobody), old-format C{user} lines.

nutshim extension: C{certificate = <CN>} or C{certificate = sha256:<HEX>}
(repeatable) names the client certificates that authenticate as this user
over TLS.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional

from ._errors import ConfigWarning, LineReader, logical_lines, read_config_file

__all__ = ["User", "Users", "parse_users", "load_users", "normalize_fingerprint"]

_UPSMON = {
    "primary": ("login", "master", "fsd"),
    "master": ("login", "master", "fsd"),
    "secondary": ("login",),
    "slave": ("login",),
}
_FINGERPRINT = re.compile(r"(?i)(?:sha256:)?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})\Z")


def normalize_fingerprint(text: str) -> Optional[str]:
    """
    A SHA-256 fingerprint as C{sha256:} and 64 lower-case hex digits.

    @param text: hex digits, optionally colon-separated, optionally after
        C{sha256:}, in any case.
    @return: the canonical form, or L{None} if C{text} is not a fingerprint.
    """
    match = _FINGERPRINT.match(text)
    if match is None:
        return None
    return "sha256:" + match.group(1).replace(":", "").lower()


@dataclass(frozen=True)
class User:
    """
    One user.

    @ivar password: L{None} when none was given: such a user never
        authenticates with a password.
    @ivar actions: granted actions, lower-case.
    @ivar instcmds: allowed instant commands, lower-case; C{all} allows all.
    @ivar certificates: certificate subject CNs as written, and fingerprints
        as C{sha256:<hex>}, that authenticate as this user.
    """

    name: str
    password: Optional[str] = None
    actions: frozenset[str] = frozenset()
    instcmds: frozenset[str] = frozenset()
    certificates: tuple[str, ...] = ()

    def may(self, action: str) -> bool:
        """
        Whether this user has C{action} (case-insensitive).
        """
        return action.lower() in self.actions

    def may_instcmd(self, cmd: str) -> bool:
        """
        Whether this user may run the instant command C{cmd}.
        """
        return "all" in self.instcmds or cmd.lower() in self.instcmds


@dataclass(frozen=True)
class Users:
    """
    The parsed file.

    @ivar users: by name, in file order.
    """

    users: Mapping[str, User] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[ConfigWarning, ...] = ()

    def authenticate(self, username: Optional[str], password: Optional[str]) -> Optional[User]:
        """
        The user with exactly this name, if it has exactly this password.
        """
        if username is None or password is None:
            return None
        user = self.users.get(username)
        if user is None or user.password is None:
            return None
        if not hmac.compare_digest(user.password.encode("utf-8"), password.encode("utf-8")):
            return None
        return user

    def check_action(
        self, username: Optional[str], password: Optional[str], action: str
    ) -> bool:
        """
        NUT's C{user_checkaction}.
        """
        user = self.authenticate(username, password)
        return user is not None and user.may(action)

    def check_instcmd(self, username: Optional[str], password: Optional[str], cmd: str) -> bool:
        """
        NUT's C{user_checkinstcmd}.
        """
        user = self.authenticate(username, password)
        return user is not None and user.may_instcmd(cmd)

    def user_for_certificate(self, cn: str, fingerprint: str) -> Optional[User]:
        """
        The user a verified client certificate authenticates as.

        A fingerprint entry is more specific than a CN, so fingerprints are
        tried first, then CNs (compared exactly), each in file order.

        @param fingerprint: SHA-256, in any form L{normalize_fingerprint}
            accepts.
        """
        wanted = normalize_fingerprint(fingerprint)
        if wanted is not None:
            for user in self.users.values():
                if wanted in user.certificates:
                    return user
        for user in self.users.values():
            if cn and cn in user.certificates:
                return user
        return None


class _Builder:
    __slots__ = ("name", "password", "actions", "instcmds", "certificates")

    def __init__(self, name: str) -> None:
        self.name = name
        self.password: Optional[str] = None
        self.actions: set[str] = set()
        self.instcmds: set[str] = set()
        self.certificates: List[str] = []

    def build(self) -> User:
        return User(
            self.name,
            self.password,
            frozenset(self.actions),
            frozenset(self.instcmds),
            tuple(self.certificates),
        )


class _Parser(LineReader):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.users: Dict[str, _Builder] = {}
        self.headers: Dict[str, int] = {}
        self.passwords: Dict[str, int] = {}
        self.current: Optional[_Builder] = None

    def line(self, lineno: int, words: List[str]) -> None:
        """
        NUT's C{user_parse_arg}.
        """
        self.lineno = lineno
        first = words[0]
        if first.lower() == "user":
            self.warn("ignoring line in the old file format")
        elif "=" in first:
            # Only an escaped "\=" can put "=" inside a word.
            key, _, value = first.partition("=")
            self.values(key, [value] + words[1:])
        elif len(first) >= 2 and first[0] == "[" and first[-1] == "]":
            self.header(first[1:-1], words)
        elif first[:1] == "[" or first[-1:] == "]":
            raise self.fail("broken section header %s: a user is [name], in one word" % (first,))
        elif len(words) >= 3 and words[1] == "=":
            self.values(first, words[2:])
        elif len(words) >= 2 and first.lower() == "upsmon":
            self.upsmon(words[1])
        else:
            # Not echoed: a stray word may be a password.
            raise self.fail("this line is neither [user] nor 'key = value'")

    def header(self, name: str, words: List[str]) -> None:
        if not name:
            raise self.fail("empty user name []")
        if len(words) > 1:
            raise self.fail(
                "words after the section header [%s]: put each key on a line of its own" % (name,)
            )
        if name in self.users:
            raise self.fail(
                "user [%s] defined twice (first on line %d): merge the two sections"
                % (name, self.headers[name])
            )
        self.headers[name] = self.lineno
        self.current = self.users[name] = _Builder(name)

    def values(self, key: str, values: List[str]) -> None:
        if self.current is None:
            self.warn("ignoring %s outside any user section" % (key,))
            return
        for value in values:
            self.value(self.current, key, value)

    def value(self, user: _Builder, key: str, value: str) -> None:
        """
        NUT's C{parse_var}.
        """
        lowered = key.lower()
        if lowered == "password":
            if user.password is None:
                user.password = value
                self.passwords[user.name] = self.lineno
            else:
                raise self.fail(
                    "second password for %s (the first is on line %d)"
                    % (user.name, self.passwords[user.name])
                )
        elif lowered == "instcmds":
            user.instcmds.add(value.lower())
        elif lowered == "actions":
            user.actions.add(value.lower())
        elif lowered == "allowfrom":
            self.warn("allowfrom in upsd.users is no longer used")
        elif lowered == "upsmon":
            self.upsmon(value)
        elif lowered == "certificate":
            self.certificate(user, value)
        else:
            self.warn("Unrecognized user setting %s" % (key,))

    def upsmon(self, kind: str) -> None:
        actions = _UPSMON.get(kind.lower())
        if self.current is None:
            self.warn("Ignoring action definition outside user section")
        elif actions is None:
            raise self.fail(
                "Unknown upsmon type %s for %s (primary or secondary; NUT also reads"
                " master and slave)" % (kind, self.current.name)
            )
        else:
            self.current.actions.update(actions)

    def certificate(self, user: _Builder, value: str) -> None:
        if value[:7].lower() == "sha256:":
            canonical = normalize_fingerprint(value)
            if canonical is None:
                raise self.fail(
                    "certificate for %s: %r is not sha256: and 64 hex digits" % (user.name, value)
                )
            value = canonical
        elif not value:
            raise self.fail("certificate for %s: empty name" % (user.name,))
        for other in self.users.values():
            if other is not user and value in other.certificates:
                raise self.fail(
                    "certificate %s for %s already belongs to %s: a certificate"
                    " authenticates one user" % (value, user.name, other.name)
                )
        if value not in user.certificates:
            user.certificates.append(value)


def parse_users(data: bytes, path: str) -> Users:
    """
    Parse the contents of C{upsd.users}.

    @param path: the file name, for warnings and errors.
    @raise ConfigError: for anything that would drop or change a user
        (see the module docstring).
    """
    parser = _Parser(path)
    for lineno, words in logical_lines(data, path, parser.warnings):
        parser.line(lineno, words)
    users = {name: builder.build() for name, builder in parser.users.items()}
    return Users(MappingProxyType(users), tuple(parser.warnings))


def load_users(path: str) -> Users:
    """
    Read and parse C{upsd.users}.

    @return: no users, with a warning, if the file does not exist (as in
        NUT: nobody can authenticate).
    @raise ConfigError: if it cannot be read, or see L{parse_users}.
    """
    warnings: List[ConfigWarning] = []
    data = read_config_file(path, warnings, secret=True)
    if data is None:
        return Users(
            warnings=(ConfigWarning(path, None, "not found - nobody can authenticate"),)
        )
    users = parse_users(data, path)
    return Users(users.users, tuple(warnings) + users.warnings)
