"""
The Eaton/MGE and Tripp Lite tables (after NUT's C{mge-hid.c} and
C{tripplite-hid.c}: the core variables, status bits and commands; the
multi-phase, outlet-group and ambient-sensor entries of C{mge-hid.c} are
not carried over), and the generic table used for unknown vendors.
"""

from __future__ import annotations

from typing import Optional, Tuple

from nutshim.drivers.usbhid.mapping import (BEEPER, DEFAULT_OFFDELAY, DEFAULT_ONDELAY, HU,
                                            TEST_RESULT, YES_NO, A, B, C, Context, Info, Lookup,
                                            V, capacity_percent, flag, kelvin_celsius, stringid,
                                            table)
from nutshim.drivers.usbhid.tables_apc_cps import (BOOST, CHRG, DISCHRG, FULLYCHARGED, LOWBATT,
                                                   NOBATTERY, ONLINE, OVERLOAD, REPLACEBATT,
                                                   SHUTDOWNIMM, TIMELIMITEXP, _beeper_commands,
                                                   _delay_commands, _delays, _tests)

__all__ = ["MGE_TABLE", "tripplite_table", "GENERIC_TABLE"]

_RW = HU.SEMI_STATIC
MGE_SENSITIVITY = table((0, "normal"), (1, "high"), (2, "low"))
_IN = "UPS.PowerConverter.Input.[1]"

