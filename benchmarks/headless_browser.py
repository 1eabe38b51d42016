"""A headless Chromium driven over the DevTools protocol (CDP), with no dependency beyond `websockets` (which
viser already needs): load a page, take screenshots, evaluate JavaScript. Used by tests/viewer/test_viewer_browser.py
and benchmarks/viewer_startup.py.

Chromium runs with its network features off (no QUIC, background networking, component updates, sync) and
WebGL on SwiftShader (software; `--disable-gpu` leaves no other WebGL, and recent Chromium versions enable the
SwiftShader fallback only with `--enable-unsafe-swiftshader`).
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")


def chromium_binary() -> Path | None:
    """Debian's chromium, else one on PATH, else None."""
    if CHROMIUM.is_file():
        return CHROMIUM
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


class HeadlessChromium:
    """``with HeadlessChromium() as browser: browser.navigate(url); image = browser.screenshot()``."""

    def __init__(self, binary: Path | None = None, width: int = 960, height: int = 600, timeout: float = 30.0):
        from websockets.sync.client import connect

        binary = binary or chromium_binary()
        if binary is None:
            raise RuntimeError("no Chromium found (Debian: apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="nerfw-chromium-")
        args = [str(binary), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--mute-audio", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                f"--user-data-dir={self.profile}", "--remote-debugging-port=0", "--remote-allow-origins=*",
                f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise RuntimeError(f"Chromium did not start (exit code {self.proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as response:
            targets = json.load(response)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
        self._id = 0
        self.timeout = timeout
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def call(self, method: str, **params) -> dict:
        """One CDP command; returns its result (events received meanwhile are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.time() + self.timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def navigate(self, url: str, wait: bool = True) -> None:
        """Open ``url``; with ``wait``, return once the page has loaded (document.readyState "complete")."""
        self.call("Page.navigate", url=url)
        deadline = time.time() + self.timeout
        while wait:
            try:
                if self.evaluate("document.readyState") == "complete":
                    return
            except RuntimeError:  # the new document is not attached yet
                pass
            if time.time() > deadline:
                raise RuntimeError(f"{url} did not load within {self.timeout:.0f} s")
            time.sleep(0.02)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self) -> np.ndarray:
        """The page as RGB uint8 [H, W, 3]."""
        from PIL import Image

        data = self.call("Page.captureScreenshot", format="png")["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "HeadlessChromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
