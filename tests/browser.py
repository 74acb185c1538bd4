"""Headless Chromium (Debian's `chromium`), driven over the DevTools protocol with websocket-client (already
a dependency of the Kubernetes client): a page loaded as a browser shows it, its visible text, its size,
a screenshot and a print to PDF. The flags keep Chromium off this machine's closed network."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import websocket

from infra.polling import Observation, poll_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1")


def available() -> bool:
    return Path(CHROMIUM).is_file()


class Page:
    """One tab: commands in, results out (events are skipped)."""

    def __init__(self, socket_url: str) -> None:
        self._socket = websocket.create_connection(socket_url, timeout=30, suppress_origin=True)
        self._ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            answer = json.loads(self._socket.recv())
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url: str, width: int, height: int, deadline_s: float = 20) -> None:
        """Load the page at a window size and wait until the document has loaded."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        self.send("Page.navigate", url=url)
        def loaded() -> Observation[bool]:
            state = self.evaluate("document.readyState")
            return Observation(state == "complete", True, f"readyState {state!r}")

        poll_until(loaded, what=f"{url} to load in Chromium", timeout=deadline_s)

    def evaluate(self, expression: str) -> Any:
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png",
                                                    captureBeyondViewport=True)["data"]))

    def print_pdf(self) -> bytes:
        """As the browser prints it on A4, with the page's own print styles."""
        return base64.b64decode(self.send("Page.printToPDF", paperWidth=8.27, paperHeight=11.69,
                                          printBackground=True)["data"])

    def close(self) -> None:
        self._socket.close()


def pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF Chromium printed (its page tree states the count)."""
    counts = [int(n) for n in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count (\d+)", pdf)]
    return max(counts) if counts else 0


@contextmanager
def chromium() -> Iterator[Page]:
    """A fresh headless Chromium with its own profile, one tab, closed afterwards."""
    with tempfile.TemporaryDirectory() as profile, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                    f"--remote-debugging-port={port}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def listed() -> Observation[str]:
                targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                url = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
                return Observation(url is not None, url, f"{len(targets)} targets, no page")

            page_socket = poll_until(listed, what=f"Chromium's DevTools on port {port} to list a page", timeout=30)
            assert page_socket
            page = Page(page_socket)
            try:
                yield page
            finally:
                page.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
