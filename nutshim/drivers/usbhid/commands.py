# -*- test-case-name: nutshim.test.test_usbhid_commands -*-
"""
Instant commands, writable variables and the UPS power-off, as NUT's
C{usbhid-ups} carries them out (C{instcmd}, C{setvar},
C{upsdrv_shutdown}), on an L{Engine} and anything with C{set_report}.

These run on the driver's USB thread (they block: a SET_REPORT, and the
125 ms pause NUT makes between the two writes of C{shutdown.return} for
devices that drop commands sent too fast).  Each returns the tracking
result upsd reports: what the device answered, not what was hoped.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Protocol

from nutshim.drivers.base import (TRACKING_FAILED, TRACKING_INVALID, TRACKING_SUCCESS,
                                  TRACKING_UNKNOWN)
from nutshim.drivers.usbhid.descriptor import ReportKind
from nutshim.drivers.usbhid.engine import Engine, TransportError, _atol

__all__ = ["Writer", "run_command", "run_setvar", "shutdown_ups", "COMMAND_PAUSE"]

#: NUT waits this long between the two writes of shutdown.return/stayoff.
COMMAND_PAUSE = 0.125


class Writer(Protocol):
    def set_report(self, kind: ReportKind, report_id: int, data: bytes) -> None: ...


def _write(engine: Engine, writer: Writer, var: str, value: float) -> int:
    try:
        field, payload = engine.payload(var, value)
        writer.set_report(field.kind, field.report_id, payload)
    except TransportError:
        return TRACKING_FAILED
    # Keep what the device now holds, for the next write to the report.
    engine.buffers[(field.report_id, field.kind)] = payload
    return TRACKING_SUCCESS


def _convert(engine: Engine, var: str, text: str) -> Optional[float]:
    b = engine.binding(var)
    if b is not None and b.info.lookup is not None and not b.info.is_command:
        return b.info.lookup.value(text)
    return float(_atol(text))


def run_command(engine: Engine, writer: Writer, cmd: str, param: Optional[str] = None,
                sleep: Callable[[float], None] = time.sleep) -> int:
    """
    Carry out an instant command (extra data C{param} replaces the
    command's default value, as in NUT).
    """
    cmd = cmd.lower()
    if cmd == "beeper.on":
        cmd = "beeper.enable"
    elif cmd == "beeper.off":
        cmd = "beeper.disable"
    elif cmd == "beeper.toggle" and "beeper.toggle" in engine.commands:
        enabled = engine.values.get("ups.beeper.status") == "enabled"
        cmd = "beeper.disable" if enabled else "beeper.enable"
    b = engine.binding(cmd)
    if b is None or not b.info.is_command:
        if cmd == "load.on" and engine.binding("load.on.delay"):
            return run_command(engine, writer, "load.on.delay", "0", sleep)
        if cmd == "load.off" and engine.binding("load.off.delay"):
            return run_command(engine, writer, "load.off.delay", "0", sleep)
        if cmd in ("shutdown.return", "shutdown.stayoff") and \
                engine.binding("load.on.delay") and engine.binding("load.off.delay"):
            on = engine.values.get("ups.delay.start") if cmd == "shutdown.return" else "-1"
            result = run_command(engine, writer, "load.on.delay", on, sleep)
            if result != TRACKING_SUCCESS:
                return result
            sleep(COMMAND_PAUSE)
            return run_command(engine, writer, "load.off.delay",
                               engine.values.get("ups.delay.shutdown"), sleep)
        return TRACKING_INVALID
    text = param if param is not None else (b.info.fmt or "0")
    result = _write(engine, writer, cmd, float(_atol(text)))
    if result == TRACKING_SUCCESS and cmd.startswith("beeper."):
        # Show the new state at once (the next full poll reads it back).
        word = {"beeper.enable": "enabled", "beeper.disable": "disabled",
                "beeper.mute": "muted"}.get(cmd)
        if word is not None and "ups.beeper.status" in engine.values:
            engine.values["ups.beeper.status"] = word
    return result


def run_setvar(engine: Engine, writer: Writer, var: str, text: str) -> int:
    """
    Change a writable variable.
    """
    if var not in engine.writable:
        return TRACKING_UNKNOWN
    if engine.server_side(var):
        engine.values[var] = text
        return TRACKING_SUCCESS
    value = _convert(engine, var, text)
    if value is None:
        return TRACKING_INVALID
    result = _write(engine, writer, var, value)
    if result == TRACKING_SUCCESS:
        engine.changed = True
        engine.values[var] = text
    return result


def shutdown_ups(engine: Engine, writer: Writer,
                 sleep: Callable[[float], None] = time.sleep) -> bool:
    """
    Cut the load after C{ups.delay.shutdown} and restore it when power
    returns (RFC 9271 Appendix B; NUT's C{upsdrv_shutdown}): try
    C{shutdown.return}, then C{shutdown.reboot}, then C{load.off.delay}.
    """
    for cmd in ("shutdown.return", "shutdown.reboot", "load.off.delay"):
        if run_command(engine, writer, cmd, None, sleep) == TRACKING_SUCCESS:
            return True
    return False