MGE_TABLE: Tuple[Info, ...] = (
    V("battery.charge", "UPS.PowerSummary.RemainingCapacity"),
    V("battery.charge.low", "UPS.PowerSummary.RemainingCapacityLimitSetting", flags=_RW, rw=5),
    V("battery.charge.low", "UPS.PowerSummary.RemainingCapacityLimit", flags=HU.STATIC),
    V("battery.charge.restart", "UPS.PowerSummary.RestartLevel", flags=_RW, rw=3),
    V("battery.runtime", "UPS.PowerSummary.RunTimeToEmpty"),
    V("battery.runtime.low", "UPS.PowerSummary.RemainingTimeLimit", rw=10),
    V("battery.temperature", "UPS.BatterySystem.Battery.Temperature", "%s", kelvin_celsius),
    V("battery.type", "UPS.PowerSummary.iDeviceChemistry", "%s", stringid, HU.STATIC),
    V("battery.voltage", "UPS.BatterySystem.Voltage", "%.1f"),
    V("battery.voltage", "UPS.PowerSummary.Voltage", "%.1f"),
    V("battery.voltage.nominal", "UPS.BatterySystem.ConfigVoltage", flags=HU.STATIC),
    V("battery.voltage.nominal", "UPS.PowerSummary.ConfigVoltage", flags=HU.STATIC),
    V("battery.protection", "UPS.BatterySystem.Battery.DeepDischargeProtection", "%s", YES_NO,
      _RW, 5),
    V("ups.efficiency", "UPS.PowerConverter.Output.Efficiency"),
    V("ups.firmware", "UPS.PowerSummary.iVersion", "%s", stringid, HU.STATIC),
    V("ups.load", "UPS.PowerSummary.PercentLoad"),
    V("ups.load.high", "UPS.Flow.[4].ConfigPercentLoad", flags=_RW, rw=5),
    *_delays("UPS.PowerSummary"),
    V("ups.test.result", "UPS.BatterySystem.Battery.Test", "%s", TEST_RESULT),
    V("ups.test.interval", "UPS.BatterySystem.Battery.TestPeriod", flags=_RW, rw=8),
    V("ups.beeper.status", "UPS.BatterySystem.Battery.AudibleAlarmControl", "%s", BEEPER, _RW),
    V("ups.beeper.status", "UPS.PowerSummary.AudibleAlarmControl", "%s", BEEPER, _RW),
    V("ups.temperature", "UPS.PowerSummary.Temperature", "%s", kelvin_celsius),
    V("ups.power", "UPS.PowerConverter.Output.ApparentPower"),
    V("ups.power.nominal", "UPS.Flow.[4].ConfigApparentPower", flags=HU.STATIC),
    V("ups.realpower", "UPS.PowerConverter.Output.ActivePower"),
    V("ups.realpower.nominal", "UPS.Flow.[4].ConfigActivePower", flags=HU.STATIC),
    V("ups.start.auto", _IN + ".AutomaticRestart", "%s", YES_NO, _RW, 5),
    V("ups.start.reboot", "UPS.PowerConverter.Output.ForcedReboot", "%s", YES_NO, _RW, 5),
    B("UPS.PowerSummary.PresentStatus.ACPresent", ONLINE, quick=True),
    B("UPS.PowerSummary.PresentStatus.Discharging", DISCHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.Charging", CHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit", LOWBATT, quick=True),
    B("UPS.PowerConverter.Output.Overload.[1].PresentStatus.OverThreshold", OVERLOAD),
    B("UPS.PowerSummary.PresentStatus.Overload", OVERLOAD),
    B("UPS.PowerSummary.PresentStatus.NeedReplacement", REPLACEBATT),
    B(_IN + ".PresentStatus.Buck", flag("trim")),
    B(_IN + ".PresentStatus.Boost", BOOST),
    B(_IN + ".PresentStatus.VoltageOutOfRange", flag("vrange")),
    B(_IN + ".PresentStatus.FrequencyOutOfRange", flag("frange")),
    B("UPS.PowerSummary.PresentStatus.Good", flag("off", inverted=True)),
    B("UPS.PowerConverter.Input.[4].PresentStatus.Used", flag("bypassman")),
    B("UPS.PowerSummary.PresentStatus.FanFailure", flag("fanfail")),
    B("UPS.BatterySystem.Battery.PresentStatus.Present", NOBATTERY),
    B("UPS.BatterySystem.Charger.PresentStatus.InternalFailure", flag("chargerfail")),
    B("UPS.BatterySystem.Charger.PresentStatus.VoltageTooHigh", flag("battvolthi")),
    B("UPS.BatterySystem.Battery.PresentStatus.VoltageTooHigh", flag("battvolthi")),
    B("UPS.BatterySystem.Charger.PresentStatus.VoltageTooLow", flag("battvoltlo")),
    B("UPS.PowerSummary.PresentStatus.InternalFailure", flag("commfault")),
    B("UPS.PowerSummary.PresentStatus.OverTemperature", flag("overheat")),
    B("UPS.PowerSummary.PresentStatus.ShutdownImminent", SHUTDOWNIMM),
    V("input.voltage", _IN + ".Voltage", "%.1f"),
    V("input.voltage.nominal", "UPS.Flow.[1].ConfigVoltage", flags=HU.STATIC),
    V("input.current", _IN + ".Current", "%.2f"),
    V("input.current.nominal", "UPS.Flow.[1].ConfigCurrent", "%.2f", flags=HU.STATIC),
    V("input.frequency", _IN + ".Frequency", "%.1f"),
    V("input.frequency.nominal", "UPS.Flow.[1].ConfigFrequency", flags=HU.STATIC),
    V("input.transfer.low", "UPS.PowerConverter.Output.LowVoltageTransfer", flags=_RW, rw=5),
    V("input.transfer.high", "UPS.PowerConverter.Output.HighVoltageTransfer", flags=_RW, rw=5),
    V("input.transfer.boost.low", "UPS.PowerConverter.Output.LowVoltageBoostTransfer",
      flags=_RW, rw=5),
    V("input.transfer.boost.high", "UPS.PowerConverter.Output.HighVoltageBoostTransfer",
      flags=_RW, rw=5),
    V("input.transfer.trim.low", "UPS.PowerConverter.Output.LowVoltageBuckTransfer",
      flags=_RW, rw=5),
    V("input.transfer.trim.high", "UPS.PowerConverter.Output.HighVoltageBuckTransfer",
      flags=_RW, rw=5),
    V("input.sensitivity", "UPS.PowerConverter.Output.SensitivityMode", "%s", MGE_SENSITIVITY,
      _RW, 10),
    V("output.voltage", "UPS.PowerConverter.Output.Voltage", "%.1f"),
    V("output.voltage.nominal", "UPS.Flow.[4].ConfigVoltage", flags=_RW, rw=3),
    V("output.current", "UPS.PowerConverter.Output.Current", "%.2f"),
    V("output.current.nominal", "UPS.Flow.[4].ConfigCurrent", "%.2f"),
    V("output.frequency", "UPS.PowerConverter.Output.Frequency", "%.1f"),
    V("output.frequency.nominal", "UPS.Flow.[4].ConfigFrequency", flags=HU.STATIC),
    *_tests("UPS.BatterySystem.Battery.Test"),
    *_delay_commands("UPS.PowerSummary"),
    *_beeper_commands("UPS.BatterySystem.Battery.AudibleAlarmControl"),
    *_beeper_commands("UPS.PowerSummary.AudibleAlarmControl"),
)


