r"""The docs site's own tooling: the reST-to-Markdown docstring converter (docs/griffe_rst.py),
the build-time MathML rendering (docs/mathml_hook.py) and the site configuration (mkdocs.yml).

The converter's contract: ``.. math::`` becomes a ``\[ ... \]`` block (wrapped in ``aligned``
when it has top-level ``&`` or ``\\``), ``:math:`` becomes ``\( ... \)``, roles become autorefs
links to the public API entry or code spans, ``text::`` becomes ``text:`` and ``Example:``
becomes ``Examples:``. The hook's contract: the TeX in every arithmatex element becomes MathML,
so the built site loads nothing from the network to show math.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from types import ModuleType

import griffe
import markdown
import pytest
from mkdocs.config import load_config
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File
from mkdocs.structure.pages import Page

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONVERTER = f"{DOCS / 'griffe_rst.py'}:RestructuredTextMarkup"
LEFTOVER_REST = re.compile(
    r":(?:func|class|meth|attr|data|mod|obj|exc|math|ref|py:\w+):`|\.\. math::"
)
AUTOREF = re.compile(r"\[`[^`]+`\]\[([\w.]+)\]")
API_ENTRY = re.compile(r"^::: (adamjax(?:\.\w+)*)\s*$", re.MULTILINE)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


rst = _load("griffe_rst")
hook = _load("mathml_hook")


def _links(table: dict[str, str]):
    """A resolver that links the targets in ``table`` and records every call it gets."""
    calls: list[tuple[str, str]] = []

    def resolve(kind: str, target: str) -> str | None:
        calls.append((kind, target))
        return table.get(target)

    return resolve, calls


# --- docs/griffe_rst.py: conversion of constructed docstrings ----------------------------------


def test_inline_math_role_becomes_inline_math() -> None:
    text = r"Decays by :math:`b_1^t` and :math:`\sqrt{\hat v}`."
    assert rst.to_markdown(text) == r"Decays by \(b_1^t\) and \(\sqrt{\hat v}\)."


def test_math_directive_becomes_a_display_block() -> None:
    text = "Intro.\n\n.. math::\n    m_t = b_1 m_{t-1}\n\nAfter."
    expected = "Intro.\n\n\n\\[\nm_t = b_1 m_{t-1}\n\\]\n\nAfter."
    assert rst.to_markdown(text) == expected


def test_math_directive_keeps_its_indentation_inside_a_section() -> None:
    text = "Args:\n    x: the input,\n\n        .. math::\n            y = x^2\n\n    z: more."
    expected = (
        "Args:\n    x: the input,\n\n\n        \\[\n        y = x^2\n        \\]\n\n    z: more."
    )
    assert rst.to_markdown(text) == expected


def test_math_directive_with_rows_is_aligned() -> None:
    text = ".. math::\n    m_t &= a \\\\\n    v_t &= b\n"
    expected = "\n\\[\n\\begin{aligned}\nm_t &= a \\\\\nv_t &= b\n\\end{aligned}\n\\]\n"
    assert rst.to_markdown(text) == expected


def test_rows_inside_an_environment_need_no_alignment() -> None:
    tex = r"u = \begin{cases} a & x \\ b & y \end{cases}"
    assert rst.to_markdown(".. math::\n    " + tex) == "\n\\[\n" + tex + "\n\\]\n"


def test_math_directive_on_one_line() -> None:
    assert (
        rst.to_markdown("Rule:\n\n.. math:: u = -\\alpha g")
        == "Rule:\n\n\n\\[\nu = -\\alpha g\n\\]\n"
    )


def test_math_directive_continuation_lines_keep_their_relative_indent() -> None:
    text = "    .. math::\n        a = b\n            + c\n"
    assert rst.to_markdown(text) == "\n    \\[\n    a = b\n        + c\n    \\]\n"


def test_roles_become_autorefs_links_where_the_resolver_knows_the_target() -> None:
    resolve, calls = _links(
        {"moments": "adamjax.moments", "adamjax.flat.FlatParams": "adamjax.flat.FlatParams"}
    )
    text = "Use :func:`moments`, :class:`~adamjax.flat.FlatParams`, :func:`jax.jit`."
    expected = (
        "Use [`moments`][adamjax.moments], [`FlatParams`][adamjax.flat.FlatParams], `jax.jit`."
    )
    assert rst.to_markdown(text, resolve) == expected
    assert calls == [("func", "moments"), ("class", "adamjax.flat.FlatParams"), ("func", "jax.jit")]


def test_every_role_kind_is_converted() -> None:
    text = " ".join(f":{kind}:`x{i}`" for i, kind in enumerate(rst.ROLES))
    expected = " ".join(f"`x{i}`" for i in range(len(rst.ROLES)))
    assert rst.to_markdown(text) == expected


def test_literal_block_marker_and_example_header() -> None:
    text = "Chain it::\n\n    a -> b\n\nExample:\n    >>> print('a::')\n    a::"
    expected = "Chain it:\n\n    a -> b\n\nExamples:\n    >>> print('a::')\n    a:"
    assert rst.to_markdown(text) == expected


# --- docs/griffe_rst.py: role targets resolved in a package's scopes ---------------------------


@pytest.fixture(scope="module")
def demo_package(tmp_path_factory: pytest.TempPathFactory) -> griffe.Module:
    """A package like adamjax: private implementation modules, names re-exported by
    ``__init__``, a public submodule, converted by the extension as mkdocstrings loads it."""
    root = tmp_path_factory.mktemp("src")
    package = root / "demo"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""Demo: see :func:`run`."""\n'
        "from demo._impl import Box, run\n"
        "from demo import tools\n"
        '__all__ = ["Box", "run", "tools"]\n'
    )
    (package / "_impl.py").write_text(
        textwrap.dedent('''\
            import os


            def run():
                """Start :func:`_helper`, :class:`Box`, :meth:`Box.close`; :func:`os.replace`."""


            class Box:
                """Holds what :func:`run` returns in :attr:`run`; :meth:`close` ends it."""

                run: int

                def close(self):
                    """Stop :math:`x^2`."""


            def _helper():
                """Private: :func:`run`."""
            ''')
    )
    (package / "tools.py").write_text(
        '"""Tools."""\n__all__ = ["tool"]\n\n\n'
        'def tool():\n    """After :func:`run`, :func:`tool`."""\n'
    )
    loaded = griffe.load("demo", search_paths=[root], extensions=griffe.load_extensions(CONVERTER))
    assert isinstance(loaded, griffe.Module)
    return loaded


