r"""MkDocs hook: every formula of the site becomes MathML when the site is built.

``pymdownx.arithmatex`` (generic mode) marks the math of the pages and of the docstrings as
``<span class="arithmatex">\(...\)</span>`` and ``<div class="arithmatex">\[...\]</div>``, with
``&``, ``<`` and ``>`` escaped. This hook replaces the TeX inside each of them by MathML Core
(converted by ``math-core``), which browsers draw natively: the site loads no script, style
sheet or font to show math. A formula that does not convert fails the build, naming the page
and the formula.
"""

from __future__ import annotations

import html
import re
from typing import Any

from math_core import LatexError, LatexToMathML
from mkdocs.exceptions import PluginError

_MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.DOTALL)
_DELIMITERS = {"span": ("\\(", "\\)"), "div": ("\\[", "\\]")}
_CONVERTER = LatexToMathML(fancy_error=False)


def to_mathml(tex: str, *, display: bool) -> str:
    """The MathML of one formula (``display`` for a block).

    Raises:
        ValueError: if ``tex`` is not TeX that ``math-core`` converts (an unknown command, an
            unbalanced brace), naming the formula.
    """
    try:
        return _CONVERTER.convert_with_local_state(tex, displaystyle=display)
    except LatexError as error:
        raise ValueError(f"cannot render the formula {tex!r} as MathML: {error}") from error


def _replace(match: re.Match[str]) -> str:
    tag, body = match.group(1), html.unescape(match.group(2)).strip()
    opening, closing = _DELIMITERS[tag]
    if not (body.startswith(opening) and body.endswith(closing)):
        raise ValueError(f"math {body!r} is not delimited by {opening} ... {closing}")
    tex = body[len(opening) : -len(closing)].strip()
    return f'<{tag} class="arithmatex">{to_mathml(tex, display=tag == "div")}</{tag}>'


def render_math(page_html: str) -> str:
    """``page_html`` with the TeX of every arithmatex element replaced by MathML."""
    return _MATH.sub(_replace, page_html)


def on_page_content(page_html: str, page: Any, **kwargs: Any) -> str:
    """Render the page's math (its own and its docstrings') as MathML."""
    del kwargs
    try:
        return render_math(page_html)
    except ValueError as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from error
