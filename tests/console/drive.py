#!/usr/bin/env python3
"""The operator console end to end: a real chromium opens gatehouse's /console and uses it.

For the Keycloak bank example (policies/examples/keycloak-bank-unanimous) and the Stream Chat moderator
example (policies/examples/stream-chat), the page's Evaluate tab must show the same decision, rule,
reason and rule trace as gatehouse answers a plain HTTP client asking the JSON Check door with a token
carrying the same user (those asks are decisions, so the decision list has entries). The Decisions tab
must filter by user and decision and explain a logged decision in one click, the Principals tab must
download a suggested policy that `gatehouse validate` accepts (for a small role-based set written here),
and a user id holding markup must be shown as text.

Usage (from the repository root, after scripts/browser-env.sh):
    GATEHOUSE_BIN=/path/to/gatehouse target/browser-env/venv/bin/python tests/console/drive.py \
        [--screenshots docs/images]
Exits 0 when everything holds, 1 with the list of what did not.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "console-test-" + secrets.token_hex(24)
WAIT_SECONDS = 60
MARKUP_USER = '<img src=x onerror="document.title=1">'

# (example directory, questions): each question is a principal, an action and a resource.
EXAMPLES = [
    ("keycloak-bank-unanimous", [
        ({"user_id": "bob", "roles": ["bank_teller"]}, "account:view", {"kind": "account", "id": "42"}),
        ({"user_id": "bob", "roles": ["account_owner"]}, "account:view", {"kind": "account", "id": "42"}),
        ({"user_id": "bob", "roles": ["bank_teller"]}, "account:delete", {"kind": "account", "id": "42"}),
    ]),
    ("stream-chat", [
        ({"user_id": "jack", "roles": ["user"], "channel_roles": {"messaging:general": "channel_moderator"}},
         "UpdateMessage",
         {"kind": "message", "id": "m1", "attributes": {"user_id": "tommaso", "channel": "messaging:general"}}),
        ({"user_id": "jack", "roles": ["user"], "channel_roles": {"messaging:general": "channel_moderator"}},
         "UpdateMessage",
         {"kind": "message", "id": "m2", "attributes": {"user_id": "tommaso", "channel": "messaging:random"}}),
    ]),
]

# A small set whose grants depend on roles alone, so a suggested policy can carry them (the bank and
# chat examples decide through permissions and chat policies, which a suggestion leaves out).
DOCS_POLICY = """\
resources:
  - kind: doc
    actions: [read, write]
rules:
  - name: readers-read-docs
    effect: allow
    resource: doc
    actions: [read]
    when: { roles: [reader] }