def _scaled(scale: float, fmt: str = "%.1f") -> Lookup:
    def fun(value: float, ctx: Context) -> Optional[str]:
        return fmt % (scale * value)
    return Lookup(fun=fun)


def _chemistry(product_id: int) -> Lookup:
    def fun(value: float, ctx: Context) -> Optional[str]:
        # AVR550U (1003) and OMNI1000LCD (2005) point at a bogus string.
        if product_id in (0x1003, 0x2005):
            return "unknown"
        return ctx.string(int(value))
    return Lookup(fun=fun)


def _tripplite_scales(product_id: int) -> Tuple[float, float, float, float]:
    """
    C{(battery, voltage, frequency, current)} scale factors by product,
    as C{tripplite-hid.c}'s device table assigns them.
    """
    if product_id in (0x3016, 0x3024):
        return 100000.0, 100000.0, 0.01, 0.01
    if 0x1003 <= product_id <= 0x2014:
        return 0.1, 1.0, 1.0, 1.0
    return 1.0, 1.0, 1.0, 1.0


def tripplite_table(product_id: int) -> Tuple[Info, ...]:
    """
    The Tripp Lite table, whose scale factors depend on the product.
    """
    batt, volt, freq, amp = _tripplite_scales(product_id)
    out = "UPS.OutletSystem.Outlet"
    conv = "UPS.PowerConverter"
    return (
        V("battery.charge", "UPS.PowerSummary.RemainingCapacity"),
        V("battery.charge", "UPS.BatterySystem.Battery.RemainingCapacity"),
        V("battery.charge.low", "UPS.PowerSummary.RemainingCapacityLimit", flags=_RW, rw=5),
        V("battery.charge.warning", "UPS.PowerSummary.WarningCapacityLimit"),
        V("battery.runtime", "UPS.PowerSummary.RunTimeToEmpty"),
        V("battery.voltage.nominal", "UPS.BatterySystem.Battery.ConfigVoltage", "%.1f",
          flags=HU.STATIC),
        V("battery.voltage", "UPS.BatterySystem.Battery.Voltage", "%s", _scaled(batt)),
        V("battery.type", "UPS.PowerSummary.iDeviceChemistry", "%s", _chemistry(product_id),
          HU.STATIC),
        V("battery.temperature", "UPS.BatterySystem.Temperature", "%s", kelvin_celsius),
        A("ups.delay.start", out + ".DelayBeforeStartup", DEFAULT_ONDELAY),
        A("ups.delay.start", out + ".TLDelayBeforeStartup", DEFAULT_ONDELAY),
        A("ups.delay.shutdown", out + ".DelayBeforeShutdown", DEFAULT_OFFDELAY),
        V("ups.timer.start", out + ".DelayBeforeStartup", flags=HU.QUICK),
        V("ups.timer.shutdown", out + ".DelayBeforeShutdown", flags=HU.QUICK),
        V("ups.timer.reboot", out + ".DelayBeforeReboot", flags=HU.QUICK),
        V("ups.test.result", "UPS.BatterySystem.Test", "%s", TEST_RESULT),
        V("ups.beeper.status", "UPS.PowerSummary.AudibleAlarmControl", "%s", BEEPER),
        V("ups.power.nominal", "UPS.Flow.ConfigApparentPower", flags=HU.STATIC),
        V("ups.power", out + ".ActivePower", "%.1f"),
        V("ups.power", conv + ".Output.ActivePower", "%.1f"),
        V("ups.load", out + ".PercentLoad"),
        V("ups.firmware", "UPS.TLCustom.[1].UPSFirmwareVersion", flags=HU.STATIC),
        B("UPS.PowerSummary.PresentStatus.InternalFailure", flag("commfault")),
        B("UPS.PowerSummary.PresentStatus.ShutdownImminent", SHUTDOWNIMM),
        B("UPS.PowerSummary.PresentStatus.ACPresent", ONLINE, quick=True),
        B("UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit", LOWBATT, quick=True),
        B("UPS.PowerSummary.PresentStatus.FullyCharged", FULLYCHARGED, quick=True),
        B("UPS.PowerSummary.PresentStatus.Charging", CHRG, quick=True),
        B("UPS.PowerSummary.PresentStatus.Discharging", DISCHRG, quick=True),
        B("UPS.PowerSummary.PresentStatus.FullyDischarged", flag("depleted"), quick=True),
        B("UPS.PowerSummary.PresentStatus.NeedReplacement", REPLACEBATT),
        B("UPS.PowerSummary.PresentStatus.TLACPresent", ONLINE, quick=True),
        B("UPS.PowerSummary.PresentStatus.TLDischarging", DISCHRG, quick=True),
        B("UPS.PowerSummary.PresentStatus.TLCharging", CHRG, quick=True),
        B("UPS.PowerSummary.PresentStatus.TLNeedReplacement", REPLACEBATT),
        B(conv + ".PresentStatus.VoltageOutOfRange", flag("vrange")),
        B(conv + ".PresentStatus.Buck", flag("trim")),
        B(conv + ".PresentStatus.Boost", BOOST),
        B(conv + ".PresentStatus.Overload", OVERLOAD),
        B(conv + ".PresentStatus.OverTemperature", flag("overheat")),
        B(conv + ".PresentStatus.InternalFailure", flag("commfault")),
        B(conv + ".PresentStatus.AwaitingPower", flag("awaitingpower")),
        V("ups.load.nominal", "UPS.Flow.ConfigPercentLoad"),
        V("input.voltage.nominal", "UPS.PowerSummary.Input.ConfigVoltage", flags=HU.STATIC),
        V("input.voltage", "UPS.PowerSummary.Input.Voltage", "%s", _scaled(volt)),
        V("input.voltage", conv + ".Input.Voltage", "%s", _scaled(volt)),
        V("input.frequency", conv + ".Input.Frequency", "%s", _scaled(freq)),
        V("input.transfer.low", conv + ".Output.LowVoltageTransfer", "%.1f", flags=_RW, rw=5),
        V("input.transfer.high", conv + ".Output.HighVoltageTransfer", "%.1f", flags=_RW, rw=5),
        V("output.voltage.nominal", "UPS.Flow.ConfigVoltage", flags=HU.STATIC),
        V("output.voltage", conv + ".Output.Voltage", "%s", _scaled(volt)),
        V("output.voltage", "UPS.PowerSummary.Voltage", "%s", _scaled(volt)),
        V("output.current", conv + ".Output.Current", "%s", _scaled(amp)),
        V("output.frequency.nominal", "UPS.Flow.ConfigFrequency", flags=HU.STATIC),
        V("output.frequency", conv + ".Output.Frequency", "%s", _scaled(freq)),
        *_tests("UPS.BatterySystem.Test"),
        C("load.off.delay", out + ".DelayBeforeShutdown", DEFAULT_OFFDELAY),
        C("load.on.delay", out + ".DelayBeforeStartup", DEFAULT_ONDELAY),
        C("load.on.delay", out + ".TLDelayBeforeStartup", DEFAULT_ONDELAY),
        C("shutdown.stop", out + ".DelayBeforeShutdown", "-1"),
        C("shutdown.reboot", out + ".DelayBeforeReboot", "10"),
        *_beeper_commands("UPS.PowerSummary.AudibleAlarmControl"),
    )


