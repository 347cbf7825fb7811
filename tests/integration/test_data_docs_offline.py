"""Data Docs offline: the demo's pages use only files beside them, and a browser with no
network shows the index with every validation run and a validation page, with no request
to any other host."""

from __future__ import annotations

import re
from pathlib import Path

from offline_browser import only_local, visit

from cohortlake.quality.offline import ASSETS, VENDOR, make_offline, outside_urls, rewrite_page

URL = re.compile(r"https?://[^\s\"'<>()\\]+")
COMMENT = re.compile(r"/\*.*?\*/", re.S)
# The one URL of a vendored file outside a comment: Bootstrap's error message naming Popper's site.
MESSAGE_URLS = {"bootstrap/bootstrap.min.js": {"https://popper.js.org/"}}


def test_rewrite_points_a_nested_page_at_the_vendored_files(tmp_path):
    page = tmp_path / "validations" / "a" / "b.html"
    page.parent.mkdir(parents=True)
    html = ('<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
            '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>'
            '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-x" '
            'crossorigin="anonymous"></script><script src="https://example.org/unknown.js"></script>'
            '<img class="NO-CACHE" src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png'
            '?d=1&dataContextId=abc" alt="GX"/><p>made with <a href="https://greatexpectations.io">GX</a>.</p>'
            '<style>a { background: url(\'https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/x.png\') }</style>'
            '<footer>\n  <p>newsletter <a href="https://greatexpectations.io/newsletter?utm=1">Subscribe</a></p>\n</footer>')
    out = rewrite_page(html, page, tmp_path)
    assert '<link rel="stylesheet" href="../../static/vendor/bootstrap/bootstrap.min.css">' in out
    assert '<script src="../../static/vendor/bootstrap/bootstrap.min.js"></script>' in out
    assert 'src="../../static/images/logo-long.png"' in out and "url('../../static/images/logo-long.png')" in out
    assert "made with GX." in out and "Subscribe" not in out and "vega" not in out and "unknown.js" not in out
    assert "integrity" not in out and "crossorigin" not in out and "://" not in out


def test_vendored_files_are_the_packages_and_load_nothing(demo_run):
    docs = demo_run[0] / "_quality" / "docs"
    shipped = sorted(p.relative_to(ASSETS) for p in ASSETS.rglob("*") if p.is_file())
    assert Path("NOTICE.md") in shipped and Path("jquery/jquery.min.js") in shipped
    for relative in shipped:
        assert (docs / VENDOR / relative).read_bytes() == (ASSETS / relative).read_bytes(), relative
        if relative.suffix in (".js", ".css"):
            # URLs of the licence banners are comments; nothing else may name another host
            code = COMMENT.sub("", (ASSETS / relative).read_text(encoding="utf-8"))
            urls = {u for u in URL.findall(code) if not u.startswith("http://www.w3.org/")}
            assert urls == MESSAGE_URLS.get(relative.as_posix(), set()), relative


def test_demo_data_docs_work_offline(demo_run):
    docs = demo_run[0] / "_quality" / "docs"
    # every generated page, GX's stylesheets and images: no URL to another host (XML namespaces aside)
    assert outside_urls(docs) == []
    assert make_offline(docs) == []  # a second pass finds nothing left to rewrite
    runs = sorted((docs / "validations").rglob("*.html"))
    assert len(runs) >= 15  # bronze, silver and cohort suites of the demo
    index = visit(docs / "index.html")
    assert index.outbound == [] and only_local(index.connections)
    table = index.dom.split('id="section-1-content-block-2-1-body-table"', 1)[1].split("</table>", 1)[0]
    # bootstrap-table (a vendored script) drew the table: it counts every run and shows the first page
    shown = re.search(r"Showing 1 to (\d+) of (\d+) rows", index.dom)
    assert shown and int(shown.group(2)) == len(runs), shown
    rendered = re.findall(r'<tr class="clickable-row" data-href="([^"]+)" data-index="\d+">(.*?)</tr>', table, re.S)
    assert len(rendered) == int(shown.group(1)) == min(10, len(runs))
    for href, cells in rendered:
        assert (docs / href).is_file()
        assert len(re.findall(r'<i class="fas fa-(check-circle|times) text-(success|danger)', cells)) == 1  # its status
    # every run, with its status, in the table's data
    for path in runs:
        assert f"'_table_row_link_path': '{path.relative_to(docs).as_posix()}'" in index.dom
    assert index.dom.count("'_validation_success_text': ") >= len(runs)
    assert "Font Awesome" not in index.dom  # icons come from the vendored font, not a fallback text
    page = visit(runs[0])
    assert page.outbound == [] and only_local(page.connections)
    assert "Overview" in page.dom and runs[0].parent.parent.name.split(".")[1] in page.dom


def test_the_harness_sees_an_outside_request(tmp_path):
    """The check above could pass by seeing nothing: a page that reaches out is caught."""
    page = tmp_path / "reaches_out.html"
    page.write_text('<html><body><img src="https://example.org/pixel.png?id=1"><p>hello</p></body></html>')
    visited = visit(page, budget_ms=2000)
    assert visited.outbound == ["https://example.org/pixel.png?id=1"] and "hello" in visited.dom
    assert only_local(visited.connections)  # and even so it never left the machine
