"""The preference page's boxes: one inclusion tag per topic draws all of its boxes, so that the
template of a box is read once per topic rather than once per box (a page shows dozens)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("preferences/_boxes.html")
def boxes(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """A topic's boxes, each a dict of ``presenters.cell_context``."""
    return {"cells": cells}