#: Unknown vendors: the standard Power Device paths the vendor tables
#: share (NUT's C{explore} subdriver maps nothing; this is nutshim's own).
GENERIC_TABLE: Tuple[Info, ...] = (
    V("battery.charge", "UPS.PowerSummary.RemainingCapacity", "%s", capacity_percent),
    V("battery.charge.low", "UPS.PowerSummary.RemainingCapacityLimit", flags=_RW, rw=10),
    V("battery.charge.warning", "UPS.PowerSummary.WarningCapacityLimit"),
    V("battery.runtime", "UPS.PowerSummary.RunTimeToEmpty"),
    V("battery.runtime", "UPS.Battery.RunTimeToEmpty"),
    V("battery.runtime.low", "UPS.PowerSummary.RemainingTimeLimit", flags=_RW, rw=10),
    V("battery.voltage", "UPS.PowerSummary.Voltage", "%.1f"),
    V("battery.voltage", "UPS.Battery.Voltage", "%.1f"),
    V("battery.voltage.nominal", "UPS.PowerSummary.ConfigVoltage", "%.1f"),
    V("battery.voltage.nominal", "UPS.Battery.ConfigVoltage", "%.1f"),
    V("battery.type", "UPS.PowerSummary.iDeviceChemistry", "%s", stringid),
    V("battery.temperature", "UPS.Battery.Temperature", "%s", kelvin_celsius),
    V("ups.load", "UPS.Output.PercentLoad"),
    V("ups.load", "UPS.PowerSummary.PercentLoad"),
    V("ups.beeper.status", "UPS.PowerSummary.AudibleAlarmControl", "%s", BEEPER),
    *_delays("UPS.PowerSummary"),
    *_delays("UPS.Output"),
    V("ups.test.result", "UPS.Battery.Test", "%s", TEST_RESULT),
    B("UPS.PowerSummary.PresentStatus.ACPresent", ONLINE, quick=True),
    B("UPS.PowerSummary.PresentStatus.Discharging", DISCHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.Charging", CHRG, quick=True),
    B("UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit", LOWBATT, quick=True),
    B("UPS.PowerSummary.PresentStatus.ShutdownImminent", SHUTDOWNIMM),
    B("UPS.PowerSummary.PresentStatus.FullyCharged", FULLYCHARGED),
    B("UPS.PowerSummary.PresentStatus.Overload", OVERLOAD),
    B("UPS.PowerSummary.PresentStatus.NeedReplacement", REPLACEBATT),
    B("UPS.PowerSummary.PresentStatus.RemainingTimeLimitExpired", TIMELIMITEXP),
    B("UPS.PowerSummary.PresentStatus.BatteryPresent", NOBATTERY),
    V("input.voltage", "UPS.Input.Voltage", "%.1f"),
    V("input.voltage.nominal", "UPS.Input.ConfigVoltage"),
    V("input.frequency", "UPS.Input.Frequency", "%.1f"),
    V("input.transfer.low", "UPS.Input.LowVoltageTransfer", flags=_RW, rw=10),
    V("input.transfer.high", "UPS.Input.HighVoltageTransfer", flags=_RW, rw=10),
    V("output.voltage", "UPS.Output.Voltage", "%.1f"),
    V("output.voltage.nominal", "UPS.Output.ConfigVoltage"),
    V("output.frequency", "UPS.Output.Frequency", "%.1f"),
    *_tests("UPS.Battery.Test"),
    *_tests("UPS.Output.Test"),
    *_delay_commands("UPS.PowerSummary"),
    *_delay_commands("UPS.Output"),
    *_beeper_commands("UPS.PowerSummary.AudibleAlarmControl"),
)
