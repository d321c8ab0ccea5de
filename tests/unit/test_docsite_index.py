# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every guide under docs/docsite/rst/ is listed in docs/docsite/extra-docs.yml.

antsibull-docs (make lint) lints every RST file there and every entry of the index, but a
guide that no section lists is left out of the docsite without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import yaml

import ansible_collections.netsec.ipsec as collection_package

DOCSITE = Path(collection_package.__path__[0]) / "docs" / "docsite"


def listed_guides(index: Dict[str, Any]) -> List[str]:
    guides = []
    for section in index.get("sections") or []:
        for entry in section.get("toctree") or []:
            guides.append(entry["ref"] if isinstance(entry, dict) else entry)
    return guides


def guide_files(rst_dir: Path) -> List[str]:
    return sorted(str(path.relative_to(rst_dir).with_suffix("")) for path in rst_dir.rglob("*.rst"))


def test_every_guide_is_listed():
    index = yaml.safe_load((DOCSITE / "extra-docs.yml").read_text(encoding="utf-8"))
    assert sorted(listed_guides(index)) == guide_files(DOCSITE / "rst")


def test_an_unlisted_guide_is_found(tmp_path):
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "rotation.rst").write_text("Rotation\n========\n", encoding="utf-8")
    (tmp_path / "install.rst").write_text("Install\n=======\n", encoding="utf-8")
    index = {"sections": [{"title": "Guides", "toctree": ["install"]}]}
    assert listed_guides(index) == ["install"]
    assert guide_files(tmp_path) == ["install", "ops/rotation"]
