"""The HTML report: self-contained, and checked in a real browser.

Headless Chromium (Debian's package, installed on first use like the test Redmine)
loads the report from a file.  The test drives it over the DevTools protocol on a
pipe (``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file
descriptors 3 and 4, so no websocket library and no port), and collects every
``Runtime.consoleAPICalled`` of type error or assert, every
``Runtime.exceptionThrown``, every ``Log.entryAdded`` of level error (failed loads,
CSP violations) and every ``Network.requestWillBeSent``.  A control page with
deliberate errors proves that the collector sees them.  The screenshot is checked
as a PNG (signature, chunk CRCs, size, image data length) and, decoded by the
browser onto a canvas, for ink.

``SLA_SYNC_DOCS_SCREENSHOT=docs/report.png`` also writes the screenshot there.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sla_sync.html_report import render_html
from sla_sync.neutral import issue_from_json
from sla_sync.policy import load_policy
from sla_sync.report import Period, ReportBuilder
from sla_sync.timers import evaluate
from tests.support import issue_json, run_cli, ts

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "policies" / "redmine-support.yaml"
EXAMPLE_ISSUES = ROOT / "examples" / "issues.jsonl"
EXAMPLE_NOW = "2026-11-27T12:00:00Z"
WIDTH, HEIGHT = 1280, 2000


# -- the page itself, without a browser -------------------------------------------------------


def example_html(tmp_path: Path) -> Path:
    out = tmp_path / "report.html"
    done = run_cli("report", "--policy", str(EXAMPLE_POLICY), "--input", str(EXAMPLE_ISSUES), "--now", EXAMPLE_NOW,
                   "--format", "html", "--output", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_html_report_loads_nothing_from_anywhere(tmp_path: Path) -> None:
    html = example_html(tmp_path).read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "url(" not in html
    assert "@import" not in html
    # the only address is the SVG namespace, an identifier that nothing fetches
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert all(v.startswith("data:") for v in re.findall(r'(?:src|href)="([^"]*)"', html))
    assert "default-src 'none'" in html  # and the browser is told to refuse any request


def test_html_report_has_every_section(tmp_path: Path) -> None:
    html = example_html(tmp_path).read_text(encoding="utf-8")
    for heading in ("Compliance per level over time", "Breaches per week",
                    "Time to first response and to resolution against the targets",
                    "Customer satisfaction over time", "Issues at risk now (5)", "By level"):
        assert f"<h2>{heading}</h2>" in html, heading
    assert html.count("<svg") >= 6


def test_html_report_escapes_what_the_tracker_says() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    now = ts("2026-11-27T15:00:00Z")
    builder = ReportBuilder(policy, "assignee", Period(None, None), now, series=True)
    # a P3 issue created Friday 27 Nov 09:00 Madrid (08:00Z); at 16:00 Madrid the Friday hours 09-15
    # have used 6 h of its 8 h first response: 75 %, at risk, so it is listed among the issues at risk
    raw = {**issue_json("2026-11-27T08:00:00Z", key="<b>K-1</b>"), "title": "<script>alert(1)</script>",
           "assignee": "<i>eve</i>"}
    item = issue_from_json(raw)
    builder.add(item, evaluate(item, policy, now))
    html = render_html(builder.result())
    assert "<script>" not in html and "<b>K-1" not in html and "<i>eve" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;K-1&lt;/b&gt;" in html
    assert "<h2>Issues at risk now (1)</h2>" in html
    assert '<td class="l">&lt;b&gt;K-1&lt;/b&gt;</td>' in html.split("Issues at risk now")[1]


def test_at_risk_table_lists_the_soonest_due_first(tmp_path: Path) -> None:
    html = example_html(tmp_path).read_text(encoding="utf-8")
    table = html.split("Issues at risk now")[1].split("</table>")[0]
    dues = re.findall(r"<td>(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)</td>", table)
    assert len(dues) == 5 and dues == sorted(dues)


# -- a browser over the DevTools protocol ---------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> str:
    """Debian's chromium, installed on first use (needs root, as the Redmine tests do)."""
    found = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("chromium is not installed and installing it needs root: apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-dejavu-core"],
                   check=True, env=env)
    return CHROMIUM


