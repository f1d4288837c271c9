"""
A small client of the Chrome DevTools Protocol over C{--remote-debugging-pipe},
for driving Debian's headless Chromium from the integration tests.

Why this and not Selenium, Playwright or pyppeteer: all of them download
or pin a browser build, or need a driver binary matching the browser; the
pipe transport needs neither a WebSocket library nor a port -- Chromium
reads JSON commands from file descriptor 3 and writes answers and events
to descriptor 4, each message ended by a NUL byte.  Blocking, with bounded
waits, like the rest of the test harness.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional

__all__ = ["Browser", "find_chromium"]


def find_chromium() -> Optional[str]:
    """
    Debian's Chromium binary (the launcher script's target), if installed.
    """
    for path in ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser"):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


class CDPError(Exception):
    pass


class Browser:
    """
    One headless Chromium with one page.

    @param binary: the Chromium executable.
    @param log: where its standard error goes.
    """

    def __init__(self, binary: str, log: str, width: int = 1200, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="nutshim-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The child sees them as descriptors 3 (commands) and 4 (answers).
        self._log = open(log, "ab")
        args = [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "about:blank"]

        def fds() -> None:
            # Out of the way first: either pipe end may itself be 3 or 4.
            commands = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            answers = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, pass_fds=(3, 4), preexec_fn=fds,
                                     start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self.events: List[Dict[str, Any]] = []
        self.session: Optional[str] = None

    # Transport.

    def _send(self, message: Dict[str, Any]) -> None:
        os.write(self._to_child, json.dumps(message).encode() + b"\0")

    def _read(self, deadline: float) -> Dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("no answer from Chromium")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise CDPError("Chromium went away")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)  # type: ignore[no-any-return]

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, timeout: float = 30.0,
             page: bool = True) -> Dict[str, Any]:
        """
        Send one command (to the page's session unless C{page} is false)
        and wait for its answer; events meanwhile are kept in C{events}.
        """
        self._next += 1
        ident = self._next
        message: Dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if page and self.session is not None:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == ident:
                if "error" in answer:
                    raise CDPError(f"{method}: {answer['error']}")
                return answer.get("result", {})  # type: ignore[no-any-return]
            self.events.append(answer)

    # The page.

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, page=False)
        attached = self.call("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, page=False)
        self.session = attached["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Page.navigate", {"url": url})

    def phone(self, width: int = 390, height: int = 844) -> None:
        """
        Look like a phone: narrow viewport, touch, device pixel ratio 3.
        """
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 3, "mobile": True})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise CDPError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 30.0, what: str = "") -> Any:
        """
        Evaluate C{expression} until it is truthy; its value.
        """
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except CDPError:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or expression}"
                             f" (last value {value!r})")

    def screenshot(self, path: str) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close", page=False, timeout=5)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