def test_public_paths_map_definitions_to_the_names_users_import(
    demo_package: griffe.Module,
) -> None:
    public = rst.public_paths(demo_package)
    assert public["demo._impl.run"] == "demo.run"
    assert public["demo._impl.Box"] == "demo.Box"
    assert public["demo.tools.tool"] == "demo.tools.tool"
    assert "demo._impl._helper" not in public
    assert rst.public_identifier("demo._impl.Box.close", public) == "demo.Box.close"
    assert rst.public_identifier("demo._impl._helper", public) is None


def test_docstrings_link_to_public_entries(demo_package: griffe.Module) -> None:
    docstrings = {
        obj.path: obj.docstring.value for obj in rst.defined_objects(demo_package) if obj.docstring
    }
    assert docstrings["demo"] == "Demo: see [`run`][demo.run]."
    assert docstrings["demo._impl.run"] == (
        "Start `_helper`, [`Box`][demo.Box], [`Box.close`][demo.Box.close]; `os.replace`."
    )
    # :func: looks in the module (the function), :attr: and :meth: in the class first
    assert docstrings["demo._impl.Box"] == (
        "Holds what [`run`][demo.run] returns in [`run`][demo.Box.run]; "
        "[`close`][demo.Box.close] ends it."
    )
    assert docstrings["demo._impl.Box.close"] == r"Stop \(x^2\)."
    assert docstrings["demo._impl._helper"] == "Private: [`run`][demo.run]."
    assert docstrings["demo.tools.tool"] == "After [`run`][demo.run], [`tool`][demo.tools.tool]."


