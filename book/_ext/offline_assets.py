"""Sphinx extension of the book: its HTML pages load nothing from the internet.

* plotly.js: the copy inside the installed plotly package becomes
  ``_static/plotly.min.js``, loaded by the pages that hold a plotly figure. The
  notebooks draw their figures with ``leanecd.plots.plotly_renderer()``, whose
  HTML output expects ``window.Plotly`` and loads no script of its own.
* MathJax 3: ``scripts/setup-env.sh`` installs it from the npm registry into
  ``<venv>/share/leanecd-web/node_modules/mathjax`` (``LEANECD_MATHJAX`` names
  another ``es5`` folder); its ``es5`` folder becomes ``_static/mathjax`` (with the
  fonts) and ``mathjax_path`` points there.
* sphinx-thebe's scripts are left out while the book has no thebe button: they
  name thebe's CDN address and, added twice, raise a SyntaxError on every page.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sphinx.errors import ExtensionError

MATHJAX_SCRIPT = "tex-chtml.js"


def mathjax_dir() -> Path:
    env = os.environ.get("LEANECD_MATHJAX")
    if env:
        return Path(env)
    return Path(sys.prefix) / "share" / "leanecd-web" / "node_modules" / "mathjax" / "es5"


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _builder_inited(app):
    if app.builder.format != "html":
        return
    config = app.config
    mj = mathjax_dir()
    if not (mj / MATHJAX_SCRIPT).is_file():
        raise ExtensionError(f"MathJax 3 is not installed at {mj} (scripts/setup-env.sh installs it with npm)")
    if not plotly_js().is_file():
        raise ExtensionError(f"plotly.js is missing from the plotly package ({plotly_js()})")
    config.mathjax_path = f"mathjax/{MATHJAX_SCRIPT}"


def _thebe_enabled(app) -> bool:
    options = app.config.html_theme_options or {}
    return bool(options.get("launch_buttons", {}).get("thebe")) or \
        bool(getattr(app.config, "thebe_config", {}).get("always_load"))


def _is_thebe(js) -> bool:
    name = getattr(js, "filename", None) or ""
    body = getattr(js, "attributes", {}).get("body", "") or ""
    return name.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _page_context(app, pagename, templatename, context, doctree):
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file("plotly.min.js")
    scripts = context.get("script_files")
    if scripts is not None and not _thebe_enabled(app):
        # The book has no thebe button, yet sphinx-thebe adds (twice: a SyntaxError
        # in the console) a script naming thebe's CDN address: drop it.
        scripts[:] = [js for js in scripts if not _is_thebe(js)]


def _build_finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plotly_js(), static / "plotly.min.js")
    shutil.copytree(mathjax_dir(), static / "mathjax", dirs_exist_ok=True)


def setup(app):
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _page_context)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
