# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The markup of every plugin's documentation, as ansible-doc and antsibull-docs parse it.

C() takes no escapes and ends at the first ``)``, so ``C(rfc4106(gcm(aes)))`` renders as code
``rfc4106(gcm(aes`` followed by ``))``; V(), O() and RV() end there too unless the ``)`` is
written ``\\)``. Such a cut shows as code or a value with unbalanced parentheses.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml
from antsibull_docs_parser import dom
from antsibull_docs_parser.parser import Context, parse

import ansible_collections.netsec.ipsec.plugins as plugins_package

PLUGINS = Path(plugins_package.__path__[0])
# Documentation keys whose values are markup (the rest are names, types, samples).
MARKUP_KEYS = ("short_description", "description", "notes", "details")


def _python_docs(path: Path) -> Iterator[Tuple[str, str]]:
    """(name, text) of every string assigned in the file, at module level or in a class
    (modules and lookups: DOCUMENTATION, EXAMPLES, RETURN; doc fragments: one per fragment)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bodies = [tree.body] + [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
    for body in bodies:
        for node in body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                yield node.targets[0].id, node.value.value


def documents() -> List[Tuple[str, Any]]:
    """(where, parsed YAML) of every documentation block of the collection's plugins."""
    found: List[Tuple[str, Any]] = []
    for path in sorted(PLUGINS.glob("*/*.py")):
        if path.parent.name == "module_utils" or path.name == "__init__.py":
            continue
        for name, text in _python_docs(path):
            if name in ("DOCUMENTATION", "RETURN") or path.parent.name == "doc_fragments":
                found.append(("%s:%s" % (path.relative_to(PLUGINS), name), yaml.safe_load(text)))
    for path in sorted(PLUGINS.glob("*/*.yml")):
        sidecar: Dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name in ("DOCUMENTATION", "RETURN"):
            found.append(("%s:%s" % (path.relative_to(PLUGINS), name), sidecar[name]))
    return found


def markup_texts(node: Any, where: str) -> Iterator[Tuple[str, str]]:
    """(where, text) of every markup string under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            inner = "%s.%s" % (where, key)
            if key in MARKUP_KEYS and isinstance(value, str):
                yield inner, value
            elif key in MARKUP_KEYS and isinstance(value, list) and all(isinstance(item, str) for item in value):
                for index, item in enumerate(value):
                    yield "%s[%d]" % (inner, index), item
            else:
                yield from markup_texts(value, inner)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from markup_texts(item, "%s[%d]" % (where, index))


def literal_parts(text: str) -> List[str]:
    """What the reader sees as code or as a value in ``text``; raises on markup errors."""
    found: List[str] = []
    for paragraph in parse(text, Context(), errors="exception", strict=True):
        for part in paragraph:
            if isinstance(part, dom.CodePart):
                found.append(part.text)
            elif isinstance(part, dom.OptionValuePart):
                found.append(part.value)
            elif isinstance(part, (dom.OptionNamePart, dom.ReturnValuePart)):
                found.append(part.name + ("=" + part.value if part.value is not None else ""))
    return found


def balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


TEXTS = [item for where, doc in documents() for item in markup_texts(doc, where)]


def test_documents_are_found():
    """Every plugin type the collection has, and every filter, is checked."""
    wheres = {where.split(":")[0] for where, _text in TEXTS}
    assert {where.split("/")[0] for where in wheres} == {"doc_fragments", "filter", "lookup", "modules"}
    assert len([where for where in wheres if where.startswith("filter/")]) == len(list(PLUGINS.glob("filter/*.yml")))


@pytest.mark.parametrize("where, text", TEXTS, ids=[where for where, _text in TEXTS])
def test_code_and_values_keep_their_parentheses(where, text):
    cut = [literal for literal in literal_parts(text) if not balanced(literal)]
    assert cut == [], "%s: markup ends early (write V(...) with \\) for a ')' inside): %s" % (where, text)


@pytest.mark.parametrize("text, expected", [
    ("V(rfc4106(gcm(aes\\)\\))", ["rfc4106(gcm(aes))"]),
    ("C(rfc4106(gcm(aes)))", ["rfc4106(gcm(aes"]),
    ("O(mode=0600) and RV(spi)", ["mode=0600", "spi"]),
])
def test_literal_parts_as_antsibull_parses(text, expected):
    assert literal_parts(text) == expected
    assert all(balanced(literal) for literal in literal_parts(text)) == (expected[0] != "rfc4106(gcm(aes")
