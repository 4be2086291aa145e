"""The report as a browsable site: `make html` (`python -m hw1lib.report --html`).

The notebooks of one complete report (the run record says which: `report`)
become `build/html/<name>.html` with their inputs hidden, beside
`results.html` (RESULTS.md) and an index in report order. Every page reads
offline: formulas are MathML, nothing is fetched from the network.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from .paths import build_dir, repo_root, shown, write_atomic


_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$", re.S)
# What nbconvert's template loads from a CDN (MathJax, require.js, mermaid): nothing of it is needed once math
# is MathML, and a report must read offline.
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>|"
                            r"<script[^>]*>(?:(?!</script>).)*?(?:\bfrom\s+|\bimport\s*\(\s*)[\"']https?://"
                            r"(?:(?!</script>).)*</script>|"
                            r"<script type=\"text/x-mathjax-config\">(?:(?!</script>).)*</script>", re.S)
# Figures scale to the column, whatever width they were saved at (1650 px ones were cut off at 1400).
_FIT = "<style>img{max-width:100%;height:auto}</style>"
_CONFIG = re.compile(r"^\w+Config\(")
_SAVED = re.compile(r"^saved \S+.*\n?", re.M)


def math_to_mathml(markdown: str) -> str:
    """Markdown with every `$...$` / `$$...$$` formula replaced by MathML, which
    browsers render natively: math reads offline, with no script."""
    from latex2mathml.converter import convert

    def one(m):
        tex, display = (m.group(1), "block") if m.group(1) is not None else (m.group(2), "inline")
        return convert(tex.strip(), display=display)

    return _MATH.sub(one, markdown)


def config_table(text: str) -> str:
    """A config's repr as a collapsed block, one field per line (a nested
    config's fields indented under it), instead of one wrapped line."""
    import html

    name = text.partition("(")[0]
    return (f"<details><summary>{html.escape(name)} (the config this page ran with)</summary><pre>"
            + html.escape("\n".join(_config_lines(text))) + "</pre></details>")


def _config_lines(text: str, indent: str = "") -> list[str]:
    fields, depth, cur = [], 0, ""
    for ch in text.partition("(")[2][:-1]:          # between the config's own parentheses
        depth += (ch in "([") - (ch in ")]")
        if ch == "," and depth == 0:
            fields.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out = []
    for f in fields + [cur.strip()]:
        key, _, value = f.partition("=")
        out += ([f"{indent}{key}:"] + _config_lines(value, indent + "  ") if _CONFIG.match(value)
                else [f"{indent}{key} = {value}"])
    return out


def readable(doc) -> None:
    """What a reader of the site sees in place of a notebook's working output:
    a config shown as a collapsed block, not one wrapped line; no "saved
    <path>" lines (the figure is on the page)."""
    for c in doc.cells:
        for o in c.get("outputs", []):
            text = o.get("data", {}).get("text/plain", "") if o.get("output_type") == "execute_result" else ""
            if _CONFIG.match(text):
                o["data"] = {"text/html": config_table(text)}
            elif o.get("output_type") == "stream":
                o["text"] = _SAVED.sub("", o["text"])
        c["outputs"] = [o for o in c.get("outputs", []) if o.get("output_type") != "stream" or o["text"].strip()]


def offline_html(body: str) -> str:
    """An nbconvert page without the scripts it would fetch from the network."""
    return _REMOTE_SCRIPT.sub("", body)


def _nav(pages: list[tuple[str, str]], i: int | None, profile: str | None = None) -> str:
    """The navigation bar of page i of `pages` [(file, title)] (None: the results page), saying which
    profile the pages show and that the results page holds the committed full-profile numbers."""
    import html

    links = ['<a href="index.html">Contents</a>',
             '<a href="results.html">Results' + ("" if profile in (None, "full") else " (full profile)") + "</a>"]
    if profile:
        links.insert(0, f"<b>{html.escape(profile)} profile</b>")
    if i is not None:
        if i > 0:
            links.insert(1, f'<a href="{pages[i - 1][0]}" rel="prev">&larr; {html.escape(pages[i - 1][1])}</a>')
        if i + 1 < len(pages):
            links.append(f'<a href="{pages[i + 1][0]}" rel="next">{html.escape(pages[i + 1][1])} &rarr;</a>')
    return ('<nav class="hw1lib-nav" style="font-family: sans-serif; padding: 0.5em 1em; border-bottom: 1px solid #ccc">'
            + " &middot; ".join(links) + "</nav>")


def _page(title: str, nav: str, body: str) -> str:
    import html

    return ("<!doctype html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:0 auto}table{border-collapse:collapse}"
            "img{max-width:100%;height:auto}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>\n" + nav + "\n" + body +
            "\n</body></html>\n")


