#!/usr/bin/env python3
"""The browser doors end to end: a real chromium loads tests/browser/page.html, which asks gatehouse,
with its user's own token, what that user may do, over gRPC-Web and over JSON, and shows one button
per allowed action.

For tommaso and jack (tokens minted by Stream's JavaScript SDKs) the buttons must be exactly the ones
the Feeds policy gives them, the same in both sections, and the same as gatehouse answers a plain
HTTP request from here with that token. A principal in the request and IssueToken must be refused,
and the same page served from an origin not in GATEHOUSE_BROWSER_ORIGINS must get no answer.

Usage (from the repository root, after scripts/browser-env.sh):
    GATEHOUSE_BIN=/path/to/gatehouse target/browser-env/venv/bin/python tests/browser/drive.py \
        [--screenshots docs/images]
Exits 0 when everything holds, 1 with the list of what did not.
"""

import argparse
import functools
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE_DIR = ROOT / "tests" / "browser"
PROTO = ROOT / "proto" / "gatehouse" / "v1" / "gatehouse.proto"
PROTOBUF_JS = ROOT / "target" / "browser-env" / "node" / "node_modules" / "protobufjs" / "dist"
PROTOBUF_JS = PROTOBUF_JS / "protobuf.min.js"
SDK_NODE_DIR = Path(os.environ.get("GATEHOUSE_SDK_NODE_DIR", ROOT / "target" / "sdk-env" / "node"))
SECRET = "browser-test-" + secrets.token_hex(24)
WAIT_SECONDS = 60

# The resources page.js asks about, with the attributes the Feeds policy's rules read.
RESOURCES = [
    {"kind": "feed", "id": "user:tommaso"},
    {"kind": "feed", "id": "user:jack"},
    {"kind": "feed", "id": "timeline:jack"},
    {"kind": "feed", "id": "notification:tommaso"},
    {"kind": "reactions", "id": "reaction-by-tommaso", "attributes": {"user_id": "tommaso"}},
    {"kind": "reactions", "id": "reaction-by-jack", "attributes": {"user_id": "jack"}},
    {"kind": "users", "id": "tommaso"},
    {"kind": "users", "id": "jack"},
]

# What policies/stream-feeds/feeds.yaml allows each user, with context.actor the user itself
# (tests/corpus/stream-feeds-defaults.yaml has the same rows one by one):
#   own-feeds: everything on feeds group:<self>; read-global-read-feeds: read on user:*;
#   write-global-write-feeds: write on notification:*; timeline feeds of others: nothing;
#   reactions: read any (read-reactions-and-collections), write and delete own (attributes.user_id);
#   users: read any (read-any-user), write and delete one's own (manage-own-user).
EXPECTED = {
    "tommaso": {
        "feed:user:tommaso": ["delete", "read", "write"],
        "feed:user:jack": ["read"],
        "feed:timeline:jack": [],
        "feed:notification:tommaso": ["delete", "read", "write"],
        "reactions:reaction-by-tommaso": ["delete", "read", "write"],
        "reactions:reaction-by-jack": ["read"],
        "users:tommaso": ["delete", "read", "write"],
        "users:jack": ["read"],
    },
    "jack": {
        "feed:user:tommaso": ["read"],
        "feed:user:jack": ["delete", "read", "write"],
        "feed:timeline:jack": ["delete", "read", "write"],
        "feed:notification:tommaso": ["write"],
        "reactions:reaction-by-tommaso": ["read"],
        "reactions:reaction-by-jack": ["delete", "read", "write"],
        "users:tommaso": ["read"],
        "users:jack": ["delete", "read", "write"],
    },
}

# tommaso's token from getstream (Feeds), jack's from stream-chat: both are Stream's user tokens.
MINT_JS = r"""
const { createRequire } = require('module');
const sdk = createRequire(require('path').join(process.env.SDK_NODE_DIR, 'package.json'));
const secret = process.env.GATEHOUSE_TEST_SECRET;
const feeds = sdk('getstream').connect('key', secret);
const { StreamChat } = sdk('stream-chat');
const chat = StreamChat.getInstance('key', secret);
console.log(JSON.stringify({ tommaso: feeds.createUserToken('tommaso'), jack: chat.createToken('jack') }));
"""

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def differences(got, want):
    """What differs between two {kind:id: actions}, one resource a line."""
    lines = [
        f"{key}: {got.get(key, 'missing')} instead of {want.get(key, 'nothing')}"
        for key in sorted(set(got) | set(want))
        if got.get(key) != want.get(key)
    ]
    return "".join(f"\n      {line}" for line in lines)


