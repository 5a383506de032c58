"""The built book as its readers see it: every page in headless Chromium, offline.

The site in ``_build/html`` (``make book``; ``make test`` builds it first, or set
``LEANECD_BOOK_HTML``) is served from 127.0.0.1 and opened in Chromium with every
other host name unresolvable, so nothing can come from the internet. Each page of the
table of contents must load without a JavaScript error, draw each plotly figure,
typeset each equation with MathJax, load each image, and link to the pages before and
after it in the table-of-contents order. The HTML must name no CDN, and no page may
show a reader the book's development notes (``tests/test_reader_text.py`` checks the
sources for the same phrases without a build).

Without a built book or without Chromium these tests skip, except under ``make test``:
``scripts/run-tests.sh`` sets ``LEANECD_REQUIRE_BOOK=1``, which turns a skip into a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import yaml
from test_reader_text import HISTORY_PAGES, visible_text_hits

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("LEANECD_BOOK_HTML", ROOT / "_build" / "html"))
REQUIRED = os.environ.get("LEANECD_REQUIRE_BOOK") == "1"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (LEANECD_REQUIRE_BOOK=1: make test must run this test)")
    pytest.skip(reason)


def toc_pages() -> list[str]:
    """Documents of ``_toc.yml`` in reading order (root first), without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                pages.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(Path(p).with_suffix("")) for p in pages]


PAGES = toc_pages()


@pytest.fixture(scope="module")
def built() -> Path:
    if not (HTML / "index.html").is_file():
        _unavailable(f"no built book at {HTML} (make book builds it)")
    missing = [p for p in PAGES if not (HTML / f"{p}.html").is_file()]
    assert not missing, f"pages of _toc.yml not built: {missing}"
    return HTML


# ---------------------------------------------------------------- static HTML checks

CDN_PATTERNS = [
    (r"<script\b[^>]*\bsrc=[\"'](?:https?:)?//", "a <script> loaded from another host"),
    (r"<link\b[^>]*\bhref=[\"'](?:https?:)?//[^\"']*[\"'][^>]*\brel=[\"']?(?:stylesheet|preload|modulepreload|icon)",
     "a <link> (stylesheet, preload, icon) from another host"),
    (r"<link\b[^>]*\brel=[\"']?(?:stylesheet|preload|modulepreload|icon)[^>]*\bhref=[\"'](?:https?:)?//",
     "a <link> (stylesheet, preload, icon) from another host"),
    (r"\bimport\s*[\"'](?:https?:)?//", "an ES module imported from another host"),
    (r"@import\s+url\(\s*[\"']?(?:https?:)?//", "a CSS @import from another host"),
    (r"cdn\.plot\.ly|cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|unpkg\.com|require\.min\.js|polyfill\.io",
     "a CDN address"),
]


def test_no_cdn_in_built_html(built):
    hits = []
    files = sorted(built.rglob("*.html")) + sorted((built / "_static").glob("*.css"))
    for f in files:
        text = f.read_text(errors="replace")
        for pattern, what in CDN_PATTERNS:
            for m in re.finditer(pattern, text):
                hits.append(f"{f.relative_to(built)}: {what}: {text[m.start():m.start() + 120]!r}")
    assert not hits, "the built book depends on the internet:\n" + "\n".join(hits[:30])


