# -*- test-case-name: nutshim.test.test_dstate -*-
"""
C{nutshim-driver}: run nutshim's drivers as processes, the way NUT runs its own.

NUT's upsd only ever reads drivers through their sockets
C{<statepath>/<driver>-<upsname>}.  Started like a NUT driver
(C{nutshim-driver -a <upsname>}, configured by the same C{ups.conf} section
with C{driver = nutshim-sim}), a nutshim driver serves exactly that socket
(L{nutshim.drivers.socketserver}), so NUT's C upsd, upsmon and the whole NUT
tool chain can use nutshim's simulated UPS without knowing it is not C.
C{nutshim-driver --all} starts every C{nutshim-*} section in one process,
like C{upsdrvctl start}.

The process stays in the foreground (C{-F} is accepted for compatibility);
run it under a service manager.  It does not switch users (C{-u} is accepted
and ignored): run it as the user or group upsd runs as, since the socket is
created with mode 0660 as NUT's drivers do.
"""

from __future__ import annotations

import argparse
import os
import socket
import stat
import sys
from typing import Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple, cast

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.logger import Logger

from nutshim.config import ConfigError, UpsSection, load_ups_conf, paths
from nutshim.drivers.base import IDriver
from nutshim.drivers.socketserver import DriverSocketFactory

__all__ = ["DRIVERS", "DriverFactory", "main", "parse_args", "select_sections",
           "prepare_socket", "run"]

log = Logger()

#: C{(ups_name, section_options, confdir, clock) -> IDriver}.
DriverFactory = Callable[[str, Mapping[str, str], str, Any], IDriver]


def _make_sim(ups_name: str, options: Mapping[str, str], confdir: str, clock: Any) -> IDriver:
    from nutshim.drivers.sim import make_sim_driver

    return cast(IDriver, make_sim_driver(ups_name, options, confdir, clock))


def _make_usbhid(ups_name: str, options: Mapping[str, str], confdir: str, clock: Any) -> IDriver:
    from nutshim.drivers.usbhid.factory import make_usbhid_driver

    return cast(IDriver, make_usbhid_driver(ups_name, options, confdir, clock))


def _make_heartbeat(ups_name: str, options: Mapping[str, str], confdir: str,
                    clock: Any) -> IDriver:
    from nutshim.drivers.heartbeat import make_heartbeat_driver

    return cast(IDriver, make_heartbeat_driver(ups_name, options, confdir, clock))


#: The drivers C{nutshim-driver} can run, by ups.conf C{driver} name.
DRIVERS: Dict[str, DriverFactory] = {"nutshim-sim": _make_sim, "nutshim-usbhid": _make_usbhid,
                                     "nutshim-heartbeat": _make_heartbeat}


def _check_usbhid(ups_name: str, options: Mapping[str, str], confdir: str) -> None:
    from nutshim.drivers.usbhid.factory import validate_options

    validate_options(ups_name, options, confdir)


def _check_heartbeat(ups_name: str, options: Mapping[str, str], confdir: str) -> None:
    from nutshim.drivers.heartbeat import parse_interval

    parse_interval(options.get("interval"))


#: Checks of a section's options made before anything starts (C{ValueError}).
VALIDATORS: Dict[str, Callable[[str, Mapping[str, str], str], None]] = {
    "nutshim-usbhid": _check_usbhid, "nutshim-heartbeat": _check_heartbeat}


class UsageError(Exception):
    """
    A problem with the command line or the configuration; exits with 1.
    """


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """
    The command line, NUT-style: C{-a <upsname>} or C{--all}.
    """
    parser = argparse.ArgumentParser(
        prog="nutshim-driver",
        description="Serve nutshim drivers on NUT driver sockets for NUT's upsd.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("-a", dest="ups", metavar="UPSNAME",
                       help="serve the ups.conf section UPSNAME")
    which.add_argument("--all", action="store_true",
                       help="serve every section whose driver is a nutshim driver")
    parser.add_argument("-c", "--confdir", metavar="DIR",
                        help="directory of ups.conf (default: $NUT_CONFPATH or %s)"
                        % (paths.DEFAULT_CONFDIR,))
    parser.add_argument("--statepath", metavar="DIR",
                        help="socket directory (default: $NUT_STATEPATH, ups.conf"
                        " STATEPATH, or %s)" % (paths.DEFAULT_STATEPATH,))
    parser.add_argument("-x", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="override a ups.conf setting (with -a)")
    parser.add_argument("-D", dest="debug", action="count", default=0,
                        help="more logging")
    parser.add_argument("-F", dest="foreground", action="count", default=0,
                        help="stay in the foreground (always the case)")
    parser.add_argument("-u", dest="user", help="ignored: nutshim-driver does not switch users")
    parser.add_argument("-k", dest="kill", action="store_true",
                        help="with -a: tell the UPS to cut its load (nutshim-usbhid), then exit")
    return parser.parse_args(list(argv))