def export_html(nbs: list[Path], out: Path, record: dict | None = None, results_md: Path | None = None) -> Path:
    """Executed notebooks -> `out/<name>.html` (inputs hidden: the report reads
    as prose, figures and tables), `out/results.html` (RESULTS.md) and
    `out/index.html` linking them in report order. Every page works offline:
    formulas are MathML, nothing is fetched from the network; every page has
    links to the contents, the results and the previous and next section.
    Returns the index's path."""
    import html

    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    out.mkdir(parents=True, exist_ok=True)
    profile = (record or {}).get("profile")
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    docs, pages = [], []
    for nb in nbs:
        doc = nbformat.read(nb, as_version=4)
        title = next((line.lstrip("# ").strip() for c in doc.cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("#")), nb.stem)
        for c in doc.cells:
            if c.cell_type == "markdown":
                c.source = math_to_mathml(c.source)
        readable(doc)
        docs.append(doc)
        pages.append((f"{nb.stem}.html", title))
    for i, (doc, (name, title)) in enumerate(zip(docs, pages)):
        body, _ = exporter.from_notebook_node(doc, resources={"metadata": {"name": title}})
        body = offline_html(body).replace('href="../RESULTS.md"', 'href="results.html"').replace(
            "</head>", _FIT + "</head>", 1)
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _nav(pages, i, profile), body, count=1)
        write_atomic(out / name, body)
    md = results_md if results_md is not None else repo_root() / "RESULTS.md"
    if md.is_file():
        page = markdown2html_mistune(math_to_mathml(md.read_text()))
        for name in sorted(set(re.findall(r'src="figures/([\w.-]+)"', page))):    # the site carries its figures
            if (md.parent / "figures" / name).is_file():
                (out / "figures").mkdir(exist_ok=True)
                shutil.copyfile(md.parent / "figures" / name, out / "figures" / name)
        note = ("" if profile in (None, "full") else f"<p><b>These are the committed full-profile numbers</b>, not "
                f"this site's: its pages show the {html.escape(profile)} profile.</p>\n")
        write_atomic(out / "results.html", _page("hw1lib results", _nav(pages, None, profile), note + page))
    rows = [f'<li><a href="{html.escape(name)}">{html.escape(title)}</a></li>' for name, title in pages]
    about = ""
    if record:
        about = ("<p>Profile <b>{profile}</b>, device {device}, commit <code>{git_commit}</code>, "
                 "rendered {started}.</p>").format(**{k: html.escape(str(record.get(k, "?")))
                                                      for k in ("profile", "device", "git_commit", "started")})
    index = out / "index.html"
    write_atomic(index, _page("hw1lib report", _nav(pages, None, profile),
                              "<h1>Deep vs Shallow, Optimization, Generalization</h1>\n" + about +
                              '\n<p><a href="results.html">Every headline number</a> beside the published one.</p>'
                              "\n<ol>\n" + "\n".join(rows) + "\n</ol>"))
    return index


def html_main() -> int:
    """`make html`: the notebooks of one complete report, as a browsable site;
    or, when the report is incomplete, what is missing and how to render it."""
    from .errors import Hw1libError

    from .report import read_record, report_state

    try:
        rec = read_record()
    except Hw1libError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rec.get("notebooks"):
        print(f"error: no rendered report in {shown(build_dir() / 'notebooks')}; run `make report` first.",
              file=sys.stderr)
        return 2
    nbs, missing = report_state(rec)
    settings = rec["settings"]
    if missing:
        names = ",".join(n.split("_")[0] for n in missing)
        print(f"error: the report in {shown(build_dir() / 'notebooks')} (profile {settings['profile']}) is incomplete; "
              f"{len(missing)} of {len(missing) + len(nbs)} notebooks missing:", file=sys.stderr)
        for name, why in missing.items():
            print(f"  {name}: {why}", file=sys.stderr)
        print(f"render them with `make report PROFILE={settings['profile']} NB={names}`"
              + (" and the same SET" if settings.get("overrides") else "") + ", then run `make html` again.",
              file=sys.stderr)
        return 2
    entries = [rec["notebooks"][p.name] for p in nbs]
    commits = sorted({e["git_commit"] for e in entries})
    about = {"profile": settings["profile"], "device": settings["device"], "git_commit": ", ".join(commits),
             "started": f"{min(e['rendered'] for e in entries)} to {max(e['rendered'] for e in entries)}"}
    out = build_dir() / "html"
    staging = Path(tempfile.mkdtemp(prefix=".html-", dir=build_dir()))
    try:
        export_html(nbs, staging, about)
        os.chmod(staging, 0o755)
        old = out.with_name(f".html-old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    note = f" (rendered at {len(commits)} commits: {', '.join(commits)})" if len(commits) > 1 else ""
    print(f"[html] {len(nbs)} notebooks, profile {settings['profile']}{note} -> {shown(out / 'index.html')}")
    return 0
