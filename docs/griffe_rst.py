"""Render the reStructuredText bits of adamjax docstrings as Markdown for the docs site.

The docstrings are Google style with a few reST constructs that Markdown does not know:
``.. math::`` blocks, ``:math:`x``` and ``:func:`name``` roles, and ``::`` before literal
blocks. This griffe extension rewrites them when mkdocstrings loads the package: math becomes
``\\( ... \\)`` and ``\\[ ... \\]`` for MathJax (``pymdownx.arithmatex``), roles become code spans,
and ``Example:`` becomes the ``Examples:`` section that renders doctests as code.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")


def _math_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The display block opened by ``.. math::`` at ``lines[start]``, and where it ends."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    body, end = [], start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        body.append(lines[end])
        end += 1
    while body and not body[-1].strip():
        body.pop()
        end -= 1
    tex = textwrap.dedent("\n".join(body)).strip()
    if "&" in tex or "\\\\" in tex:
        tex = "\\begin{aligned}\n" + tex + "\n\\end{aligned}"
    pad = " " * indent
    block = ["", pad + "\\["] + [pad + line for line in tex.splitlines()] + [pad + "\\]", ""]
    return block, end


def to_markdown(text: str) -> str:
    """Rewrite reST math, roles and literal-block markers in ``text`` as Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == ".. math::":
            block, i = _math_block(lines, i)
            out.extend(block)
            continue
        line = lines[i]
        if line.strip() == "Example:":  # the Google section griffe knows is "Examples"
            line = line.replace("Example:", "Examples:")
        if line.rstrip().endswith("::") and not line.strip().startswith(">>>"):
            line = line.rstrip()[:-1]  # "text::" introduces an indented literal block
        out.append(line)
        i += 1
    result = "\n".join(out)
    result = _MATH_ROLE.sub(lambda m: "\\(" + m.group(1) + "\\)", result)
    return _ROLE.sub(lambda m: "`" + m.group(1) + "`", result)


class RestructuredTextMarkup(griffe.Extension):
    """Convert every docstring of the loaded package once its object tree is complete."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        del loader, kwargs
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