# --- docs/griffe_rst.py on adamjax itself ------------------------------------------------------


def _api_entries() -> set[str]:
    return {
        name for page in (DOCS / "api").glob("*.md") for name in API_ENTRY.findall(page.read_text())
    }


def _documented(identifier: str, entries: set[str]) -> bool:
    """An ``::: identifier`` entry, or a member of one (a method, a module's function)."""
    parts = identifier.split(".")
    return any(".".join(parts[:cut]) in entries for cut in range(len(parts), 1, -1))


def test_every_adamjax_docstring_converts_to_markdown_with_links_to_api_entries() -> None:
    package = griffe.load(
        "adamjax", search_paths=[ROOT], extensions=griffe.load_extensions(CONVERTER)
    )
    assert isinstance(package, griffe.Module)
    entries = _api_entries()
    converted = [obj for obj in rst.defined_objects(package) if obj.docstring is not None]
    assert len(converted) > 200
    links = set()
    for obj in converted:
        text = obj.docstring.value
        assert not LEFTOVER_REST.search(text), f"{obj.path}: reST left in {text!r}"
        links |= set(AUTOREF.findall(text))
    assert {"adamjax.moments", "adamjax.bias_correction", "adamjax.Moments"} <= links
    undocumented = sorted(link for link in links if not _documented(link, entries))
    assert not undocumented, f"docstrings link to names with no API entry: {undocumented}"


def test_adamjax_source_still_has_the_rest_the_converter_handles() -> None:
    # the converter is exercised by real docstrings, not only by the constructed ones above
    source = "\n".join(path.read_text() for path in (ROOT / "adamjax").glob("*.py"))
    assert source.count(".. math::") >= 20
    assert source.count(":math:`") >= 100
    assert source.count(":func:`") >= 50


# --- docs/mathml_hook.py -----------------------------------------------------------------------


def test_formula_becomes_mathml() -> None:
    # math-core's documented output for these two
    assert hook.to_mathml("x^2", display=False) == "<math><msup><mi>x</mi><mn>2</mn></msup></math>"
    assert hook.to_mathml(r"\frac{1}{2}", display=True) == (
        '<math display="block"><mfrac><mn>1</mn><mn>2</mn></mfrac></math>'
    )


def test_arithmatex_elements_are_replaced_and_the_rest_is_kept() -> None:
    page = (
        '<p>Step <span class="arithmatex">\\(x^2\\)</span> then</p>\n'
        '<div class="arithmatex">\\[\\frac{1}{2}\\]</div>\n<p>\\(not math\\)</p>'
    )
    expected = (
        '<p>Step <span class="arithmatex"><math><msup><mi>x</mi><mn>2</mn></msup></math></span>'
        " then</p>\n"
        '<div class="arithmatex"><math display="block"><mfrac><mn>1</mn><mn>2</mn></mfrac>'
        "</math></div>\n<p>\\(not math\\)</p>"
    )
    assert hook.render_math(page) == expected


def test_markdown_math_renders_as_mathml_through_the_site_extensions() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    source = textwrap.dedent(r"""
        Inline \(a < b\) and $c > d$.

        \[
        \begin{aligned}
        m_t &= b_1 m_{t-1} \\
        v_t &= b_2 v_{t-1}
        \end{aligned}
        \]

        $$
        \hat m_t = \frac{m_t}{1 - b_1^t}
        $$
        """)
    html = markdown.markdown(
        source, extensions=config.markdown_extensions, extension_configs=config.mdx_configs
    )
    rendered = hook.render_math(html)
    assert rendered.count("<math>") == 2
    assert rendered.count('<math display="block">') == 2
    assert "<mo>&lt;</mo>" in rendered and "<mo>&gt;</mo>" in rendered
    assert "<mtable" in rendered  # the aligned rows
    assert not re.search(r"\\[(\[]|\$", rendered)