def say(message):
    print(f"browser test: {message}", flush=True)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_static(directory):
    """A static file server on a free loopback port; returns (server, origin)."""
    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def start_gatehouse(binary, origin, log_path):
    """Starts gatehouse on free loopback ports; returns (process, http base URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        GATEHOUSE_LISTEN="127.0.0.1:0",
        GATEHOUSE_HTTP_LISTEN="127.0.0.1:0",
        GATEHOUSE_API_SECRET=SECRET,
        GATEHOUSE_BROWSER_DOORS="true",
        GATEHOUSE_BROWSER_ORIGINS=origin,
        GATEHOUSE_LOG_FORMAT="text",
    )
    log = open(log_path, "wb")
    process = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gatehouse exited with {process.returncode}:\n{Path(log_path).read_text()}")
        found = re.search(r"http_listen=(127\.0\.0\.1:\d+)", Path(log_path).read_text(errors="replace"))
        if found:
            base = f"http://{found.group(1)}"
            try:
                with urllib.request.urlopen(f"{base}/ready", timeout=2) as ready:
                    if ready.status == 200:
                        return process, base
            except OSError:
                pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gatehouse was not ready within {WAIT_SECONDS} s:\n{Path(log_path).read_text()}")


def mint_tokens():
    env = dict(os.environ, SDK_NODE_DIR=str(SDK_NODE_DIR), GATEHOUSE_TEST_SECRET=SECRET)
    done = subprocess.run(["node", "-e", MINT_JS], env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"minting tokens with Stream's SDKs failed:\n{done.stderr}")
    return json.loads(done.stdout)


def post(url, body, token=None, origin=None):
    """POSTs JSON; returns (status, headers, parsed body or text)."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if origin:
        headers["origin"] = origin
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw.decode(errors="replace")


def server_capabilities(base, token, user):
    """What gatehouse answers a plain HTTP client for the page's question, as {kind:id: actions}."""
    question = {"resources": RESOURCES, "context": {"actor": user}}
    status, _, answer = post(f"{base}/v1/capabilities", question, token)
    if status != 200:
        raise RuntimeError(f"POST /v1/capabilities for {user} answered {status}: {answer}")
    check(answer["principal"]["user_id"] == user, f"{user}: the server's answer is for {answer['principal']}")
    return {f"{r['kind']}:{r['id']}": r["actions"] for r in answer["resources"]}


def start_browser(profile_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        raise RuntimeError("chromium or chromedriver is not on PATH: run scripts/browser-env.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=900,600",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given: Selenium uses it and never runs selenium-manager to fetch one.
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def load_page(driver, page_origin, base, user, token):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    query = urllib.parse.urlencode({"token": token, "gatehouse": base, "user": user})
    driver.get(f"{page_origin}/page.html?{query}")
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "done"
    )


def shown(driver, section_id):
    """The section's state and {kind:id: the actions of its visible buttons}."""
    from selenium.webdriver.common.by import By

    section = driver.find_element(By.ID, section_id)
    rows = {}
    for row in section.find_elements(By.CSS_SELECTOR, ".resource[data-resource]"):
        key = row.get_attribute("data-resource")
        check(key not in rows, f"{section_id}: {key} is shown twice")
        rows[key] = sorted(
            b.get_attribute("data-action")
            for b in row.find_elements(By.CSS_SELECTOR, "button[data-action]")
            if b.is_displayed() and b.get_attribute("data-resource") == key
        )
    return section.get_attribute("data-state"), rows


def refusal(driver, element_id):
    from selenium.webdriver.common.by import By

    item = driver.find_element(By.ID, element_id)
    return item.get_attribute("data-outcome"), item.get_attribute("data-detail") or ""


def status_text(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "status").text


def check_user_page(driver, page_origin, base, user, token, screenshots):
    load_page(driver, page_origin, base, user, token)
    expected = EXPECTED[user]
    answered = server_capabilities(base, token, user)
    check(answered == expected, f"{user}: over HTTP the server answers{differences(answered, expected)}")
    sections = {}
    for section_id in ("grpc-web", "json"):
        state, rows = shown(driver, section_id)
        sections[section_id] = rows
        check(state == "ready", f"{user}: #{section_id} is {state}, not ready")
        check(rows == expected, f"{user}: #{section_id} shows, against the policy{differences(rows, expected)}")
        check(rows == answered, f"{user}: #{section_id} shows, against the server{differences(rows, answered)}")
    check(
        sections["grpc-web"] == sections["json"],
        f"{user}: against #json, #grpc-web shows{differences(sections['grpc-web'], sections['json'])}",
    )
    check(status_text(driver) == "", f"{user}: the page reports errors: {status_text(driver)!r}")

    outcome, detail = refusal(driver, "principal-json")
    check(
        outcome == "refused" and detail.startswith("HTTP 403 permission_denied"),
        f"{user}: principal in the JSON body: {outcome} ({detail}), expected a 403 permission_denied",
    )
    outcome, detail = refusal(driver, "principal-grpc-web")
    check(
        outcome == "refused" and detail.startswith("gRPC status 7:"),
        f"{user}: principal over gRPC-Web: {outcome} ({detail}), expected PERMISSION_DENIED (7)",
    )
    # IssueToken is not served to pages at all: no CORS answer, so the browser blocks the call (and
    # the server answers it 404).
    outcome, detail = refusal(driver, "issue-token")
    check(
        outcome == "blocked" and "Failed to fetch" in detail,
        f"{user}: IssueToken over gRPC-Web: {outcome} ({detail}), expected the browser to block it",
    )
    status, _, _ = post(f"{base}/gatehouse.v1.Gatehouse/IssueToken", {}, token=token, origin=page_origin)
    check(status == 404, f"{user}: IssueToken on the HTTP listener answered {status}, expected 404")
    if screenshots:
        # The page's viewport, not the window, is 900x600.
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 900, "height": 600, "deviceScaleFactor": 1, "mobile": False},
        )
        path = Path(screenshots) / f"browser-{user}.png"
        check(driver.save_screenshot(str(path)), f"{user}: no screenshot written to {path}")
        say(f"screenshot {path}")


