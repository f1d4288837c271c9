# -*- test-case-name: nutshim.test.test_usbhid_driver -*-
"""
A C{driver = nutshim-usbhid} section of ups.conf, made into a driver.

Options (NUT's C{usbhid-ups} names and meanings): C{port} (C{auto}, or
C{replay:FILE} to play a captured device, relative to the configuration
directory), C{vendorid}, C{productid}, C{vendor}, C{product}, C{serial},
C{bus}, C{device} (regular expressions), C{pollinterval} (seconds between
status polls, default 2), C{pollfreq} (seconds between full polls,
default 30), C{offdelay}, C{ondelay}, C{lowbatt}, C{ignorelb},
C{pollonly}, C{subdriver}, C{disable_fix_report_desc}.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Mapping, Optional, Tuple

import usb

from nutshim.drivers.usbhid import capture as capture_mod
from nutshim.drivers.usbhid import quirks
from nutshim.drivers.usbhid.device import Device, Match, MatchError, NoDevice, find, open_device
from nutshim.drivers.usbhid.driver import ThreadWorker, UsbHidUPS, Worker
from nutshim.drivers.usbhid.engine import Options
from nutshim.drivers.usbhid.replay import ReplayBackend
from nutshim.drivers.usbhid.subdrivers import Identity, SubdriverError, choose

__all__ = ["make_usbhid_driver", "make_opener", "replay_path", "validate_options", "REPLAY"]

REPLAY = "replay:"
_PARAMETERS = ("port", "vendorid", "productid", "vendor", "product", "serial", "bus", "device",
               "pollinterval", "pollfreq", "offdelay", "ondelay", "lowbatt", "subdriver")


def replay_path(port: str, confdir: str) -> Optional[str]:
    """
    The capture a C{replay:FILE} port names, or C{None} for a real port.
    """
    if not port.startswith(REPLAY):
        return None
    path = port[len(REPLAY):]
    return path if os.path.isabs(path) else os.path.join(confdir, path)


def _seconds(options: Mapping[str, str], key: str, default: float, ups: str) -> float:
    text = options.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"UPS {ups}: {key} = {text!r} is not a number") from None
    if not 0 < value < 86400:
        raise ValueError(f"UPS {ups}: {key} = {text!r} is out of range")
    return value


def _integer(options: Mapping[str, str], key: str, ups: str) -> Optional[str]:
    text = options.get(key)
    if text is not None and not text.strip().lstrip("-").isdigit():
        raise ValueError(f"UPS {ups}: {key} = {text!r} is not a whole number")
    return text


def make_opener(match: Match, backend: Any = None) -> Callable[[], Device]:
    """
    The blocking function that finds and opens the first matching device.
    """
    def opener() -> Device:
        found = find(match, backend)
        if not found:
            raise NoDevice("no matching USB HID UPS found")
        dev, ident = found[0]
        return open_device(dev, ident, quirks.max_report_size(ident))
    return opener


def _checked(ups_name: str, options: Mapping[str, str], confdir: str
             ) -> Tuple[Match, Options, Optional[str], Optional[capture_mod.Capture], float, float]:
    try:
        match = Match.from_options(options)
    except MatchError as e:
        raise ValueError(f"UPS {ups_name}: {e}") from None
    override = options.get("subdriver")
    if override:
        try:
            choose(Identity(0, 0), override)
        except SubdriverError as e:
            raise ValueError(f"UPS {ups_name}: {e}") from None
    engine_options = Options(ignorelb="ignorelb" in options,
                             lowbatt=_integer(options, "lowbatt", ups_name),
                             ondelay=_integer(options, "ondelay", ups_name),
                             offdelay=_integer(options, "offdelay", ups_name))
    replay = replay_path(options.get("port", "auto"), confdir)
    cap = None
    if replay is not None:
        try:
            cap = capture_mod.load(replay)
        except (OSError, capture_mod.CaptureError) as e:
            raise ValueError(f"UPS {ups_name}: cannot replay {replay}: {e}") from None
    return (match, engine_options, override or None, cap,
            _seconds(options, "pollinterval", 2.0, ups_name),
            _seconds(options, "pollfreq", 30.0, ups_name))


def validate_options(ups_name: str, options: Mapping[str, str], confdir: str) -> None:
    """
    Check a section before anything starts (so that nut-upsd refuses it
    with C{ups.conf:LINE}, as any configuration error).

    @raise ValueError: naming the problem.
    """
    _checked(ups_name, options, confdir)


def make_usbhid_driver(ups_name: str, options: Mapping[str, str], confdir: str, clock: Any,
                       worker: Optional[Worker] = None,
                       backend: Any = None) -> UsbHidUPS:
    """
    Build the driver for a ups.conf section.

    @raise ValueError: for options that cannot work (a bad regex, number
        or subdriver name, an unreadable replay capture).
    """
    match, engine_options, override, cap, pollinterval, pollfreq = _checked(
        ups_name, options, confdir)
    port = options.get("port", "auto")
    usb_version = f"pyusb {getattr(usb, '__version__', '?')} (libusb1 backend)"
    if cap is not None:
        backend = ReplayBackend([cap], realtime=True) if backend is None else backend
        usb_version = f"replay of {os.path.basename(cap.source)}"
    elif backend is None:
        from usb.backend import libusb1

        backend = libusb1.get_backend()
    parameters = {k: options[k] for k in _PARAMETERS if k in options}
    parameters.setdefault("port", port)
    parameters.setdefault("pollinterval", _number(pollinterval))
    parameters.setdefault("pollfreq", _number(pollfreq))
    flags: List[Tuple[str, str]] = [(k, "enabled") for k in
                                    ("ignorelb", "pollonly", "disable_fix_report_desc")
                                    if k in options]
    driver = UsbHidUPS(
        ups_name, clock, make_opener(match, backend),
        worker if worker is not None else ThreadWorker(clock, ups_name),
        engine_options, pollinterval, pollfreq, override or None,
        dict(parameters, **{f"flag.{k}": v for k, v in flags}),
        interrupts="pollonly" not in options,
        fix_quirks="disable_fix_report_desc" not in options, usb_version=usb_version)
    driver.backend = backend
    return driver


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
