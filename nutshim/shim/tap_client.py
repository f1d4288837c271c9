# -*- test-case-name: nutshim.test.test_shim -*-
"""
C{twistd nut-client-shim}: local NUT ports for legacy clients, each relayed
over STARTTLS to a remote server shim.

One process serves several remotes, each on its own listeners: one with
C{--upstream} (and C{--listen}), more with C{--remote LISTEN=HOST:PORT} or
in a C{--config} file::

    [shim]
    # defaults for every remote
    cafile = /etc/nut/shim/ca.pem
    certfile = /etc/nut/shim/upsmon-box.pem

    [remote ups1]
    listen = tcp:3493:interface=127.0.0.1 tcp6:3493:interface=\\:\\:1
    upstream = ups1.example.org:401

    [remote ups2]
    listen = tcp:3494:interface=127.0.0.1
    upstream = 192.0.2.20
    pin = sha256:...

A remote's section overrides C{[shim]}, which overrides the command line
(C{--cafile}, C{--pin}, C{--certfile}, C{--server-name}, C{--min-tls});
C{--allow}, C{--allow-file} and the timeouts are the process's, command
line only.  Every remote's certificate settings are loaded while the
options are parsed, so a bad file or pin stops twistd at once; SIGHUP loads
them again, the C{--config} file included (L{reload}).
"""

from __future__ import annotations

import configparser
import signal
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Dict, List, Mapping, Optional, Sequence

from twisted.application.service import IService
from twisted.python import usage

from nutshim.client.tls import TLSConfigError, TLSSettings
from nutshim.pki._certs import PKIError, check_bundle, load_pem_bundle
from nutshim.shim.client import ClientShimFactory
from nutshim.shim.options import (
    ShimOptions,
    allow_list,
    format_hostport,
    parse_hostport,
    shim_parameters,
    upstream_endpoint,
    with_backlog,
)
from nutshim.shim.service import ListenerService, ShimService, systemd_notifier

__all__ = ["Options", "Remote", "build_remotes", "makeService", "reload"]

#: The server shim's port (RFC 9271 Appendix D).
TLS_PORT = 401
_PER_REMOTE = ("cafile", "pin", "certfile", "server-name", "min-tls")


@dataclass
class Remote:
    """
    One remote and the local listeners that lead to it.
    """

    name: str
    listen: List[str]
    explicit: bool
    host: str
    port: int
    tls: TLSSettings
    options: Any