"""

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def say(message):
    print(f"console test: {message}", flush=True)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims):
    """An HS256 token signed with the server's secret, as Stream's SDKs make them."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def start_gatehouse(binary, policy_dir, log_path):
    """Starts gatehouse on free loopback ports with `policy_dir`; returns (process, http base URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        GATEHOUSE_LISTEN="127.0.0.1:0",
        GATEHOUSE_HTTP_LISTEN="127.0.0.1:0",
        GATEHOUSE_API_SECRET=SECRET,
        GATEHOUSE_POLICY_DIR=str(policy_dir),
        GATEHOUSE_LOG_FORMAT="text",
    )
    log = open(log_path, "wb")
    process = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gatehouse exited with {process.returncode}:\n{Path(log_path).read_text()}")
        logged = Path(log_path).read_text(errors="replace")
        found = re.search(r"serving listen=(127\.0\.0\.1:\d+) http_listen=(127\.0\.0\.1:\d+)", logged)
        if found:
            base = f"http://{found.group(2)}"
            GRPC[base] = (binary, f"http://{found.group(1)}")
            try:
                with urllib.request.urlopen(f"{base}/ready", timeout=2) as ready:
                    if ready.status == 200:
                        return process, base
            except OSError:
                pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gatehouse was not ready within {WAIT_SECONDS} s:\n{Path(log_path).read_text()}")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The gRPC address and binary of each server started, by its HTTP base URL.
GRPC = {}


def server_check(base, principal, action, resource):
    """The Check RPC's answer, with explanation and recorded as a decision, through `gatehouse check`
    for a token carrying `principal`."""
    binary, grpc = GRPC[base]
    args = [binary, "check", "--addr", grpc, "--token", token(dict(principal)), "--action", action,
            "--resource", f"{resource['kind']}:{resource.get('id', '')}", "--explain", "--json"]
    for key, value in resource.get("attributes", {}).items():
        args += ["--attr", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    done = subprocess.run(args, capture_output=True, env=env, timeout=30)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"gatehouse check exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return json.loads(done.stdout)


def start_browser(profile_dir, downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        raise RuntimeError("chromium or chromedriver is not on PATH: run scripts/browser-env.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", f"--user-data-dir={profile_dir}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
        "safebrowsing.enabled": True,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def wait(driver, condition, what):
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, 15, ignored_exceptions=[StaleElementReferenceException]).until(condition)
    except TimeoutException:
        raise RuntimeError(f"timed out waiting for {what}")


def fill(driver, element_id, text):
    from selenium.webdriver.common.by import By
    field = driver.find_element(By.ID, element_id)
    field.clear()
    if text:
        field.send_keys(text)


def evaluate_in_page(driver, principal, action, resource):
    """Fills the Evaluate form, runs it and reads what the page shows."""
    from selenium.webdriver.common.by import By
    driver.find_element(By.ID, "tab-evaluate").click()
    driver.find_element(By.ID, "who-principal").click()
    fill(driver, "ev-user", principal["user_id"])
    fill(driver, "ev-roles", ", ".join(principal.get("roles", [])))
    fill(driver, "ev-groups", "")
    fill(driver, "ev-channel-roles", json.dumps(principal["channel_roles"]) if "channel_roles" in principal else "")
    fill(driver, "ev-claims", "")
    fill(driver, "ev-action", action)
    fill(driver, "ev-kind", resource["kind"])
    fill(driver, "ev-id", resource.get("id", ""))
    fill(driver, "ev-attributes", json.dumps(resource["attributes"]) if "attributes" in resource else "")
    fill(driver, "ev-context", "")
    driver.find_element(By.ID, "ev-run").click()
    wait(driver, lambda d: d.find_elements(By.ID, "ev-verdict"), "the evaluation's verdict")
    trace = [(li.get_attribute("data-name"), li.get_attribute("data-result"))
             for li in driver.find_elements(By.CSS_SELECTOR, "#ev-trace > li")]
    return {
        "verdict": driver.find_element(By.ID, "ev-verdict").text,
        "rule": driver.find_element(By.ID, "ev-rule").text,
        "reason": driver.find_element(By.ID, "ev-reason").text,
        "trace": trace,
    }


def check_evaluations(driver, base, example, questions):
    for principal, action, resource in questions:
        answer = server_check(base, principal, action, resource)
        shown = evaluate_in_page(driver, principal, action, resource)
        label = f"{example}: {principal['user_id']} {principal.get('roles')} {action} {resource['kind']}:{resource.get('id')}"
        check(shown["verdict"] == ("ALLOW" if answer["allowed"] else "DENY"),
              f"{label}: page shows {shown['verdict']}, server answers allowed={answer['allowed']}")
        check(shown["rule"] == answer["rule"], f"{label}: page shows rule {shown['rule']!r}, server {answer['rule']!r}")
        check(shown["reason"] == answer["reason"], f"{label}: page reason {shown['reason']!r}, server {answer['reason']!r}")
        want = [(e["name"], e["result"]) for e in answer["explanation"]["entries"]]
        check(shown["trace"] == want, f"{label}: page trace {shown['trace']} instead of {want}")
        say(f"{label}: {shown['verdict']} by {shown['rule']}, {len(want)} trace entries, same as the server")


def check_decisions(driver, screenshots, name):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    driver.find_element(By.ID, "tab-decisions").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#d-rows tr"), "decision rows")
    fill(driver, "f-user", "bob" if name == "bank" else "jack")
    Select(driver.find_element(By.ID, "f-decision")).select_by_visible_text("deny")
    driver.find_element(By.ID, "f-apply").click()

    def filtered(d):
        from selenium.common.exceptions import StaleElementReferenceException
        try:
            rows = d.find_elements(By.CSS_SELECTOR, "#d-rows tr")
            kept = all(r.get_attribute("data-decision") == "deny"
                       and r.get_attribute("data-user") in ("bob", "jack") for r in rows)
        except StaleElementReferenceException:  # replaced while being read
            return False
        return rows if rows and kept else False

    # The list is replaced once the filtered page arrives; until then it may show the unfiltered one.
    rows = wait(driver, filtered, "only bob's or jack's denied rows after filtering")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#chart svg polyline")) >= 1, f"{name}: no chart drawn")
    # One click explains a logged decision against the current set.
    rows[0].find_element(By.TAG_NAME, "button").click()
    wait(driver, lambda d: d.find_elements(By.ID, "re-verdict"), "the re-evaluation")
    check(driver.find_element(By.ID, "re-verdict").text == "DENY", f"{name}: the re-evaluated deny is not a deny")
    Select(driver.find_element(By.ID, "f-decision")).select_by_visible_text("any")
    if screenshots and name == "bank":
        driver.save_screenshot(str(Path(screenshots) / "console-decisions.png"))
    say(f"{name}: {len(rows)} denied rows after filtering, re-evaluated one")


def check_principal(driver, base, binary, downloads, work, screenshots):
    """carol, a reader, reads two documents; the Principals tab shows what the role `reader` exercised
    and downloads a policy that validates."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    for doc in ("1", "2", "1"):
        server_check(base, {"user_id": "carol", "roles": ["reader"]}, "read", {"kind": "doc", "id": doc})
    server_check(base, {"user_id": "carol", "roles": ["reader"]}, "write", {"kind": "doc", "id": "1"})
    driver.get(f"{base}/console")
    wait(driver, lambda d: d.find_elements(By.ID, "tab-principals"), "the console page")
    driver.find_element(By.ID, "tab-principals").click()
    Select(driver.find_element(By.ID, "p-which")).select_by_value("role")
    fill(driver, "p-name", "reader")
    driver.find_element(By.ID, "p-run").click()
    wait(driver, lambda d: d.find_element(By.ID, "p-policy").text.strip() != "", "the suggested policy")
    rows = driver.find_elements(By.CSS_SELECTOR, "#p-rows tr")
    check(len(rows) == 3, f"the role reader's exercised permissions: {len(rows)} rows instead of 3")
    driver.find_element(By.ID, "p-download").click()
    target = downloads / "role-reader.yaml"
    deadline = time.monotonic() + 15
    while not target.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not check(target.is_file(), f"the suggested policy was not downloaded: {list(downloads.iterdir())}"):
        return
    policy_dir = work / "suggested"
    policy_dir.mkdir()
    shutil.copy(target, policy_dir / "suggested.yaml")
    done = subprocess.run([binary, "validate", str(policy_dir)], capture_output=True, text=True, timeout=60)
    check(done.returncode == 0, f"gatehouse validate refused the download:\n{done.stdout}{done.stderr}")
    check("readers-read-docs" in driver.find_element(By.ID, "p-rows").text, "the deciding rule is not shown")
    check("reader" in target.read_text() and "read" in target.read_text(),
          f"the downloaded policy does not grant reader: {target.read_text()}")
    if screenshots:
        driver.save_screenshot(str(Path(screenshots) / "console-principals.png"))
    say(f"role reader: {len(rows)} exercised permissions; the downloaded policy validates")


