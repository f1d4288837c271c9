# -*- test-case-name: nutshim.test.test_upsd_service -*-
"""
What nut-upsd serves from C{ups.conf}: a driver for each section, the
checks nutshim adds to NUT's, and the demo UPS.

The demo exists so that C{twistd -n nut-upsd} on a fresh machine serves
something a NUT client can talk to; it is served only when nothing is
configured (no section in C{ups.conf}, or no C{ups.conf}), never in place
of a configuration that is broken (the readers refuse those with
C{FILE:LINE}).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Optional

from nutshim.config import Config, ConfigError
from nutshim.config.upsconf import UpsSection
from nutshim.drivers.base import IDriver

__all__ = [
    "DEMO_UPS",
    "DriverBuilder",
    "allow_no_device",
    "check_sections",
    "default_driver_builder",
    "demo_section",
    "driver_settings",
]

DEMO_UPS = "demo"

DriverBuilder = Callable[[UpsSection, Config, str, Any], IDriver]


def default_driver_builder(section: UpsSection, config: Config, statepath: str, reactor: Any) -> IDriver:
    """
    nutshim's own drivers run in-process, unless the section says
    C{nutshim-driver = external} (a C{nutshim-driver -a <ups>} process serves
    the socket, which NUT's upsd may share); any other driver name is one of
    NUT's, reached through its socket in STATEPATH.
    """
    assert section.driver is not None and section.port is not None
    external = section.options.get("nutshim-driver", "").lower() == "external"
    from nutshim.drivers.runner import DRIVERS

    if section.driver in DRIVERS and not external:
        return DRIVERS[section.driver](section.name, section.options, config.confdir, reactor)
    from nutshim.drivers.socketdriver import SocketDriver

    return SocketDriver(
        section.name, section.driver, statepath, reactor, maxage=config.upsd.maxage
    )


def driver_settings(options: Mapping[str, str]) -> Dict[str, str]:
    """
    What a driver depends on: every key of the section but the description
    (a new desc must not reconnect the driver).
    """
    return {k: v for k, v in options.items() if k != "desc"}


def check_sections(config: Config) -> None:
    """
    Refuse ups.conf sections naming a nutshim driver that does not exist
    (anything else is one of NUT's drivers, found through its socket).

    @raise ConfigError: naming ups.conf and the section's line.
    """
    from nutshim.drivers.runner import DRIVERS, VALIDATORS

    if config.ups is None:
        return
    for section in config.ups.sections:
        driver = section.driver or ""
        if driver.startswith("nutshim-") and driver not in DRIVERS:
            raise ConfigError(
                os.path.join(config.confdir, "ups.conf"),
                section.lineno,
                f"[{section.name}]: unknown nutshim driver {driver!r}"
                f" (known: {', '.join(sorted(DRIVERS))})",
            )
        validate = VALIDATORS.get(driver)
        if validate is not None and section.options.get("nutshim-driver", "").lower() != "external":
            try:
                validate(section.name, section.options, config.confdir)
            except ValueError as e:
                raise ConfigError(os.path.join(config.confdir, "ups.conf"), section.lineno,
                                  f"[{section.name}]: {e}") from None


def demo_section() -> UpsSection:
    """
    The UPS served when there is no configuration at all.
    """
    return UpsSection(
        name=DEMO_UPS,
        driver="nutshim-sim",
        port="demo.seq",
        desc="nutshim demo UPS (simulated)",
        options={"driver": "nutshim-sim", "port": "demo.seq"},
        lineno=0,
    )


def allow_no_device(config: Config, environ: Optional[Dict[str, str]] = None) -> bool:
    """
    ALLOW_NO_DEVICE from upsd.conf, overridden by the environment as in NUT.
    """
    value = (os.environ if environ is None else environ).get("ALLOW_NO_DEVICE")
    if value is not None:
        word = value.strip().lower()
        if word in ("true", "on", "yes") or (word.isdigit() and int(word) != 0):
            return True
        if word in ("false", "off", "no") or word.isdigit():
            return False
    return config.upsd.allow_no_device
