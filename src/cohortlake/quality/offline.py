"""Data Docs that open where the data lives: no request to any other host.

Great Expectations writes its pages to load jQuery, Bootstrap, bootstrap-table, Font
Awesome and others from public CDNs, and its logo from a public S3 URL carrying the data
context's id. Offline the index stays empty (its table of runs is built by those
scripts), and online every page view tells a third party that a report was opened.

:func:`make_offline` rewrites what GX wrote: the scripts and stylesheets the pages use are
copied from this package (``docs_assets/``, vendored from their npm packages with their
licences; see its NOTICE.md) into ``static/vendor/`` and each page points at them by a
relative path; the logo is GX's own copy in ``static/images/``; links to outside hosts
(the newsletter, "Great Expectations") become plain text or go; anything else that would
reach out (an unknown script or stylesheet, an image) is dropped. :func:`outside_urls`
lists what is left, for tests and for the caller's warning.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

from cohortlake.resources import docs_assets

ASSETS = docs_assets()
VENDOR = "static/vendor"
LOGO = "static/images/logo-long.png"

# What the GX 1.x page templates load, by the URL's path (host and version-pinning query
# aside): the vendored file that replaces it, or None when the pages need nothing of it.
CDN_FILES: dict[str, str | None] = {
    "/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/popper.min.js",
    "/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": "bootstrap-dark/bootstrap-prefers-dark.min.css",
    "/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    # Charts (vega) are drawn only for expect_column_kl_divergence_to_be_less_than, which no suite uses.
    "/npm/vega@5": None,
    "/npm/vega-lite@5": None,
    "/npm/vega-embed@6": None,
}
GX_ASSET_HOST = "great-expectations-web-assets.s3.us-east-2.amazonaws.com"
# XML namespace names (inline and standalone SVG) are identifiers a browser never fetches.
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink", "http://www.w3.org/1999/xhtml")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")

_URL = re.compile(r"https?://[^\s\"'<>()\\]+", re.I)
_SCRIPT = re.compile(r"<script\b[^>]*?\bsrc=\"(https?://[^\"]+)\"[^>]*>\s*</script>\s*", re.I)
_LINK = re.compile(r"<link\b[^>]*?\bhref=\"(https?://[^\"]+)\"[^>]*?/?>\s*", re.I)
_IMG_SRC = re.compile(r"(<img\b[^>]*?\bsrc=\")(https?://[^\"]+)(\")", re.I | re.S)
_ANCHOR = re.compile(r"<a\b[^>]*?\bhref=\"https?://[^\"]*\"[^>]*>(.*?)</a>", re.I | re.S)
_FOOTER = re.compile(r"<footer>(?:(?!</footer>).)*?greatexpectations\.io(?:(?!</footer>).)*</footer>\s*", re.I | re.S)
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(https?://[^'\")]+)\1\s*\)", re.I)
_GENERATOR_COMMENT = re.compile(r"<!--\s*Generator:[^>]*?-->\s*", re.I)


def _local(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOCAL_HOSTS


def _relative(target: str, page: Path, docs: Path) -> str:
    return Path(os.path.relpath(docs / target, page.parent)).as_posix()


def copy_assets(docs: Path) -> None:
    """The vendored files (and their licences) into ``static/vendor/``; unchanged ones are left."""
    target_root = docs / VENDOR
    for source in ASSETS.rglob("*"):
        if not source.is_file():
            continue
        target = target_root / source.relative_to(ASSETS)
        if target.is_file() and filecmp.cmp(source, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def rewrite_page(html: str, page: Path, docs: Path) -> str:
    """One GX page with every outside reference replaced by a local file or removed."""
    def asset(url: str) -> str | None:
        return CDN_FILES.get(urlparse(url).path, None)

    def script(match: re.Match) -> str:
        vendored = asset(match.group(1))
        return f'<script src="{_relative(f"{VENDOR}/{vendored}", page, docs)}"></script>\n' if vendored else ""

    def link(match: re.Match) -> str:
        vendored = asset(match.group(1))
        if vendored is None:
            return ""
        return f'<link rel="stylesheet" href="{_relative(f"{VENDOR}/{vendored}", page, docs)}">\n'

    def image(match: re.Match) -> str:
        # GX's logo URL carries the data context's id; its own copy of the logo is in static/images.
        local = _relative(LOGO, page, docs) if urlparse(match.group(2)).hostname == GX_ASSET_HOST else ""
        return f"{match.group(1)}{local}{match.group(3)}"

    html = _FOOTER.sub("", html)  # the newsletter footer
    html = _SCRIPT.sub(script, html)
    html = _LINK.sub(link, html)
    html = _IMG_SRC.sub(image, html)
    html = _ANCHOR.sub(lambda m: m.group(1), html)
    html = _CSS_URL.sub(lambda m: _css_url(m, _relative(LOGO, page, docs)), html)
    return html


def _css_url(match: re.Match, logo: str) -> str:
    url = match.group(2)
    if _local(url):
        return match.group(0)
    return f"url('{logo}')" if urlparse(url).hostname == GX_ASSET_HOST else "none"


def rewrite_static(path: Path, docs: Path) -> str | None:
    """GX's own stylesheets and images in ``static/`` (the dark theme's logo, an SVG's generator note)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".css":
        new = _CSS_URL.sub(lambda m: _css_url(m, _relative(LOGO, path, docs)), text)
    else:
        new = _GENERATOR_COMMENT.sub("", text)
    return new if new != text else None


def make_offline(docs_dir: str | Path, since: float | None = None) -> list[tuple[str, str]]:
    """Rewrite the Data Docs under ``docs_dir`` to use only files beside them.

    ``since`` (a time stamp) limits the pages rewritten to those GX wrote from then on (a
    build renders only its own run's pages and the index); None rewrites every page.
    Returns what still points outside (:func:`outside_urls`) of the files looked at.
    """
    docs = Path(docs_dir)
    if not docs.is_dir():
        return []
    copy_assets(docs)
    touched = []
    for path in docs.rglob("*"):
        if not path.is_file() or VENDOR in path.relative_to(docs).as_posix():
            continue
        if path.suffix not in (".html", ".css", ".svg"):
            continue
        if since is not None and path.suffix == ".html" and path.stat().st_mtime < since:
            continue
        if path.suffix == ".html":
            text = path.read_text(encoding="utf-8")
            if "://" not in text:
                continue
            new = rewrite_page(text, path, docs)
            new = new if new != text else None
        else:
            new = rewrite_static(path, docs)
        if new is not None:
            path.write_text(new, encoding="utf-8")
        touched.append(path)
    return [(str(path), url) for path in touched for url in _outside_in(path)]


def _outside_in(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    return [url for url in _URL.findall(text) if url not in NAMESPACES and not _local(url)]


def outside_urls(docs_dir: str | Path) -> list[tuple[str, str]]:
    """Every URL to another host in the docs' own files (pages, GX's styles and images).

    The vendored files are left out: they are the npm packages' files as published, whose
    only URLs are in their licence banners (see the tests), never fetched.
    """
    docs = Path(docs_dir)
    found = []
    for path in sorted(docs.rglob("*")):
        if path.is_file() and VENDOR not in path.relative_to(docs).as_posix():
            found += [(str(path), url) for url in _outside_in(path)]
    return found
