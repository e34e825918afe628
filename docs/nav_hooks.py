"""MkDocs hook: top-level guide pages missing from the nav are listed under "Guides".

Guides (``docs/*.md`` beside ``index.md``) are written alongside the features they describe.
Listing one in ``mkdocs.yml`` by hand is still the way to place it; a guide that is not listed
yet is appended to the "Guides" section, titled by its first ``# `` heading, instead of being
left out of the site (or failing the strict build as an omitted file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SECTION = "Guides"


def _listed(nav: Any) -> set[str]:
    """Every page path that appears anywhere in ``nav``."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, list):
        return set().union(*(_listed(item) for item in nav)) if nav else set()
    if isinstance(nav, dict):
        return set().union(*(_listed(value) for value in nav.values())) if nav else set()
    return set()


def _title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("-", " ").capitalize()


def on_config(config: Any, **kwargs: Any) -> Any:
    """Append unlisted top-level pages to the nav's "Guides" section (created if absent)."""
    del kwargs
    nav = config["nav"]
    if not nav:
        return config
    listed = _listed(nav)
    docs = Path(config["docs_dir"])
    missing = [page for page in sorted(docs.glob("*.md")) if page.name not in listed]
    if not missing:
        return config
    section = next((item for item in nav if isinstance(item, dict) and SECTION in item), None)
    if section is None:
        section = {SECTION: []}
        nav.append(section)
    section[SECTION].extend({_title(page): page.name} for page in missing)
    return config