class Browser:
    """Headless Chromium driven over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome = os.pipe()

        def plumb() -> None:  # in the child: the pipe ends on fds 3 (commands) and 4 (answers)
            read_end = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=plumb, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 60) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed the pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def open(self, url: str) -> str:
        """A new page at ``WIDTH`` x ``HEIGHT`` that loads ``url``; its session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session: str = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", {"expression": "1"}, session=session)  # let queued messages arrive
        return session

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value")) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append("exception: "
                             + str(details.get("exception", {}).get("description") or details.get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append("log: " + str(params["entry"].get("text")))
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, EOFError, RuntimeError):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(20)
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    instance = Browser(ensure_chromium(), tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield instance
    finally:
        instance.close()


def png_facts(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG whose structure is sound: signature, chunk CRCs,
    IHDR first and IEND last, and exactly the image data its header announces."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, kinds, idat = 8, [], b""
    header = b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        kinds.append(kind)
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND", kinds
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    assert (depth, interlace) == (8, 0) and colour in (2, 6), (depth, colour, interlace)
    channels = {2: 3, 6: 4}[colour]
    assert len(zlib.decompress(idat)) == height * (1 + width * channels)  # a filter byte per row
    return width, height


INK = """
(async () => {
  const img = new Image();
  img.src = "data:image/png;base64,%s";
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let ink = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    if (v !== 0xffffff) ink++;
    if (colours.size < 500) colours.add(v);
  }
  return JSON.stringify({width: canvas.width, height: canvas.height, ink: ink, colours: colours.size});
})()
"""


def ink_of(browser: Browser, png: bytes) -> dict[str, int]:
    session = browser.open("about:blank")
    done = browser.call("Runtime.evaluate", {"expression": INK % base64.b64encode(png).decode(),
                                             "awaitPromise": True, "returnByValue": True}, session=session)
    facts: dict[str, int] = json.loads(done["result"]["value"])
    return facts


def test_the_collector_sees_console_errors_exceptions_and_failed_loads(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>broken on purpose</p>"
        f'<img src="{(tmp_path / "missing.png").as_uri()}">'
        '<script>console.error("boom"); console.log("fine"); undefinedFunction();</script></body></html>',
        encoding="utf-8",
    )
    browser.open(page.as_uri())
    problems = browser.problems()
    assert any(p == "console: boom" for p in problems), problems
    assert any(p.startswith("exception: ReferenceError: undefinedFunction is not defined") for p in problems), problems
    assert any(p.startswith("log: Failed to load resource") for p in problems), problems
    assert "console: fine" not in problems  # console.log is no error


def test_the_report_opens_in_chromium_without_error_or_request(browser: Browser, tmp_path: Path) -> None:
    page = example_html(tmp_path)
    session = browser.open(page.as_uri())
    assert browser.problems() == []
    assert browser.requests() == [page.as_uri()]  # the page itself, nothing else
    drawn = browser.call("Runtime.evaluate", {
        "expression": "JSON.stringify([document.querySelectorAll('svg').length,"
                      " document.querySelectorAll('svg rect, svg circle, svg polyline').length,"
                      " document.title])",
        "returnByValue": True}, session=session)
    svgs, marks, title = json.loads(drawn["result"]["value"])
    assert svgs >= 6 and marks >= 30
    assert title == "SLA report: acme-support"

    shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
    assert png_facts(shot) == (WIDTH, HEIGHT)
    ink = ink_of(browser, shot)
    assert (ink["width"], ink["height"]) == (WIDTH, HEIGHT)
    assert ink["ink"] > WIDTH * HEIGHT // 50  # more than 2 % of the pixels are not white
    assert ink["colours"] > 20  # charts in several colours, anti-aliased text
    target = os.environ.get("SLA_SYNC_DOCS_SCREENSHOT")
    if target:
        Path(target).write_bytes(shot)


def test_a_blank_page_fails_the_ink_check(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    session = browser.open(page.as_uri())
    shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
    assert png_facts(shot) == (WIDTH, HEIGHT)
    ink = ink_of(browser, shot)
    assert ink["ink"] == 0 and ink["colours"] == 1
