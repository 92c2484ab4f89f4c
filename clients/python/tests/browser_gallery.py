#!/usr/bin/env python3
"""Headless-browser check of the gallery page that `onestep serve` serves at `/`.

Drives Debian's Chromium through its chromedriver with Selenium 4 (both paths are given explicitly, so Selenium
Manager never runs or downloads anything). The check:

1. opens the page (with `?token=TOKEN` when --token is given, or, with --token-via-prompt, types the token into the
   box the page shows after a 401) and waits until the model's `img.grid` has `data-loaded="1"`;
2. checks the image's natural size (--expect-size WxH, else just larger than 28x28) and that it is not blank:
   drawn to a canvas in the page, it must have at least two distinct pixel values and a gray standard deviation
   above 10;
3. clicks the model's `next seed` button, waits for the next seed's grid and requires different pixels;
4. waits until the metrics block has been drawn and refreshed from /v1/stats, and requires that no `.error` element
   is visible, that the page loaded nothing from another origin, and that the browser logged no script error;
5. saves a screenshot of the whole page to OUT/gallery.png.

Usage: browser_gallery.py --url http://127.0.0.1:PORT/ [--token TOKEN [--token-via-prompt]] [--model NAME]
                          [--out DIR] [--expect-size WxH] [--timeout 60] [--chromium PATH] [--chromedriver PATH]
Prints one line per step, 'screenshot: PATH' and, last, a one-line JSON summary. Exit status: 0 when every check
passes, 1 when one fails (the browser's console log follows the message), 2 when the browser cannot be started.
Needs `selenium` (4.x) and the Debian packages `chromium` and `chromium-driver`.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import sys
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

U64 = 1 << 64

# Everything the checks need to know about one model's grid, read in one round trip.
GRID_STATE_JS = """
const model = arguments[0];
const img = document.querySelector(`img.grid[data-model="${CSS.escape(model)}"]`);
const visible = (e) => (e.checkVisibility ? e.checkVisibility() : e.getClientRects().length > 0);
const errors = [...document.querySelectorAll(".error")].filter(visible).map((e) => e.textContent.trim());
const box = document.getElementById("token-box");
const base = { errors, tokenBox: !!box && visible(box), readyState: document.readyState };
if (!img) return { ...base, found: false };
const card = img.closest(".card");
return {
    ...base, found: true, loaded: img.dataset.loaded || "", seed: img.dataset.seed ?? null,
    version: img.dataset.version ?? null, complete: img.complete, width: img.naturalWidth,
    height: img.naturalHeight, cardLoading: !!card && card.classList.contains("loading"),
};
"""

# Draws the grid image to a canvas and returns its size, gray-level spread, distinct colours and pixels.
PIXELS_JS = """
const img = document.querySelector(`img.grid[data-model="${CSS.escape(arguments[0])}"]`);
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth;
canvas.height = img.naturalHeight;
const ctx = canvas.getContext("2d", { willReadFrequently: true });
ctx.drawImage(img, 0, 0);
const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
let n = 0, sum = 0, sum2 = 0;
const colours = new Set();
for (let i = 0; i < data.length; i += 4) {
    const gray = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    sum += gray;
    sum2 += gray * gray;
    n += 1;
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
}
const mean = n ? sum / n : 0;
return {
    width: canvas.width, height: canvas.height, mean, std: Math.sqrt(Math.max(0, sum2 / Math.max(n, 1) - mean * mean)),
    distinct: colours.size, seed: img.dataset.seed ?? null, dataURL: canvas.toDataURL("image/png"),
};
"""

METRICS_JS = """
const block = document.querySelector(`.metrics[data-model="${CSS.escape(arguments[0])}"]`);
if (!block) return { found: false };
const canvases = [...block.querySelectorAll("canvas")];
return {
    found: true, updated: Number(block.dataset.updated || 0), canvases: canvases.length,
    drawn: canvases.filter((c) => c.width > 0 && c.height > 0).length,
    axisMax: [...block.querySelectorAll(".axis-max")].map((e) => e.textContent),
    values: [...block.querySelectorAll(".chart-value")].map((e) => e.textContent),
};
"""

PAGE_JS = """
const origin = location.origin;
const foreign = performance.getEntriesByType("resource").map((e) => e.name)
    .filter((name) => !name.startsWith(origin + "/") && !name.startsWith("blob:") && !name.startsWith("data:"));
