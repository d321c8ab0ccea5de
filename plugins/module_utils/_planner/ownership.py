# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which XFRM entries belong to this collection, and the numbers that make them recognisable.

The kernel has no owner tag on SAs or policies, so ownership is a signature the collection
puts on everything it installs and never changes (see docs/docsite/rst/how_it_works.rst,
section Ownership):

* **An SA is owned** ⇔ its reqid is the collection's reqid ``R`` (option ``reqid``, default
  ``DEFAULT_REQID``).
* **A policy is owned** ⇔ it is a main-type policy in direction in, out or fwd, and either
  one of its templates has reqid ``R``, or it has no template and its priority lies in the
  collection's band ``[PRIORITY_BAND_LOW, PRIORITY_BAND_HIGH]`` (bypass policies carry no
  template, so the band is their only signature).
* Everything else is **foreign**: it is never changed, replaced or deleted, and a desired
  object whose kernel identity is taken by a foreign entry is an error, not an overwrite.
  Per-socket policies (direction 3-5, set with setsockopt by IKE daemons) are always
  foreign; so are sub-type policies (``ptype sub``, used by MIPv6), which this collection
  never installs.

Choice of ``DEFAULT_REQID`` = 0x6E736563 (ASCII "nsec"): reqids are per-netns 32-bit labels
that IKE daemons allocate themselves. strongSwan hands them out sequentially from 1,
libreswan from 16384 upward in steps of 8, Cilium uses 1 (and 2 for its encrypted overlay).
A value near 1.85e9 is out of reach of every sequential allocator in practice, and reads as
what it is in ``ip xfrm`` output (``reqid 1853056355 (0x6e736563)``). Reqid 0 is refused: in
a template it means "any SA", which is neither a signature nor safe.

Choice of the priority band 0x6E00-0x6FFF (28160-28671): in the SPD a lower number takes
precedence. strongSwan's policies sit in the hundreds of thousands (its base priorities are
around 100000-400000 minus selector specificity), so ours take precedence over an IKE
daemon's policies for the same traffic. Cilium's policies use 0, 100 and 2975 and take
precedence over ours; ``ip xfrm`` defaults to 0. No known tool allocates in this band.
Within it:

* ``PRIORITY_BYPASS`` (0x6E00 = 28160) for management bypass policies: numerically lower than
  every encrypt policy, so SSH keeps flowing whatever the encrypt policies say.
* ``PRIORITY_ENCRYPT`` (0x6F00 = 28416) for OUT, IN and FWD policies with a template.
"""

from __future__ import annotations

from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    DIR_FWD, DIR_IN, DIR_OUT, POLICY_TYPE_MAIN, XfrmPolicy, XfrmState,
)

DEFAULT_REQID = 0x6E736563  # ASCII "nsec"
REQID_MIN = 1
REQID_MAX = 0xFFFFFFFF

PRIORITY_BAND_LOW = 0x6E00
PRIORITY_BAND_HIGH = 0x6FFF
PRIORITY_BYPASS = 0x6E00
PRIORITY_ENCRYPT = 0x6F00

# The directions a DELPOLICY can address; 3..5 are per-socket policies.
MANAGED_DIRECTIONS = (DIR_IN, DIR_OUT, DIR_FWD)


class PlanError(ValueError):
    """The desired set cannot be built or reached safely.

    Messages name nodes, addresses and objects in their masked rendering; they never hold
    key material.
    """


def in_priority_band(priority: int) -> bool:
    return PRIORITY_BAND_LOW <= priority <= PRIORITY_BAND_HIGH


def is_owned_state(state: XfrmState, reqid: int = DEFAULT_REQID) -> bool:
    """True when the SA carries this collection's reqid."""
    return state.reqid == reqid


def is_owned_policy(policy: XfrmPolicy, reqid: int = DEFAULT_REQID) -> bool:
    """True when the policy carries this collection's signature (see the module docstring)."""
    if policy.dir not in MANAGED_DIRECTIONS or policy.ptype != POLICY_TYPE_MAIN:
        return False
    if policy.templates:
        return any(template.reqid == reqid for template in policy.templates)
    return in_priority_band(policy.priority)


def is_owned(obj: object, reqid: int = DEFAULT_REQID) -> bool:
    if isinstance(obj, XfrmState):
        return is_owned_state(obj, reqid)
    if isinstance(obj, XfrmPolicy):
        return is_owned_policy(obj, reqid)
    raise TypeError("not an XFRM object: %s" % type(obj).__name__)


def check_reqid(reqid: object) -> int:
    """The reqid option, validated (``PlanError`` otherwise)."""
    if isinstance(reqid, bool) or not isinstance(reqid, int) or not REQID_MIN <= reqid <= REQID_MAX:
        raise PlanError("reqid must be an integer from %d to %d (0 means 'any SA' in a template "
                        "and cannot mark ownership)" % (REQID_MIN, REQID_MAX))
    return reqid