def check_unlisted_origin(driver, unlisted_origin, base, token):
    """The page served from an origin that is not listed gets no answer to read."""
    # The server itself refuses the origin, before any CORS header is written.
    status, headers, _ = post(f"{base}/v1/capabilities", {"resources": RESOURCES}, token, unlisted_origin)
    check(
        status == 403 and "access-control-allow-origin" not in headers,
        f"a request with Origin {unlisted_origin} answered {status} with headers {dict(headers)}",
    )
    load_page(driver, unlisted_origin, base, "tommaso", token)
    for section_id in ("grpc-web", "json"):
        state, rows = shown(driver, section_id)
        check(state == "error", f"unlisted origin: #{section_id} is {state}, not error")
        check(rows == {}, f"unlisted origin: #{section_id} shows {rows}")
    text = status_text(driver)
    for section_id in ("grpc-web", "json"):
        check(
            f"{section_id}: TypeError: Failed to fetch" in text,
            f"unlisted origin: #status does not report the refused fetch of {section_id}: {text!r}",
        )
    for element_id in ("principal-json", "principal-grpc-web"):
        outcome, detail = refusal(driver, element_id)
        check(outcome == "failed", f"unlisted origin: #{element_id} was {outcome} ({detail}), not failed")
    outcome, detail = refusal(driver, "issue-token")
    check(outcome == "blocked", f"unlisted origin: #issue-token was {outcome} ({detail}), not blocked")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshots", metavar="DIR", help="save each user's page as DIR/browser-<user>.png")
    args = parser.parse_args()
    binary = os.environ.get("GATEHOUSE_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("browser test: error: set GATEHOUSE_BIN to the gatehouse binary", file=sys.stderr)
        return 2
    if not PROTOBUF_JS.is_file():
        print(f"browser test: error: {PROTOBUF_JS} is missing: run scripts/browser-env.sh", file=sys.stderr)
        return 2
    if args.screenshots:
        Path(args.screenshots).mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="gatehouse-browser-"))
    site = work / "site"
    site.mkdir()
    for source in (PAGE_DIR / "page.html", PAGE_DIR / "page.js", PROTO, PROTOBUF_JS):
        shutil.copy(source, site / source.name)
    servers, gatehouse, driver = [], None, None
    try:
        page_server, page_origin = serve_static(site)
        other_server, unlisted_origin = serve_static(site)
        servers = [page_server, other_server]
        gatehouse, base = start_gatehouse(binary, page_origin, work / "gatehouse.log")
        say(f"gatehouse at {base}, page at {page_origin}, unlisted page at {unlisted_origin}")
        tokens = mint_tokens()
        driver = start_browser(work / "profile")
        for user in ("tommaso", "jack"):
            check_user_page(driver, page_origin, base, user, tokens[user], args.screenshots)
            say(f"{user}: checked")
        check_unlisted_origin(driver, unlisted_origin, base, tokens["tommaso"])
        say("unlisted origin: checked")
    except Exception as error:  # a step that could not run at all
        failures.append(f"{type(error).__name__}: {error}")
    finally:
        if failures and driver is not None:
            try:
                for entry in driver.get_log("browser"):
                    print(f"browser console: {entry.get('level')} {entry.get('message')}", file=sys.stderr)
            except Exception:
                pass
        if driver is not None:
            driver.quit()
        if gatehouse is not None:
            gatehouse.terminate()
            try:
                gatehouse.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gatehouse.kill()
                gatehouse.wait()
        for server in servers:
            server.shutdown()
            server.server_close()
        if failures and (work / "gatehouse.log").is_file():
            print("gatehouse log:\n" + (work / "gatehouse.log").read_text(errors="replace"), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("browser test: FAILED", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