def test_offline_assets_served(built):
    assert (built / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert (built / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert any((built / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def test_no_development_language_in_built_html(built):
    hits = []
    for page in PAGES:
        if page in HISTORY_PAGES:
            continue
        html = (built / f"{page}.html").read_text(errors="replace")
        main = re.search(r"<main\b.*?</main>", html, re.S)
        for phrase, line in visible_text_hits(main.group(0) if main else html, html=True):
            hits.append(f"{page}.html: {phrase!r} in {line!r}")
    assert not hits, "development notes a reader sees:\n" + "\n".join(hits)


# ---------------------------------------------------------------- the browser

CHROME_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    # no host name but 127.0.0.1 resolves: a page cannot reach the internet
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    # WebGL without a GPU, for plotly's 3-D figures
    "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
    "--window-size=1280,1024",
]


def _chromium() -> tuple[str, str]:
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    if not browser or not driver:
        _unavailable("Chromium and ChromeDriver are not installed "
                     "(scripts/setup-env.sh --browser installs the Debian packages chromium chromium-driver)")
    return browser, driver


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        # Chromium asks every server for /favicon.ico; the book has none (not a page's error)
        if self.path == "/favicon.ico" and not Path(self.translate_path(self.path)).exists():
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module")
def site(built):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(built)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, site):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (the book extra of pyproject.toml)")
    binary, driver_path = _chromium()
    # the browser and the driver are given: Selenium Manager must not look for (or report) anything online
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in CHROME_ARGS:
        opts.add_argument(a)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


# Waits for MathJax's first typesetting and for every plotly figure, then reports.
INSPECT_JS = r"""
const done = arguments[arguments.length - 1];
const t0 = Date.now();
const plots = () => [...document.querySelectorAll('.plotly-graph-div')];
const drawn = p => p.classList.contains('js-plotly-plot') && p.querySelector('.main-svg') !== null;
(async () => {
  try {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  } catch (e) { console.error('MathJax: ' + e); }
  // (without plotly.js on the page nothing will draw: no need to wait)
  while (window.Plotly && plots().some(p => !drawn(p)) && Date.now() - t0 < 60000)
    await new Promise(r => setTimeout(r, 200));
  await new Promise(r => setTimeout(r, 300));
  const raw = /\\\[|\\\(|\$\$|\\begin\{/;
  const math = [...document.querySelectorAll('.math')];
  const untypeset = math.filter(m => {
    const c = m.cloneNode(true);
    c.querySelectorAll('mjx-container').forEach(x => x.remove());
    return !m.querySelector('mjx-container') || raw.test(c.textContent);
  }).map(m => m.textContent.trim().slice(0, 80));
  const local = location.origin;
  done({
    title: document.title,
    plots: plots().length,
    plots_undrawn: plots().filter(p => !drawn(p)).map(p => p.id),
    webgl_missing: document.querySelectorAll('.plotly-graph-div .no-webgl').length,
    math: math.length,
    math_untypeset: untypeset,
    mjx: document.querySelectorAll('mjx-container').length,
    images: document.images.length,
    images_broken: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
      .map(i => i.getAttribute('src')),
    prev: (document.querySelector('a.left-prev') || {}).href || null,
    next: (document.querySelector('a.right-next') || {}).href || null,
    foreign: performance.getEntriesByType('resource').map(e => e.name)
      .filter(n => !n.startsWith(local) && !n.startsWith('data:') && !n.startsWith('blob:')),
  });
})();
"""


def _page_path(url: str | None) -> str | None:
    if url is None:
        return None
    return urlparse(url).path.lstrip("/").removesuffix(".html")


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(browser, site, page):
    url = urljoin(site, f"{page}.html")
    browser.get_log("browser")  # drop what an earlier page left
    browser.get(url)
    r = browser.execute_async_script(INSPECT_JS)
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    problems = []
    problems += [f"JavaScript error: {e['message'][:300]}" for e in logs]
    problems += [f"resource from another host: {n}" for n in r["foreign"]]
    if r["plots_undrawn"]:
        problems.append(f"{len(r['plots_undrawn'])} of {r['plots']} plotly figures not drawn")
    if r["webgl_missing"]:
        problems.append(f"{r['webgl_missing']} plotly figures say WebGL is missing")
    if r["math_untypeset"]:
        problems.append(f"{len(r['math_untypeset'])} of {r['math']} equations not typeset, "
                        f"e.g. {r['math_untypeset'][:3]}")
    problems += [f"image not loaded: {s}" for s in r["images_broken"]]
    i = PAGES.index(page)
    want_prev = PAGES[i - 1] if i > 0 else None
    want_next = PAGES[i + 1] if i + 1 < len(PAGES) else None
    if _page_path(r["prev"]) != want_prev:
        problems.append(f"'previous' link goes to {_page_path(r['prev'])}, not {want_prev}")
    if _page_path(r["next"]) != want_next:
        problems.append(f"'next' link goes to {_page_path(r['next'])}, not {want_next}")
    assert not problems, f"{page}.html ({r['plots']} figures, {r['math']} equations, " \
                         f"{r['images']} images):\n" + "\n".join(problems)
