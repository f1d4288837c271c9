"""
The APC and CyberPower tables: the HID paths and NUT variables of NUT's
C{apc-hid.c} and C{cps-hid.c} (names, paths, formats and command values
are NUT's documented mapping; the tables are written anew here).
"""

from __future__ import annotations

from typing import Optional, Tuple

from nutshim.drivers.usbhid.mapping import (BEEPER, DEFAULT_OFFDELAY, DEFAULT_ONDELAY, HU,
                                            TEST_RESULT, A, B, C, Context, Info, Lookup, V,
                                            date_conversion, flag, kelvin_celsius, stringid,
                                            table)

__all__ = ["APC_TABLE", "CPS_TABLE", "apc_date", "cps_battery_voltage"]

ONLINE = flag("online")
DISCHRG = flag("dischrg")
CHRG = flag("chrg")
LOWBATT = flag("lowbatt")
SHUTDOWNIMM = flag("shutdownimm")
OVERLOAD = flag("overload")
REPLACEBATT = flag("replacebatt")
TIMELIMITEXP = flag("timelimitexp")
NOBATTERY = flag("nobattery", inverted=True)
FULLYCHARGED = flag("fullycharged")
BOOST = flag("boost")


def _apc_date_text(value: float, ctx: Context) -> Optional[str]:
    v = int(value)
    if v == 0:
        return "not set"
    # "hexadecimal as decimal": 0x102202 is 2002/10/22.
    year = (v & 0xF) + 10 * ((v >> 4) & 0xF)
    month = ((v >> 16) & 0xF) + 10 * ((v >> 20) & 0xF)
    day = ((v >> 8) & 0xF) + 10 * ((v >> 12) & 0xF)
    year += 1900 if year >= 70 else 2000
    return f"{year:04d}/{month:02d}/{day:02d}"