class Options(ShimOptions):
    """
    nut-client-shim: legacy NUT clients on the loopback, TLS to the remote.
    """

    daemon = "nut-client-shim"

    synopsis = "--upstream HOST[:PORT] (--cafile PEM | --pin sha256:HEX) [options]"
    longdesc = (
        "The Management Daemon shim of RFC 9271 Appendix D: listens on "
        "127.0.0.1:3493 and [::1]:3493 for legacy clients (upsmon, upsc, PyNUT); "
        "each connection is relayed to the remote (default port 401) after "
        "STARTTLS, a verified certificate and a version query over TLS. Nothing "
        "a client sends, credentials included, leaves before that. SIGHUP re-reads "
        "the certificate, CA, pin, --config and --allow-file for new sessions."
    )
    default_listen = ("tcp:3493:interface=127.0.0.1", "tcp6:3493:interface=\\:\\:1")

    optParameters = shim_parameters(
        upstream="The server shim, HOST[:PORT] (default port 401).",
        certfile="PEM with this host's client certificate, chain and key (nutshim-pki client NAME).",
        cafile="PEM with the CA(s) the server certificate must chain to; the name is checked too.",
    ) + [
        ["pin", None, None, "Accept only a server certificate with this SHA-256 fingerprint (sha256:HEX)."],
        ["server-name", None, None, "Verify the server certificate for this name instead of the --upstream host."],
        ["config", None, None, "INI file of remotes ([remote NAME] sections) and defaults ([shim])."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["remote"] = []

    def opt_remote(self, spec: str) -> None:
        """
        LISTEN_ENDPOINT=HOST[:PORT]: one more remote (repeatable), e.g.
        tcp:3494:interface=127.0.0.1=ups2.example.org:401.
        """
        endpoint, sep, target = spec.rpartition("=")
        if not sep or not endpoint or not target:
            self.fail(f"--remote {spec!r}: expected LISTEN_ENDPOINT=HOST[:PORT]")
        self["remote"].append((endpoint, target))

    def check(self) -> None:
        self.check_common()
        self["remotes"] = build_remotes(self)


def build_remotes(options: Options) -> List[Remote]:
    """
    Every remote, its listeners and its TLS settings, from the options and
    the files they name (read now).

    @raise usage.UsageError: naming the file or the remote.
    """
    values = {key: options[key] for key in _PER_REMOTE if options[key] is not None}
    sections: Dict[str, Mapping[str, str]] = {}
    if options["config"]:
        shim, sections = _read_config(options["config"])
        values.update(shim)
    specs: List[tuple[str, List[str], bool, Mapping[str, str]]] = []
    if options["upstream"]:
        specs.append(("main", options["listen"], options["explicit_listen"],
                      {"upstream": options["upstream"]}))
    elif options["explicit_listen"]:
        raise usage.UsageError("--listen needs --upstream (or use --remote LISTEN=HOST:PORT)")
    for endpoint, target in options["remote"]:
        specs.append((target, [with_backlog(endpoint)], True, {"upstream": target}))
    for name, section in sections.items():
        listen = [with_backlog(e) for e in section.get("listen", "").split()]
        if not listen:
            raise usage.UsageError(f"{options['config']}: [remote {name}] has no listen")
        specs.append((name, listen, True, section))
    if not specs:
        raise usage.UsageError("nothing to relay: give --upstream HOST[:PORT], --remote or --config")
    remotes: List[Remote] = []
    seen: Dict[str, str] = {}
    for name, listen, explicit, section in specs:
        for endpoint in listen:
            if endpoint in seen:
                raise usage.UsageError(f"{endpoint} is used for both {seen[endpoint]} and {name}")
            seen[endpoint] = name
        remotes.append(_remote(name, listen, explicit, {**values, **section}))
    return remotes


def _read_config(path: str) -> tuple[Dict[str, str], Dict[str, Mapping[str, str]]]:
    """
    The C{[shim]} defaults and the C{[remote NAME]} sections of C{path}.
    """
    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    try:
        with open(path) as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as e:
        raise usage.UsageError(f"--config {path}: {e}")
    shim: Dict[str, str] = {}
    sections: Dict[str, Mapping[str, str]] = {}
    for title in parser.sections():
        own = dict(parser[title])
        kind, _, name = title.partition(" ")
        if title == "shim":
            allowed, shim = set(_PER_REMOTE), own
        elif kind == "remote" and name.strip():
            allowed = {"listen", "upstream", *_PER_REMOTE}
            sections[name.strip()] = own
        else:
            raise usage.UsageError(f"{path}: unknown section [{title}] (expected [shim] or [remote NAME])")
        unknown = set(own) - allowed
        if unknown:
            raise usage.UsageError(f"{path}: [{title}]: unknown key(s) {', '.join(sorted(unknown))}")
    return shim, sections


def _remote(name: str, listen: List[str], explicit: bool, values: Mapping[str, str]) -> Remote:
    """
    Check one remote's settings and build its TLS connection creator.
    """
    if "upstream" not in values:
        raise usage.UsageError(f"remote {name}: no upstream")
    host, port = parse_hostport(values["upstream"], TLS_PORT)
    if not values.get("cafile") and not values.get("pin"):
        raise usage.UsageError(
            f"remote {name}: --cafile or --pin is required (the shim never sends"
            " anything to a server it cannot verify)"
        )
    if values.get("min-tls", "1.3") not in ("1.2", "1.3"):
        raise usage.UsageError(f"remote {name}: min-tls must be 1.2 or 1.3")
    _check_pem(values.get("cafile"), "--cafile", identity=False)
    _check_pem(values.get("certfile"), "--certfile", identity=True)
    settings = TLSSettings(
        cafile=values.get("cafile"),
        pin=values.get("pin"),
        certfile=values.get("certfile"),
        min_tls=values.get("min-tls", "1.3"),
        server_name=values.get("server-name"),
        required=True,
    )
    try:
        options = settings.options(host)
    except TLSConfigError as e:
        raise usage.UsageError(f"remote {name}: {e}")
    return Remote(name, listen, explicit, host, port, settings, options)


def _check_pem(path: Optional[str], option: str, identity: bool) -> None:
    """
    A CA file must hold certificates; a certificate file a certificate whose
    key is in it and that is valid now: checked here, so that an error
    names the file (C{FILE: --option: ...}) and an expired client
    certificate is refused before any server refuses it.
    """
    if not path:
        return
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise usage.UsageError(f"{path}: {option}: cannot read: {e.strerror or e}") from None
    try:
        bundle = load_pem_bundle(data, path)
        if identity:
            check_bundle(bundle, path)
        elif not bundle.certificates:
            raise PKIError(f"{path}: no certificate")
    except PKIError as e:
        text = e.message
        text = text[len(path) + 2:] if text.startswith(path + ": ") else text
        raise usage.UsageError(f"{path}: {option}: {text}") from None


def reload(options: Options, factories: Sequence[ClientShimFactory]) -> str:
    """
    SIGHUP: every remote's certificate, CA and pin (and the C{--config}
    file), and the allow list, read again and used by every new session;
    a changed C{upstream} too.  Listeners cannot change without a restart
    (the ports are bound before privileges are dropped): a change to them,
    or a remote added or removed, is noted and left for the next start.

    @raise usage.UsageError: when anything is unusable (nothing changes).
    """
    remotes = {r.name: r for r in build_remotes(options)}
    allow = allow_list(options)
    notes: List[str] = []
    applied: List[str] = []
    for factory in factories:
        remote = remotes.pop(factory.remote_name, None)
        if remote is None:
            notes.append(f"remote {factory.remote_name} is no longer configured:"
                         " still served until a restart")
            continue
        if remote.listen != factory.listen:
            notes.append(f"remote {remote.name}: the new listen {' '.join(remote.listen)}"
                         " needs a restart")
        name = format_hostport(remote.host, remote.port)
        if name != factory.upstream_name:
            factory.upstream = upstream_endpoint(
                factory.clock, remote.host, remote.port, options["handshake-timeout"]
            )
            factory.upstream_name = name
        factory.tls_options = remote.options
        applied.append(remote.name)
    notes += [f"remote {name} is new: needs a restart" for name in remotes]
    for factory in factories:
        factory.allow = allow
    return "; ".join([
        f"TLS settings of {', '.join(applied) or 'no remote'} reloaded",
        f"{len(allow) or 'any'} allowed network(s)",
        *notes,
    ])


def makeService(options: Options, reactor: Any = None, signal_module: ModuleType = signal) -> IService:
    """
    One factory per remote, all listeners in one service.  No I/O here.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    groups = []
    banner = []
    factories: List[ClientShimFactory] = []
    for remote in options["remotes"]:
        name = format_hostport(remote.host, remote.port)
        factory = ClientShimFactory(
            reactor,
            upstream_endpoint(reactor, remote.host, remote.port, options["handshake-timeout"]),
            name,
            allow=options["allowed"],
            idle_timeout=options["idle-timeout"],
            handshake_timeout=options["handshake-timeout"],
            tls_options=remote.options,
            remote_name=remote.name,
            listen=remote.listen,
        )
        factories.append(factory)
        groups.append((factory, remote.listen, remote.explicit))
        trust = " and ".join(
            t for t in (
                f"CA {remote.tls.cafile}" if remote.tls.cafile else "",
                f"pin {remote.tls.pin}" if remote.tls.pin else "",
            ) if t
        )
        banner.append(
            f"nut-client-shim: {', '.join(remote.listen)} -> {name} (TLS {remote.tls.min_tls}+,"
            f" server verified by {trust}, client certificate"
            f" {remote.tls.certfile or 'none'})"
        )
    top = ShimService(reactor, Options.daemon, lambda: reload(options, factories), signal_module,
                      notifier=systemd_notifier(reactor, signal_module),
                      sessions=lambda: sum(len(f.connections) for f in factories))
    listeners = ListenerService(reactor, groups, banner, Options.daemon)
    listeners.setServiceParent(top)
    top.factories = factories  # type: ignore[attr-defined]
    top.listeners = listeners  # type: ignore[attr-defined]
    return top
