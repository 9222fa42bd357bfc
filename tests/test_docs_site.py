"""The built site works in a browser: pages load, links resolve, images appear.

Two layers of checks on the site built by `tests/docs_site_build.py`:

- without a browser: every internal link and image of every page points to a
  file of the site (and a link's `#fragment` to an element of that page);
- in headless Chromium (skipped where `/usr/bin/chromium` is absent): the site
  is served on loopback and one Chromium run opens every page in turn in a
  same-origin frame, then reports for each page whether it loaded its main
  content and whether every image decoded (`naturalWidth > 0`). Screenshots of
  five representative pages are taken too; `KERAS_GUMBEL_DOCS_SCREENSHOTS`
  names a folder to keep them in.
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlsplit

import numpy as np
import pytest
from docs_site_build import REPO
from docs_site_build import built_site

# Under pytest-xdist (`--dist loadgroup`) every test of the site runs in one worker,
# so the site is built once per run, not once per worker.
pytestmark = pytest.mark.xdist_group("docs_site")

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is absent (apt-get install -y chromium)",
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# One page of each kind: home, guide, API, results, notebook.
SCREENSHOTS = {
    "home": "index.html",
    "guide": "guide/samples.html",
    "api": "api/generated/keras_gumbel.layers.GumbelSoftmax.html",
    "results": "results/table1_mnist.html",
    "notebook": "notebooks/01_gumbel_softmax_basics.html",
}
# Opens every page in a frame, one after the other, and writes what it saw into
# the page for `--dump-dom` to return.
CHECKER = """<!doctype html><html><body><pre id="result">running</pre>
<iframe id="frame" style="width:1200px;height:900px"></iframe>
<script>
const pages = %s;
const results = {};
const frame = document.getElementById("frame");
function visit(i) {
  if (i >= pages.length) {
    document.getElementById("result").textContent = JSON.stringify(results);
    return;
  }
  frame.onload = async () => {
    const doc = frame.contentDocument;
    // The site's own images; external ones (the Colab badge) need the internet.
    const images = Array.from(doc.images).filter((img) => img.src.startsWith(location.origin));
    await Promise.all(images.map((img) => img.decode().catch(() => null)));
    results[pages[i]] = {
      title: doc.title,
      main: !!doc.querySelector("article[role=main]"),
      images: images.length,
      broken: images.filter((img) => !img.complete || img.naturalWidth === 0)
        .map((img) => img.getAttribute("src")),
    };
    visit(i + 1);
  };
  frame.src = pages[i];
}
visit(0);
</script></body></html>"""


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.images, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.refs.append(attrs["href"])
        elif tag == "link" and attrs.get("href"):
            self.refs.append(attrs["href"])
        elif tag in ("img", "script") and attrs.get("src"):
            (self.images if tag == "img" else self.refs).append(attrs["src"])


@functools.cache
def _parse(path):
    parser = _Refs()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site():
    return built_site()


def _pages(site):
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if not {"_static", "_sources"} & set(p.relative_to(site).parts)
    )


def _internal(ref):
    parts = urlsplit(ref)
    return not (parts.scheme or parts.netloc or ref.startswith(("mailto:", "data:")))


def test_site_has_every_kind_of_page(site):
    pages = _pages(site)
    assert len(pages) > 100
    for page in SCREENSHOTS.values():
        assert page in pages
    notebooks = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    assert notebooks == {Path(p).stem for p in pages if p.startswith("notebooks/0")}


def test_internal_links_and_images_resolve(site):
    broken = []
    for page in _pages(site):
        path = site / page
        parsed = _parse(path)
        for ref in parsed.refs + parsed.images:
            if not _internal(ref):
                continue
            parts = urlsplit(ref)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{page}: {ref}")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in _parse(target).ids:
                    broken.append(f"{page}: {ref} (no such anchor)")
    assert not broken, "\n".join(broken[:50])


def test_notebook_pages_show_figures_when_executed(site):
    # With executed copies the notebook pages carry their figures as images;
    # without them each page says that it shows no outputs.
    for page in (site / "notebooks").glob("0*.html"):
        text = page.read_text(encoding="utf-8")
        parsed = _parse(page)
        assert parsed.images or "without its outputs" in text, page.name


class _Handler(http.server.SimpleHTTPRequestHandler):
    checker = b""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path == "/__check__.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(self.checker)))
            self.end_headers()
            self.wfile.write(self.checker)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    handler = type(
        "Handler", (_Handler,), {"checker": (CHECKER % json.dumps(_pages(site))).encode()}
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _chromium(*args, timeout=600):
    profile = tempfile.mkdtemp(prefix="keras-gumbel-chromium-")
    try:
        command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@needs_chromium
def test_every_page_loads_in_chromium(site, served):
    result = _chromium("--virtual-time-budget=900000", "--dump-dom", f"{served}/__check__.html")
    dom = result.stdout
    start = dom.find('<pre id="result">') + len('<pre id="result">')
    text = dom[start : dom.find("</pre>", start)]
    assert text.startswith("{"), f"the check did not finish: {text[:200]!r} {result.stderr[-2000:]}"
    seen = json.loads(text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    pages = _pages(site)
    assert sorted(seen) == pages
    problems = [f"{p}: no main content" for p, r in seen.items() if not r["main"]]
    problems += [f"{p}: images not shown {r['broken']}" for p, r in seen.items() if r["broken"]]
    assert not problems, "\n".join(problems)
    assert sum(r["images"] for r in seen.values()) >= 5  # the figures did render somewhere


@needs_chromium
@pytest.mark.parametrize("kind", sorted(SCREENSHOTS))
def test_screenshot(kind, served, tmp_path):
    folder = Path(os.environ.get("KERAS_GUMBEL_DOCS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"{kind}.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,1600", f"{served}/{SCREENSHOTS[kind]}")
    assert shot.exists(), f"no screenshot of {SCREENSHOTS[kind]}"
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    # A page that failed to render is one flat colour.
    assert pixels.shape[:2] == (1600, 1280)
    assert np.std(pixels[..., :3]) > 0.05
