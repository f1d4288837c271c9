#!/usr/bin/env bash
# Install everything the tests need (Debian's NUT 2.8.0 for the interop
# tests, a fresh virtualenv with nutshim installed as users install it) and
# run all tests from outside the checkout, so they exercise the installed
# package.  Ends with one line "N passed, N failed[, N skipped]".
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

need_apt=""
for pkg in nut-server nut-client python3-nut libnss3-tools openssl prometheus chromium libusb-1.0-0 stunnel4; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt="$need_apt $pkg"
done
if [ -n "$need_apt" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian packages:$need_apt"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_apt) >/tmp/nutshim-apt.log 2>&1 \
            || { echo "apt-get failed, see /tmp/nutshim-apt.log"; tail -5 /tmp/nutshim-apt.log; }
    else
        echo "Not root: cannot install$need_apt (interop tests will skip outside CI)"
    fi
fi
# Debian's packages start their own upsd/upsmon services where an init
# system runs: the tests use private instances on high ports only.

venv=${NUTSHIM_VENV:-$here/.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" || exit 1
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1
"$venv/bin/python" -m pip install -q "$here[test]" >/tmp/nutshim-pip.log 2>&1 \
    || { echo "pip install failed:"; tail -20 /tmp/nutshim-pip.log; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/tests" "$work/tests"
export NUTSHIM_CHECKOUT="$here"
# Screenshots of the status page (tests/test_web_integration.py) outlive the run.
export NUTSHIM_ARTIFACTS=${NUTSHIM_ARTIFACTS:-/tmp/nutshim-artifacts}
export PATH="$venv/bin:$PATH"
cd "$work"
"$venv/bin/python" -m twisted.trial --reporter=text ${TRIAL_ARGS:-} nutshim.test tests 2>&1 | tee "$work/trial.out"
status=${PIPESTATUS[0]}

summary=$(grep -E '^(PASSED|FAILED) \(' "$work/trial.out" | tail -1)
count() { echo "$summary" | grep -oE "$1=[0-9]+" | cut -d= -f2; }
succ=$(count successes); fail=$(count failures); errs=$(count errors)
skips=$(count skips); unexp=$(count unexpectedSuccesses)
succ=${succ:-0}; fail=${fail:-0}; errs=${errs:-0}; skips=${skips:-0}; unexp=${unexp:-0}
failed=$((fail + errs + unexp))
if [ -z "$summary" ]; then
    failed=$((failed + 1))
fi
if [ "$failed" -ne 0 ] && [ -d "$work/_trial_temp" ]; then
    # Keep the failing run's logs (daemon, driver, upsmon logs live there).
    rm -rf /tmp/nutshim-last-trial && cp -r "$work/_trial_temp" /tmp/nutshim-last-trial 2>/dev/null \
        && echo "logs of this run: /tmp/nutshim-last-trial"
fi
echo
echo "$succ passed, $failed failed, $skips skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
    exit 1
fi
exit 0