def test_a_formula_that_does_not_convert_fails_the_page_by_name() -> None:
    with pytest.raises(ValueError, match=r"\\\\frac\{1\}"):
        hook.to_mathml(r"\frac{1}", display=True)
    config = load_config(str(ROOT / "mkdocs.yml"))
    file = File("transforms/broken.md", str(DOCS), "/tmp/site", use_directory_urls=True)
    page = Page("Broken", file, config)
    bad = '<span class="arithmatex">\\(\\nosuchcommand x\\)</span>'
    with pytest.raises(PluginError, match=r"transforms/broken\.md: .*nosuchcommand"):
        hook.on_page_content(bad, page=page, config=config, files=None)


# --- mkdocs.yml --------------------------------------------------------------------------------


def _nav_pages(nav: object) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, list):
        return set().union(*map(_nav_pages, nav)) if nav else set()
    if isinstance(nav, dict):
        return set().union(*map(_nav_pages, nav.values())) if nav else set()
    return set()


def test_config_loads_nothing_from_the_network_and_renders_math_with_the_hook() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    assert [str(path) for path in config.extra_javascript] == []
    assert not [css for css in config.extra_css if re.match(r"https?:", css)]
    assert config.theme["font"] is False  # no web fonts either
    assert list(config.hooks) == ["docs/mathml_hook.py"]
    assert config.mdx_configs["pymdownx.arithmatex"] == {"generic": True}


def test_every_page_is_listed_in_the_nav() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    pages = {str(path.relative_to(DOCS)) for path in DOCS.glob("**/*.md")}
    assert pages - _nav_pages(config.nav) == set()
    assert "performance.md" in _nav_pages(config.nav)


# --- the built site ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert not re.search(r"^WARNING", log, re.MULTILINE), log
    return out


class _Assets(HTMLParser):
    """The URLs of the scripts, style sheets and fonts a page loads."""

    LOADED = frozenset({"stylesheet", "preload", "modulepreload", "preconnect", "icon"})

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "script" and values.get("src"):
            self.urls.append(values["src"])
        if tag == "link" and self.LOADED & set(values.get("rel", "").split()):
            self.urls.append(values.get("href", ""))


def _remote_assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, "a page of the site loads at least its own scripts"
    return [url for url in parser.urls if re.match(r"(?:https?:)?//", url)]


@pytest.mark.slow
def test_built_site_shows_math_as_mathml_and_loads_no_remote_asset(site: pathlib.Path) -> None:
    pages = sorted(site.glob("**/*.html"))
    assert len(pages) > 40
    formulas = 0
    for page in pages:
        html = page.read_text()
        assert not _remote_assets(html), f"{page} loads {_remote_assets(html)}"
        assert "mathjax" not in html.lower() and "katex" not in html.lower(), page
        assert not re.search(r'class="arithmatex">\s*\\[(\[]', html), f"{page}: TeX left unrendered"
        formulas += html.count("<math")
    assert formulas > 300
    api = (site / "api" / "transforms" / "index.html").read_text()
    moments = api[api.index('id="adamjax.moments"') : api.index('id="adamjax.infinity_moments"')]
    assert '<math display="block">' in moments  # its .. math:: block
    assert "<math>" in moments  # its :math: roles
    assert 'href="#adamjax.bias_correction"' in moments  # its :func: role, now a link


@pytest.mark.slow
def test_pages_link_to_the_api_entry_that_owns_a_formula(site: pathlib.Path) -> None:
    page = (site / "transforms" / "moments" / "index.html").read_text()
    assert 'href="../../api/transforms/#adamjax.moments"' in page
    aliases = (site / "transforms" / "aliases" / "index.html").read_text()
    for name in ("adam", "adamw", "amsgrad", "adamax", "nadam", "rmsprop", "adagrad", "sgd"):
        assert f'href="../../api/optimizers/#adamjax.{name}"' in aliases, name
