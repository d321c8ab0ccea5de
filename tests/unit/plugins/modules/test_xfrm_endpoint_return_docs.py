# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""xfrm_endpoint's RETURN documents every count the module returns in sas and policies."""

from __future__ import annotations

import yaml

from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import Plan
from ansible_collections.netsec.ipsec.plugins.modules import xfrm_endpoint


def test_counts_documented_as_returned():
    documented = yaml.safe_load(xfrm_endpoint.RETURN)
    returned = Plan().counts()
    assert set(returned) == {"sas", "policies"}
    for kind, counts in returned.items():
        assert set(documented[kind]["contains"]) == set(counts), kind
        assert set(documented[kind]["sample"]) == set(counts), kind
