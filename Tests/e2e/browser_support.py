"""A headless Chromium driven over its DevTools protocol: a small client on the `websockets` package.

Debian's `chromium` package (`make test` installs it when missing). Each Browser has its own
profile folder (so its own cookies) and is closed with its process.
"""
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

# The exit status of a run that could not start a browser: BrowserTests reports it as skipped.
SKIPPED = 77


def skip(reason):
    """Ends the run as skipped, saying why (no browser to drive is not a dashboard failure)."""
    print(f"browser: skipped: {reason}", flush=True)
    sys.exit(SKIPPED)


try:
    from websockets.sync.client import connect
except ImportError:
    skip("the websockets package is missing: make venv installs it")


class Browser:
    def __init__(self, width=1280, height=900):
        self.profile = tempfile.mkdtemp(prefix="sluice-chromium-")
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            skip("no chromium on PATH: apt-get install chromium (make test does)")
        arguments = [chromium, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                     "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                     f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            arguments.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        end = time.time() + 30
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.time() > end or self.process.poll() is not None:
                self.close()
                skip("chromium did not start its DevTools endpoint within 30 s")
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [target for target in json.load(response) if target["type"] == "page"]
        self.socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.ids = itertools.count(1)
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        """One DevTools command; its result (events that arrive meanwhile are dropped)."""
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression, timeout=30):
        """Whether `expression` became truthy within `timeout` seconds (checked every 0.2 s)."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                if self.evaluate(expression):
                    return True
            except RuntimeError:
                pass  # the page is navigating
            time.sleep(0.2)
        return False

    def goto(self, url):
        """Opens `url` and waits for it to load."""
        self.call("Page.navigate", url=url)
        time.sleep(0.1)
        self.wait_for("document.readyState === 'complete'")

    def submit(self, form_selector):
        """Submits a form as its button would, and waits for the next page to load."""
        before = self.evaluate("performance.timeOrigin")
        self.evaluate(f"document.querySelector({json.dumps(form_selector)}).requestSubmit()")
        self.wait_for(f"performance.timeOrigin !== {before} && document.readyState === 'complete'")

    def log_in(self, base, key):
        """Logs in to the dashboard at `base` through its form (the key in its password field)."""
        self.goto(base + "/ui")
        self.evaluate(f"document.getElementById('key').value = {json.dumps(key)}")
        self.submit("#login")

    def text(self, selector):
        return self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self):
        try:
            self.socket.close()
        except Exception:
            pass
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