let stored = null;
try { stored = localStorage.getItem("onestep.token"); } catch (e) { stored = "unavailable: " + e; }
return { href: location.href, foreign, storedToken: stored, title: document.title };
"""


class CheckFailed(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the gallery, e.g. http://127.0.0.1:8080/")
    p.add_argument("--token", help="bearer token; by default passed once as ?token=TOKEN")
    p.add_argument("--token-via-prompt", action="store_true",
                   help="open the page without the token and type it into the box the page shows after a 401")
    p.add_argument("--model", default="mnist-onestep")
    p.add_argument("--out", default=".", help="folder for gallery.png")
    p.add_argument("--expect-size", help="the grid PNG's size, WxH (default: anything larger than 28x28)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for each wait")
    p.add_argument("--chromium", default=os.environ.get("ONESTEP_CHROMIUM", "/usr/bin/chromium"))
    p.add_argument("--chromedriver", default=os.environ.get("ONESTEP_CHROMEDRIVER", "/usr/bin/chromedriver"))
    args = p.parse_args(argv)
    if args.expect_size:
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", args.expect_size)
        if not m:
            p.error(f"--expect-size must look like 122x122, not {args.expect_size!r}")
        args.expect_size = (int(m.group(1)), int(m.group(2)))
    if args.token_via_prompt and not args.token:
        p.error("--token-via-prompt needs --token")
    return args


def with_query(url, **params):
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def start_browser(args):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for what, path in (("chromium", args.chromium), ("chromedriver", args.chromedriver)):
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{what} not found at {path} (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver), options=options)
    driver.set_window_size(1280, 1000)
    driver.set_script_timeout(max(10.0, args.timeout))
    driver.set_page_load_timeout(max(10.0, args.timeout))
    return driver


class Console:
    """Collects the browser's console log (reading it drains Chrome's buffer)."""

    def __init__(self, driver):
        self.driver = driver
        self.entries = []

    def drain(self):
        try:
            self.entries.extend(self.driver.get_log("browser"))
        except Exception as error:  # a dead session must not hide the real failure
            self.entries.append({"level": "INFO", "source": "harness", "message": f"(no log: {error})"})
        return self.entries

    def script_errors(self):
        """SEVERE entries that are not network failures: uncaught exceptions and console.error calls."""
        return [e for e in self.drain() if e.get("level") == "SEVERE" and e.get("source") != "network"]

    def dump(self, out=sys.stdout):
        entries = self.drain()
        print(f"--- browser console ({len(entries)} entries) ---", file=out)
        for e in entries:
            print(f"[{e.get('level')}] {e.get('source', '')}: {e.get('message')}", file=out)
        print("--- end of console ---", file=out)


def wait_for(driver, what, probe, done, timeout, fail_fast=None):
    """Polls probe() until done(state); raises CheckFailed with the last state on timeout or fail_fast(state)."""
    deadline = time.monotonic() + timeout
    state = None
    while True:
        state = probe()
        if done(state):
            return state
        if fail_fast:
            reason = fail_fast(state)
            if reason:
                raise CheckFailed(f"{what}: {reason}; page state {json.dumps(state)}")
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout:g} s waiting for {what}; page state {json.dumps(state)}")
        time.sleep(0.2)


def grid_state(driver, model):
    return driver.execute_script(GRID_STATE_JS, model)


def grid_failed(state):
    if state.get("tokenBox"):
        return "the page asks for a bearer token (the API answered 401): " + " | ".join(state.get("errors") or [])
    if state.get("found") and state.get("loaded") == "error":
        return "the page could not load the grid: " + " | ".join(state.get("errors") or ["(no message)"])
    return None


def check_pixels(driver, args, step):
    px = driver.execute_script(PIXELS_JS, args.model)
    size = (px["width"], px["height"])
    if args.expect_size and size != args.expect_size:
        raise CheckFailed(f"{step}: grid is {size[0]}x{size[1]}, expected {args.expect_size[0]}x{args.expect_size[1]}")
    if not args.expect_size and (size[0] <= 28 or size[1] <= 28):
        raise CheckFailed(f"{step}: grid is only {size[0]}x{size[1]}, expected larger than 28x28")
    if px["distinct"] < 2 or px["std"] <= 10:
        raise CheckFailed(f"{step}: grid looks blank ({px['distinct']} distinct colours, gray std {px['std']:.2f})")
    px["fingerprint"] = hashlib.sha256(px.pop("dataURL").encode()).hexdigest()[:16]
    return px


def save_screenshot(driver, path):
    """The whole page (through the DevTools protocol), else the 1280x1000 viewport."""
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return
    except Exception as error:
        print(f"note: full-page screenshot failed ({type(error).__name__}: {error}); saving the viewport")
    if not driver.save_screenshot(path):
        raise CheckFailed(f"could not save the screenshot to {path}")


def open_page(driver, url, args):
    from selenium.common.exceptions import WebDriverException
    try:
        driver.get(url)
    except WebDriverException as error:
        text = (error.msg or str(error)).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        shown = url.replace(args.token, "***") if args.token else url
        raise CheckFailed(f"cannot open {shown}: {first}") from None


def run(driver, console, args, summary):
    import selenium
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    model = args.model
    summary["selenium"] = selenium.__version__
    summary["browser"] = driver.capabilities.get("browserVersion")

    # 1. Open the page and wait for the first grid.
    via_address = args.token and not args.token_via_prompt
    open_page(driver, with_query(args.url, token=args.token) if via_address else args.url, args)
    if args.token_via_prompt:
        wait_for(driver, "the token box after a 401", lambda: grid_state(driver, model),
                 lambda s: s.get("tokenBox"), args.timeout)
        field = driver.find_element(By.ID, "token-input")
        field.clear()
        field.send_keys(args.token)
        driver.find_element(By.ID, "token-use").click()
        print("ok: page asked for a token; typed it in")
    first = wait_for(driver, f"the first grid of {model}", lambda: grid_state(driver, model),
                     lambda s: s.get("found") and s.get("loaded") == "1", args.timeout, grid_failed)
    page = driver.execute_script(PAGE_JS)
    if args.token:
        if "token=" in urlsplit(page["href"]).query:
            raise CheckFailed("the token is still in the address bar: " + page["href"].replace(args.token, "***"))
        if page["storedToken"] != args.token:
            raise CheckFailed(f"localStorage['onestep.token'] is {page['storedToken']!r}, not the token given")
    print(f"ok: grid loaded (seed {first['seed']}, version {first['version']}, {first['width']}x{first['height']})")

    # 2. Size and content of the first grid.
    px1 = check_pixels(driver, args, "first grid")
    print(f"ok: grid is {px1['width']}x{px1['height']}, {px1['distinct']} colours, gray std {px1['std']:.1f}")

    # 3. Next seed: a new grid with different pixels.
    button = driver.find_element(By.CSS_SELECTOR, f"button.next-seed[data-model={json.dumps(model)}]")
    old_seed = first["seed"]
    button.click()
    second = wait_for(driver, "the grid of the next seed", lambda: grid_state(driver, model),
                      lambda s: s.get("found") and s.get("seed") != old_seed and s.get("loaded") == "1",
                      args.timeout, grid_failed)
    expected_seed = str((int(old_seed) + 1) % U64)
    if second["seed"] != expected_seed:
        raise CheckFailed(f"next seed shows seed {second['seed']}, expected {expected_seed}")
    px2 = check_pixels(driver, args, "next grid")
    if px2["fingerprint"] == px1["fingerprint"]:
        raise CheckFailed(f"seeds {old_seed} and {second['seed']} gave identical grids ({px1['fingerprint']})")
    print(f"ok: next seed {second['seed']} shows a different grid ({px1['fingerprint']} -> {px2['fingerprint']})")

    # 4. Metrics drawn and refreshed; nothing wrong on the page.
    probe = lambda: driver.execute_script(METRICS_JS, model)  # noqa: E731
    m1 = wait_for(driver, "the metrics charts", probe,
                  lambda s: s.get("found") and s.get("updated", 0) >= 1 and s.get("drawn", 0) >= 4, args.timeout)
    m2 = wait_for(driver, "a metrics refresh", probe, lambda s: s.get("updated", 0) > m1["updated"], args.timeout)
    print(f"ok: metrics drawn and refreshed (update {m2['updated']}; {' | '.join(m2['values'])})")
    state = grid_state(driver, model)
    if state["errors"]:
        raise CheckFailed("the page shows errors: " + " | ".join(state["errors"]))
    page = driver.execute_script(PAGE_JS)
    if page["foreign"]:
        raise CheckFailed("the page loaded resources from elsewhere: " + ", ".join(page["foreign"]))
    script_errors = console.script_errors()
    if script_errors:
        raise CheckFailed("the browser logged script errors: " + " | ".join(e["message"] for e in script_errors))
    print("ok: no visible errors, no foreign resources, no script errors")

    # 5. Screenshot.
    os.makedirs(args.out, exist_ok=True)
    shot = os.path.abspath(os.path.join(args.out, "gallery.png"))
    save_screenshot(driver, shot)
    print(f"screenshot: {shot}")
    summary.update({
        "ok": True, "title": page["title"], "version": second["version"],
        "size": f"{px1['width']}x{px1['height']}", "seeds": [old_seed, second["seed"]],
        "gray_std": [round(px1["std"], 2), round(px2["std"], 2)], "distinct": [px1["distinct"], px2["distinct"]],
        "fingerprints": [px1["fingerprint"], px2["fingerprint"]], "stats_updates": m2["updated"],
        "screenshot": shot, "elapsed_s": round(time.monotonic() - started, 2),
    })


def main(argv=None):
    args = parse_args(argv)
    sys.stdout.reconfigure(errors="backslashreplace")  # chart values carry a middle dot
    summary = {"ok": False, "url": args.url, "model": args.model, "token": bool(args.token),
               "token_via_prompt": args.token_via_prompt}
    try:
        driver = start_browser(args)
    except Exception as error:
        print(f"FAIL: cannot start the browser: {type(error).__name__}: {error}")
        summary["error"] = f"browser: {error}"
        print(json.dumps(summary))
        return 2
    console = Console(driver)
    try:
        run(driver, console, args, summary)
        print(json.dumps(summary))
        return 0
    except Exception as error:
        message = str(error) if isinstance(error, CheckFailed) else f"{type(error).__name__}: {error}"
        print(f"FAIL: {message}")
        try:
            os.makedirs(args.out, exist_ok=True)
            shot = os.path.abspath(os.path.join(args.out, "gallery-failure.png"))
            save_screenshot(driver, shot)
            print(f"failure screenshot: {shot}")
        except Exception:
            pass
        console.dump()
        summary["error"] = message
        print(json.dumps(summary))
        return 1
    finally:
        try:
            driver.quit()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