def select_sections(
    sections: Sequence[UpsSection], ups: Optional[str], extra: Sequence[str] = ()
) -> List[UpsSection]:
    """
    The sections to serve: the one named C{ups} (compared case-insensitively,
    as upsd does; C{extra} C{key=value} pairs override its options), or every
    C{nutshim-*} section.

    @raise UsageError: if nothing matches or a driver is not known.
    """
    if ups is None:
        chosen = [s for s in sections if (s.driver or "").startswith("nutshim-")]
        if not chosen:
            raise UsageError("no section of ups.conf uses a nutshim driver")
    else:
        found = [s for s in sections if s.name.lower() == ups.lower()]
        if not found:
            raise UsageError("no section [%s] in ups.conf" % (ups,))
        section = found[0]
        options = dict(section.options)
        for pair in extra:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError("-x wants KEY=VALUE, not %r" % (pair,))
            options[key] = value
        chosen = [UpsSection(section.name, options.get("driver", section.driver),
                             options.get("port", section.port), section.desc,
                             options, section.lineno)]
    for section in chosen:
        if section.driver not in DRIVERS:
            raise UsageError("[%s]: driver %r is not a nutshim driver (known: %s)"
                             % (section.name, section.driver, ", ".join(sorted(DRIVERS))))
    return chosen


def prepare_socket(path: str) -> None:
    """
    Remove a socket left behind by a driver that died, as NUT does; refuse
    to remove anything else, or a socket on which a driver still listens.

    @raise UsageError: if C{path} is in use or is not a socket.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise UsageError("%s exists and is not a socket" % (path,))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise UsageError("a driver is already serving %s" % (path,))


def _serve(
    reactor: Any, section: UpsSection, confdir: str, statepath: str
) -> Tuple[IDriver, "Deferred[Any]"]:
    assert section.driver is not None
    path = os.path.join(statepath, section.socket_name)
    prepare_socket(path)
    try:
        driver: Any = DRIVERS[section.driver](section.name, section.options, confdir, reactor)
    except (ValueError, OSError) as e:
        raise UsageError("[%s]: %s" % (section.name, e)) from e
    factory = DriverSocketFactory(driver, reactor)
    endpoint = UNIXServerEndpoint(reactor, path, mode=0o660)  # type: ignore[no-untyped-call]
    listening: Deferred[Any] = endpoint.listen(factory)  # type: ignore[no-untyped-call]
    driver.start()
    log.info("{ups}: {driver} serving {path}", ups=section.name, driver=section.driver, path=path)
    return driver, listening


async def run(reactor: Any, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """
    Read ups.conf, start the drivers, serve their sockets until the reactor
    stops; then stop the drivers and remove the sockets.

    @raise UsageError: for configuration problems.
    """
    confdir = paths.confdir(args.confdir, environ)
    conf_path = os.path.join(confdir, "ups.conf")
    try:
        conf = load_ups_conf(conf_path)
    except ConfigError as e:
        raise UsageError(str(e)) from e
    if conf is None:
        raise UsageError("%s not found" % (conf_path,))
    for warning in conf.warnings:
        log.warn("{problem}", problem=str(warning))
    statepath = paths.statepath(args.statepath, conf.statepath, environ)
    sections = select_sections(conf.sections, args.ups, args.extra)
    if args.user:
        log.info("-u {user} ignored: nutshim-driver does not switch users", user=args.user)
    drivers: List[Any] = []
    ports: List[Any] = []

    def shutdown() -> "Deferred[Any]":
        for driver in drivers:
            driver.stop()
        return DeferredList([maybeDeferred(p.stopListening) for p in ports])

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    for section in sections:
        driver, listening = _serve(reactor, section, confdir, statepath)
        drivers.append(driver)
        try:
            ports.append(await listening)
        except Exception as e:
            raise UsageError("cannot serve [%s]: %s" % (section.name, e)) from e
    # Serve until the reactor stops (SIGTERM, SIGINT).
    await Deferred()


def _start_logging(debug: int) -> None:
    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                globalLogBeginner, textFileLogObserver)

    level = LogLevel.debug if debug else LogLevel.info
    # (zope interfaces are not types to mypy without its plugin.)
    text: Any = textFileLogObserver(sys.stderr)
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=level)
    observer: Any = FilteringLogObserver(text, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """
    The C{nutshim-driver} console script.
    """
    from twisted.internet.task import react

    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.kill:
        from nutshim.drivers.usbhid.poweroff import main as poweroff

        sys.exit(poweroff(["-a", args.ups or ""] + (["-c", args.confdir] if args.confdir else [])))
    _start_logging(args.debug)

    async def _main(reactor: Any) -> None:
        try:
            await run(reactor, args, os.environ)
        except UsageError as e:
            log.error("nutshim-driver: {error}", error=e)
            raise SystemExit(1)

    react(lambda reactor: Deferred.fromCoroutine(_main(reactor)))


if __name__ == "__main__":
    main()
