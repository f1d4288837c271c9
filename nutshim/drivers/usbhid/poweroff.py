# -*- test-case-name: nutshim.test.test_usbhid_commands -*-
"""
C{nutshim-driver -k -a UPS}: tell a USB HID UPS to cut its load.

The last step of a shutdown (RFC 9271 Appendix B): when nut-upsmon has
created its POWERDOWNFLAG, the system's shutdown script runs this (as it
runs NUT's C{upsdrvctl shutdown} or C{usbhid-ups -k}); the UPS switches
its outlets off after C{offdelay} seconds (C{ups.delay.shutdown}, default
20) and on again C{ondelay} seconds (default 30) after the power returns.
It tries C{shutdown.return}, then C{shutdown.reboot}, then
C{load.off.delay}, as NUT's C{upsdrv_shutdown} does.  One-shot and
blocking: no reactor, no daemon.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping, Optional, Sequence, TextIO

from nutshim.drivers.usbhid import capture as capture_mod
from nutshim.drivers.usbhid.commands import shutdown_ups
from nutshim.drivers.usbhid.device import Match, MatchError
from nutshim.drivers.usbhid.driver import connect
from nutshim.drivers.usbhid.engine import Options, TransportError
from nutshim.drivers.usbhid.factory import make_opener, replay_path
from nutshim.drivers.usbhid.replay import ReplayBackend

__all__ = ["poweroff"]


def poweroff(ups: str, options: Mapping[str, str], confdir: str, backend: Any = None,
             err: TextIO = sys.stderr) -> int:
    """
    Power the UPS of a ups.conf section off (after its delay).

    @return: the exit status: 0 if the UPS took the command.
    """
    try:
        match = Match.from_options(options)
    except MatchError as e:
        err.write(f"nutshim-driver: [{ups}]: {e}\n")
        return 1
    replay = replay_path(options.get("port", "auto"), confdir)
    if backend is None and replay is not None:
        try:
            backend = ReplayBackend([capture_mod.load(replay)])
        except (OSError, capture_mod.CaptureError) as e:
            err.write(f"nutshim-driver: [{ups}]: cannot replay {replay}: {e}\n")
            return 1
    elif backend is None:
        from usb.backend import libusb1

        backend = libusb1.get_backend()
    engine_options = Options(ondelay=options.get("ondelay"), offdelay=options.get("offdelay"))
    try:
        session, _ = connect(make_opener(match, backend), engine_options,
                             options.get("subdriver") or None,
                             "disable_fix_report_desc" not in options)
    except TransportError as e:
        err.write(f"nutshim-driver: [{ups}]: {e}\n")
        return 1
    try:
        done = shutdown_ups(session.engine, session.device)
    finally:
        session.device.close()
    if not done:
        err.write(f"nutshim-driver: [{ups}]: the UPS refused the shutdown commands\n")
        return 1
    delay = session.engine.values.get("ups.delay.shutdown", "?")
    err.write(f"nutshim-driver: [{ups}]: the UPS cuts its load in {delay} s\n")
    return 0


def main(argv: Optional[Sequence[str]] = None, err: TextIO = sys.stderr) -> int:
    """
    C{python -m nutshim.drivers.usbhid.poweroff -a UPS [-c CONFDIR]}.
    """
    import argparse
    import os

    from nutshim.config import ConfigError, load_ups_conf, paths

    parser = argparse.ArgumentParser(prog="nutshim-driver -k")
    parser.add_argument("-a", dest="ups", required=True)
    parser.add_argument("-c", "--confdir")
    args = parser.parse_args(argv)
    confdir = paths.confdir(args.confdir, os.environ)
    try:
        conf = load_ups_conf(os.path.join(confdir, "ups.conf"))
    except ConfigError as e:
        err.write(f"{e}\n")
        return 1
    sections = [s for s in (conf.sections if conf else ()) if s.name.lower() == args.ups.lower()]
    if not sections or sections[0].driver != "nutshim-usbhid":
        err.write(f"nutshim-driver: no nutshim-usbhid section [{args.ups}] in ups.conf\n")
        return 1
    return poweroff(sections[0].name, sections[0].options, confdir, err=err)


if __name__ == "__main__":
    sys.exit(main())