def check_markup_is_text(driver, base):
    """A user id holding markup is logged and shown as text, never run."""
    from selenium.webdriver.common.by import By
    server_check(base, {"user_id": MARKUP_USER, "roles": ["user"]}, "account:view", {"kind": "account", "id": "1"})
    driver.find_element(By.ID, "tab-decisions").click()
    fill(driver, "f-user", "")
    driver.find_element(By.ID, "f-apply").click()
    wait(driver, lambda d: any(r.get_attribute("data-user") == MARKUP_USER
                               for r in d.find_elements(By.CSS_SELECTOR, "#d-rows tr")), "the markup user's row")
    check(not driver.find_elements(By.CSS_SELECTOR, "#d-rows img"), "a user id was rendered as markup")
    check(driver.title != "1", "a user id's markup ran")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshots", metavar="DIR", help="save each page as DIR/console-<page>.png")
    args = parser.parse_args()
    binary = os.environ.get("GATEHOUSE_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("console test: error: set GATEHOUSE_BIN to the gatehouse binary", file=sys.stderr)
        return 2
    if args.screenshots:
        Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gatehouse-console-"))
    downloads = work / "downloads"
    downloads.mkdir()
    driver, gatehouse, logs = None, None, []
    try:
        driver = start_browser(work / "profile", downloads)
        for (example, questions), name in zip(EXAMPLES, ("bank", "chat")):
            log = work / f"gatehouse-{name}.log"
            logs.append(log)
            gatehouse, base = start_gatehouse(binary, ROOT / "policies" / "examples" / example, log)
            driver.get(f"{base}/console")
            wait(driver, lambda d: d.find_elements("id", "ev-run"), "the console page")
            check_evaluations(driver, base, example, questions)
            if args.screenshots and name == "bank":
                driver.save_screenshot(str(Path(args.screenshots) / "console-evaluate.png"))
            check_decisions(driver, args.screenshots, name)
            if name == "bank":
                check_markup_is_text(driver, base)
                from selenium.webdriver.common.by import By
                driver.find_element(By.ID, "tab-policy").click()
                wait(driver, lambda d: d.find_elements(By.ID, "policy-revision"), "the policy page")
                check("bank.yaml" in driver.find_element(By.ID, "policy").text, "the policy page lists no bank.yaml")
                if args.screenshots:
                    driver.save_screenshot(str(Path(args.screenshots) / "console-policy.png"))
            stop(gatehouse)
            gatehouse = None
            say(f"{example}: checked")
        docs = work / "docs"
        docs.mkdir()
        (docs / "docs.yaml").write_text(DOCS_POLICY)
        log = work / "gatehouse-docs.log"
        logs.append(log)
        gatehouse, base = start_gatehouse(binary, docs, log)
        check_principal(driver, base, binary, downloads, work, args.screenshots)
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
            stop(gatehouse)
        if failures:
            for log in logs:
                if log.is_file():
                    print(f"{log.name}:\n" + log.read_text(errors="replace"), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("console test: FAILED", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
