r"""Render the reStructuredText bits of adamjax docstrings as Markdown for the docs site.

The docstrings are Google style with a few reST constructs that Markdown does not know. This
griffe extension rewrites them when mkdocstrings loads the package, before the docstrings are
parsed:

* ``.. math::`` and its indented body become a display block ``\[ ... \]``; a body with an
  ``&`` or a ``\\`` outside any ``\begin ... \end`` environment is wrapped in
  ``\begin{aligned} ... \end{aligned}``;
* ``:math:`x``` becomes inline math ``\(x\)``;
* ``:func:`name``` (and ``:class:``, ``:meth:``, ``:attr:``, ``:data:``, ``:mod:``,
  ``:obj:``, ``:exc:``) becomes an autorefs link ``[`name`][identifier]`` to the object's API
  entry when the name resolves to a public adamjax object, and a code span ``` `name` ```
  otherwise (private helpers, other libraries); ``~a.b.c`` shows ``c``;
* ``text::`` before a literal block becomes ``text:``;
* a section header ``Example:`` becomes ``Examples:``, the section griffe renders as code.

Math is left as ``\( \)`` and ``\[ \]`` for ``pymdownx.arithmatex``; ``docs/mathml_hook.py``
turns it into MathML when the site is built.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import griffe

MATH_DIRECTIVE = ".. math::"
ROLES = ("func", "class", "meth", "attr", "data", "mod", "obj", "exc")
_ROLE = re.compile(r":(" + "|".join(ROLES) + r"):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_ENVIRONMENT = re.compile(r"\\begin\{(\w+\*?)\}(?:(?!\\begin\{).)*?\\end\{\1\}", re.DOTALL)

Resolver = Callable[[str, str], str | None]
MEMBER_ROLES = ("meth", "attr")


def _no_links(kind: str, target: str) -> str | None:
    del kind, target
    return None


def _needs_alignment(tex: str) -> bool:
    """Whether ``tex`` has ``&`` or ``\\`` at top level, outside every environment."""
    previous = None
    while previous != tex:
        previous, tex = tex, _ENVIRONMENT.sub("", tex)
    return "&" in tex or "\\\\" in tex


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _math_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The display block opened by ``.. math::`` at ``lines[start]``, and the line after it."""
    indent = _indent(lines[start])
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    same_line = lines[start].strip()[len(MATH_DIRECTIVE) :].strip()
    body = [same_line, textwrap.dedent("\n".join(lines[start + 1 : end]))]
    tex = "\n".join(line for part in body for line in part.splitlines() if line.strip())
    if _needs_alignment(tex):
        tex = "\\begin{aligned}\n" + tex + "\n\\end{aligned}"
    pad = " " * indent
    block = ["", pad + "\\["] + [pad + line for line in tex.splitlines()] + [pad + "\\]", ""]
    return block, end


def _role(match: re.Match[str], resolve: Resolver) -> str:
    kind, short, target = match.group(1), match.group(2) == "~", match.group(3)
    shown = target.rsplit(".", 1)[-1] if short else target
    identifier = resolve(kind, target)
    return f"[`{shown}`][{identifier}]" if identifier else f"`{shown}`"


def to_markdown(text: str, resolve: Resolver = _no_links) -> str:
    """Rewrite the reST math, roles and literal-block markers of ``text`` as Markdown.

    Args:
        text: a docstring.
        resolve: maps a role's kind and target (``"func", "name"`` for ``:func:`~name```) to
            the autorefs identifier of the target's API entry, or to ``None`` for a plain code
            span.

    Returns:
        The docstring in Markdown, with math in ``\\( \\)`` and ``\\[ \\]`` delimiters.
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith(MATH_DIRECTIVE):
            block, i = _math_block(lines, i)
            out.extend(block)
            continue
        line = lines[i]
        if line.strip() == "Example:":
            line = line.replace("Example:", "Examples:")
        elif line.rstrip().endswith("::") and not line.lstrip().startswith(">>>"):
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    result = "\n".join(out)
    result = _MATH_ROLE.sub(lambda m: "\\(" + m.group(1) + "\\)", result)
    return _ROLE.sub(lambda m: _role(m, resolve), result)


def public_paths(package: griffe.Module) -> dict[str, str]:
    """``defining path -> public path`` for every public object of ``package``.

    The package's own names come first: an object re-exported both by the package and by a
    public submodule is documented under the package. Public paths map to themselves.
    """
    found: dict[str, str] = {}
    modules = [package]
    while modules:
        module = modules.pop(0)
        for name, member in module.members.items():
            if not member.is_public:
                continue
            public = f"{module.path}.{name}"
            target = member.target_path if isinstance(member, griffe.Alias) else member.path
            found.setdefault(target, public)
            found.setdefault(public, public)
            if isinstance(member, griffe.Module):
                modules.append(member)
    return found


def public_identifier(path: str, public: dict[str, str]) -> str | None:
    """The public path of ``path`` or of the object it is a member of, else ``None``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in public:
            return ".".join([public[head], *parts[cut:]])
    return None


def scope_resolver(obj: griffe.Object, public: dict[str, str]) -> Resolver:
    """Resolve role targets in ``obj``'s scope, then to public paths.

    ``:meth:`` and ``:attr:`` targets are looked up from ``obj`` outwards (a class's own
    members first); the other roles from the module that defines ``obj``, so that
    ``:func:`trace``` in the docstring of a class with a field ``trace`` names the function.
    """

    def resolve(kind: str, target: str) -> str | None:
        if target in public:
            return public[target]
        scope = obj if kind in MEMBER_ROLES else obj.module
        first, _, rest = target.partition(".")
        try:
            path = scope.resolve(first)
        except griffe.NameResolutionError:
            return None
        return public_identifier(f"{path}.{rest}" if rest else path, public)

    return resolve


def defined_objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined in it, depth first (imported names excluded)."""
    yield obj
    for member in obj.members.values():
        if not isinstance(member, griffe.Alias):
            yield from defined_objects(member)


def convert_package(package: griffe.Module) -> None:
    """Convert, in place, the docstring of every object defined in ``package``."""
    public = public_paths(package)
    for obj in defined_objects(package):
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value, scope_resolver(obj, public))


class RestructuredTextMarkup(griffe.Extension):
    """Convert every docstring of a package once griffe has loaded all of it."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        del loader, kwargs
        convert_package(pkg)
