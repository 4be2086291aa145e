"""The site as a reader's browser lays it out: each page is opened in headless
Chromium at a given window width, and a probe script reports, after the page
has loaded, every figure that does not fit its column, every output line wider
than its column (a wrapped line counts at its whole length) and every URL the
page loaded, or would load, from the network."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

# Each figure is measured against its column (the notebook cell it sits in, or the page's body); a `pre` is
# laid out unwrapped and measured against its own box and its column.
PROBE = r"""<script>
window.addEventListener('load', function () {
  var out = {width: window.innerWidth, overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
             images: 0, outputs: 0, wide_images: [], wide_lines: [], remote: []};
  function column(el) { return (el.closest('.jp-Cell') || document.body).getBoundingClientRect(); }
  Array.prototype.forEach.call(document.images, function (img) {
    var r = img.getBoundingClientRect(), c = column(img);
    if (img.naturalWidth > 0) out.images += 1;
    if (r.right > c.right + 1 || r.left < c.left - 1)
      out.wide_images.push({natural: img.naturalWidth, shown: Math.round(r.width), column: Math.round(c.width)});
  });
  Array.prototype.forEach.call(document.querySelectorAll('pre'), function (pre) {
    out.outputs += 1;
    pre.style.whiteSpace = 'pre';
    if (pre.scrollWidth > pre.clientWidth + 1 || pre.getBoundingClientRect().right > column(pre).right + 1)
      out.wide_lines.push(pre.textContent.split('\n').reduce(function (a, b) { return a.length >= b.length ? a : b; }).slice(0, 160));
  });
  performance.getEntriesByType('resource').forEach(function (e) {
    if (!/^(file|data|blob):/.test(e.name)) out.remote.push(e.name);
  });
  Array.prototype.forEach.call(document.querySelectorAll('[src], link[href]'), function (el) {
    var u = el.getAttribute('src') || el.getAttribute('href');
    if (/^(https?:)?\/\//.test(u)) out.remote.push(u);
  });
  var pre = document.createElement('pre'); pre.id = 'hw1lib-probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    """The headless browser on this machine (Debian's `chromium`), or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def layout(page: Path, width: int = 1280, browser: str | None = None) -> dict:
    """What the probe saw on `page` in a `width`-pixel window (a copy of the page carries the probe, so the
    page itself is what the site holds)."""
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>", 1))
    try:
        # no network at all: a page that tries to fetch something fails to, and the probe names the URL
        r = subprocess.run([browser or chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                            f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom",
                            copy.as_uri()], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "HOME": str(page.parent)})
    finally:
        copy.unlink()
    found = re.search(r'<pre id="hw1lib-probe">(.*?)</pre>', r.stdout, re.S)
    assert found, f"{page.name}: the probe did not report (chromium exit {r.returncode}): {r.stderr[-800:]}"
    return json.loads(html.unescape(found.group(1)))