def _apc_date_value(text: str) -> Optional[float]:
    try:
        year, month, day = (int(x) for x in text.split("/"))
    except ValueError:
        return None
    if year >= 2070 or month > 12 or day > 31:
        return 0.0
    year %= 100
    return float((((year // 10) & 0xF) << 4) + year % 10 + (((month // 10) & 0xF) << 20)
                 + ((month % 10) << 16) + (((day // 10) & 0xF) << 12) + ((day % 10) << 8))


apc_date = Lookup(fun=_apc_date_text, nuf=_apc_date_value)
APC_SENSITIVITY = table((0, "low"), (1, "medium"), (2, "high"))
APC_STATUSFLAG = table((8, "!off"), (16, "!off"), (0, "off"))
APC_LINEFAIL_VRANGE = table((1, "vrange"), (2, "vrange"), (4, "vrange"), (8, "vrange"),
                            (9, "vrange"), (0, "!vrange"))
APC_LINEFAIL_FRANGE = table((7, "frange"), (0, "!frange"))

_RW = HU.SEMI_STATIC


def _delays(prefix: str, reboot: str = "DelayBeforeReboot") -> Tuple[Info, ...]:
    return (A("ups.delay.start", f"{prefix}.DelayBeforeStartup", DEFAULT_ONDELAY),
            A("ups.delay.shutdown", f"{prefix}.DelayBeforeShutdown", DEFAULT_OFFDELAY),
            V("ups.timer.start", f"{prefix}.DelayBeforeStartup", flags=HU.QUICK),
            V("ups.timer.shutdown", f"{prefix}.DelayBeforeShutdown", flags=HU.QUICK),
            V("ups.timer.reboot", f"{prefix}.{reboot}", flags=HU.QUICK))


def _delay_commands(prefix: str, reboot: str = "DelayBeforeReboot") -> Tuple[Info, ...]:
    return (C("load.off.delay", f"{prefix}.DelayBeforeShutdown", DEFAULT_OFFDELAY),
            C("load.on.delay", f"{prefix}.DelayBeforeStartup", DEFAULT_ONDELAY),
            C("shutdown.stop", f"{prefix}.DelayBeforeShutdown", "-1"),
            C("shutdown.reboot", f"{prefix}.{reboot}", "10"))


def _beeper_commands(path: str, off: str = "1") -> Tuple[Info, ...]:
    return (C("beeper.enable", path, "2"), C("beeper.disable", path, off),
            C("beeper.mute", path, "3"))


def _tests(path: str) -> Tuple[Info, ...]:
    return (C("test.battery.start.quick", path, "1"), C("test.battery.start.deep", path, "2"),
            C("test.battery.stop", path, "3"))


_APC_GEN = "UPS.APCGeneralCollection.APC"
APC_TABLE: Tuple[Info, ...] = (
    V("battery.charge", "UPS.PowerSummary.RemainingCapacity"),
    V("battery.charge.low", "UPS.PowerSummary.RemainingCapacityLimit", flags=_RW, rw=10),
    V("battery.charge.warning", "UPS.PowerSummary.WarningCapacityLimit"),
    V("battery.runtime", "UPS.Battery.RunTimeToEmpty"),
    V("battery.runtime", "UPS.PowerSummary.RunTimeToEmpty"),
    V("battery.runtime.low", "UPS.Battery.RemainingTimeLimit", flags=_RW, rw=10),
    V("battery.runtime.low", "UPS.PowerSummary.RemainingTimeLimit", flags=_RW, rw=10),
    V("battery.voltage", "UPS.Battery.Voltage", "%.1f"),
    V("battery.voltage", "UPS.PowerSummary.Voltage", "%.1f"),
    V("battery.voltage.nominal", "UPS.Battery.ConfigVoltage", "%.1f"),
    V("battery.voltage.nominal", "UPS.PowerSummary.ConfigVoltage", "%.1f"),
    V("battery.temperature", "UPS.Battery.Temperature", "%s", kelvin_celsius),
    V("battery.type", "UPS.PowerSummary.iDeviceChemistry", "%s", stringid),
    V("battery.mfr.date", "UPS.Battery.ManufacturerDate", "%s", date_conversion, _RW, 10),
    V("battery.mfr.date", "UPS.PowerSummary.APCBattReplaceDate", "%s", apc_date),
    V("battery.date", "UPS.Battery.APCBattReplaceDate", "%s", apc_date),
    V("ups.load", "UPS.Output.PercentLoad", "%.1f"),
    V("ups.load", "UPS.PowerConverter.PercentLoad"),
    *_delays("UPS.PowerSummary"),
    *_delays("UPS.Output"),
    A("ups.delay.start", _APC_GEN + "DelayBeforeStartup", DEFAULT_ONDELAY),
    A("ups.delay.shutdown", _APC_GEN + "DelayBeforeShutdown", DEFAULT_OFFDELAY),
    V("ups.timer.start", _APC_GEN + "DelayBeforeStartup", flags=HU.QUICK),
    V("ups.timer.shutdown", _APC_GEN + "DelayBeforeShutdown", flags=HU.QUICK),
    V("ups.timer.reboot", _APC_GEN + "DelayBeforeReboot", flags=HU.QUICK),
    V("ups.test.result", "UPS.Battery.Test", "%s", TEST_RESULT),
    V("ups.beeper.status", "UPS.PowerSummary.AudibleAlarmControl", "%s", BEEPER),
    V("ups.mfr.date", "UPS.ManufacturerDate", "%s", date_conversion),
    V("ups.mfr.date", "UPS.PowerSummary.ManufacturerDate", "%s", date_conversion),
    V("ups.realpower.nominal", "UPS.PowerConverter.ConfigActivePower"),
    V("ups.realpower.nominal", "UPS.Output.ConfigActivePower"),
    B("UPS.PowerSummary.PresentStatus.ACPresent", ONLINE, quick=True),
    B("UPS.PowerSummary.PresentStatus.Discharging", DISCHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.Charging", CHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.ShutdownImminent", SHUTDOWNIMM),
    B("UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit", LOWBATT, quick=True),
    B("UPS.PowerSummary.PresentStatus.Overload", OVERLOAD),
    B("UPS.PowerSummary.PresentStatus.NeedReplacement", REPLACEBATT),
    B("UPS.PowerSummary.PresentStatus.RemainingTimeLimitExpired", TIMELIMITEXP),
    B("UPS.PowerSummary.PresentStatus.BatteryPresent", NOBATTERY),
    B("UPS.PowerSummary.Charging", CHRG, quick=True),
    B("UPS.PowerSummary.Discharging", DISCHRG, quick=True),
    B("UPS.PowerSummary.ACPresent", ONLINE, quick=True),
    B("UPS.PowerSummary.BelowRemainingCapacityLimit", LOWBATT, quick=True),
    B("UPS.PowerSummary.ShutdownImminent", SHUTDOWNIMM),
    B("UPS.PowerSummary.APCStatusFlag", APC_STATUSFLAG, quick=True),
    B("UPS.Input.APCLineFailCause", APC_LINEFAIL_VRANGE),
    B("UPS.Input.APCLineFailCause", APC_LINEFAIL_FRANGE),
    V("input.voltage", "UPS.Input.Voltage", "%.1f"),
    V("input.voltage.nominal", "UPS.Input.ConfigVoltage"),
    V("input.transfer.low", "UPS.Output.LowVoltageTransfer", flags=_RW, rw=10),
    V("input.transfer.high", "UPS.Output.HighVoltageTransfer", flags=_RW, rw=10),
    V("input.transfer.low", "UPS.Input.LowVoltageTransfer", flags=_RW, rw=10),
    V("input.transfer.high", "UPS.Input.HighVoltageTransfer", flags=_RW, rw=10),
    V("input.sensitivity", "UPS.Input.APCSensitivity", "%s", APC_SENSITIVITY, _RW, 10),
    V("output.voltage", "UPS.Output.Voltage", "%.1f"),
    V("output.voltage.nominal", "UPS.Output.ConfigVoltage", "%.1f"),
    V("output.current", "UPS.Output.Current", "%.2f"),
    V("output.frequency", "UPS.Output.Frequency", "%.1f"),
    V("ambient.temperature", "UPS.APCEnvironment.APCProbe1.Temperature", "%s", kelvin_celsius),
    V("ambient.humidity", "UPS.APCEnvironment.APCProbe1.Humidity", "%.1f"),
    *_tests("UPS.BatterySystem.Battery.Test"),
    *_tests("UPS.Battery.Test"),
    C("test.panel.start", "UPS.APCPanelTest", "1"),
    C("test.panel.stop", "UPS.APCPanelTest", "0"),
    C("test.panel.start", "UPS.PowerSummary.APCPanelTest", "1"),
    C("test.panel.stop", "UPS.PowerSummary.APCPanelTest", "0"),
    *_delay_commands("UPS.PowerSummary"),
    *_delay_commands("UPS.Output"),
    C("load.off.delay", _APC_GEN + "DelayBeforeShutdown", DEFAULT_OFFDELAY),
    C("load.on.delay", _APC_GEN + "DelayBeforeStartup", DEFAULT_ONDELAY),
    C("shutdown.stop", _APC_GEN + "DelayBeforeShutdown", "-1"),
    C("shutdown.reboot", _APC_GEN + "DelayBeforeReboot", "10"),
    C("shutdown.return", "UPS.Output.APCDelayBeforeReboot", "1"),
    *_beeper_commands("UPS.PowerSummary.AudibleAlarmControl"),
)


def _cps_charge(value: float, ctx: Context) -> Optional[str]:
    return "%.0f" % min(value, 100.0)


def _cps_battery_voltage(value: float, ctx: Context) -> Optional[str]:
    # Some 0764:0501 report the battery voltage 1.5 times too high; NUT
    # scales by 2/3 when the reading exceeds 1.4 x the nominal voltage.
    nominal = ctx.get("battery.voltage.nominal")
    scale = 1.0
    try:
        if nominal is not None and float(nominal) and value / float(nominal) > 1.4:
            scale = 2.0 / 3
    except ValueError:
        pass
    return "%.1f" % (scale * value)


cps_battery_voltage = Lookup(fun=_cps_battery_voltage)

CPS_TABLE: Tuple[Info, ...] = (
    V("battery.type", "UPS.PowerSummary.iDeviceChemistry", "%s", stringid),
    V("battery.mfr.date", "UPS.PowerSummary.iOEMInformation", "%s", stringid),
    V("battery.charge.warning", "UPS.PowerSummary.WarningCapacityLimit"),
    V("battery.charge.low", "UPS.PowerSummary.RemainingCapacityLimit", flags=_RW, rw=10),
    V("battery.charge", "UPS.PowerSummary.RemainingCapacity", "%s", Lookup(fun=_cps_charge)),
    V("battery.runtime", "UPS.PowerSummary.RunTimeToEmpty"),
    V("battery.runtime.low", "UPS.PowerSummary.RemainingTimeLimit", flags=_RW, rw=10),
    V("battery.voltage.nominal", "UPS.PowerSummary.ConfigVoltage"),
    V("battery.voltage", "UPS.PowerSummary.Voltage", "%s", cps_battery_voltage),
    V("ups.load", "UPS.Output.PercentLoad"),
    V("ups.beeper.status", "UPS.PowerSummary.AudibleAlarmControl", "%s", BEEPER),
    V("ups.test.result", "UPS.Output.Test", "%s", TEST_RESULT),
    V("ups.realpower.nominal", "UPS.Output.ConfigActivePower"),
    *_delays("UPS.Output"),
    B("UPS.PowerSummary.PresentStatus.ACPresent", ONLINE, quick=True),
    B("UPS.PowerSummary.PresentStatus.Charging", CHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.Discharging", DISCHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit", LOWBATT, quick=True),
    B("UPS.PowerSummary.PresentStatus.FullyCharged", FULLYCHARGED),
    B("UPS.PowerSummary.PresentStatus.RemainingTimeLimitExpired", TIMELIMITEXP),
    B("UPS.Output.Boost", BOOST),
    B("UPS.Output.Overload", OVERLOAD),
    V("input.frequency", "UPS.Input.Frequency", "%.1f"),
    V("input.voltage.nominal", "UPS.Input.ConfigVoltage"),
    V("input.voltage", "UPS.Input.Voltage", "%.1f"),
    V("input.transfer.low", "UPS.Input.LowVoltageTransfer", flags=_RW, rw=10),
    V("input.transfer.high", "UPS.Input.HighVoltageTransfer", flags=_RW, rw=10),
    V("output.frequency", "UPS.Output.Frequency", "%.1f"),
    V("output.voltage", "UPS.Output.Voltage", "%.1f"),
    V("output.voltage.nominal", "UPS.Output.ConfigVoltage"),
    *_tests("UPS.Output.Test"),
    *_delay_commands("UPS.Output"),
    *_beeper_commands("UPS.PowerSummary.AudibleAlarmControl"),
)
