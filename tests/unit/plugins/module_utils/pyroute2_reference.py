# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyroute2's message classes on the collection's wire layouts: the tests' independent
reference encoder and decoder (not a test file; the collection itself never imports
pyroute2: targets need only Python's standard library).

The classes are built from each ``xfrm_structs.Layout``'s ``flat_fields`` on pyroute2's
generic netlink machinery, which packs field by field; the codec's bytes are compared with
theirs, and they decode anything (error echoes included) for diagnostics.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S

# Attribute ids as pyroute2 names them (prefix XFRMA_), with the pyroute2 class that
# decodes each one; kept here so the names exist once even without pyroute2.
XFRMA_NAMES: Tuple[Tuple[int, str, str], ...] = (
    (S.XFRMA_ALG_AUTH, "XFRMA_ALG_AUTH", "algo_auth_plain"),
    (S.XFRMA_ALG_CRYPT, "XFRMA_ALG_CRYPT", "algo"),
    (S.XFRMA_ALG_COMP, "XFRMA_ALG_COMP", "algo"),
    (S.XFRMA_ENCAP, "XFRMA_ENCAP", "cdata"),
    (S.XFRMA_TMPL, "XFRMA_TMPL", "user_tmpl_list"),
    (S.XFRMA_SA, "XFRMA_SA", "cdata"),
    (S.XFRMA_POLICY, "XFRMA_POLICY", "cdata"),
    (S.XFRMA_SEC_CTX, "XFRMA_SEC_CTX", "cdata"),
    (S.XFRMA_LTIME_VAL, "XFRMA_LTIME_VAL", "lifetime_cur"),
    (S.XFRMA_REPLAY_VAL, "XFRMA_REPLAY_VAL", "replay_state"),
    (S.XFRMA_REPLAY_THRESH, "XFRMA_REPLAY_THRESH", "uint32"),
    (S.XFRMA_ETIMER_THRESH, "XFRMA_ETIMER_THRESH", "uint32"),
    (S.XFRMA_SRCADDR, "XFRMA_SRCADDR", "cdata"),
    (S.XFRMA_COADDR, "XFRMA_COADDR", "cdata"),
    (S.XFRMA_LASTUSED, "XFRMA_LASTUSED", "uint64"),
    (S.XFRMA_POLICY_TYPE, "XFRMA_POLICY_TYPE", "userpolicy_type"),
    (S.XFRMA_MIGRATE, "XFRMA_MIGRATE", "cdata"),
    (S.XFRMA_ALG_AEAD, "XFRMA_ALG_AEAD", "algo_aead"),
    (S.XFRMA_KMADDRESS, "XFRMA_KMADDRESS", "cdata"),
    (S.XFRMA_ALG_AUTH_TRUNC, "XFRMA_ALG_AUTH_TRUNC", "algo_auth"),
    (S.XFRMA_MARK, "XFRMA_MARK", "mark"),
    (S.XFRMA_TFCPAD, "XFRMA_TFCPAD", "uint32"),
    (S.XFRMA_REPLAY_ESN_VAL, "XFRMA_REPLAY_ESN_VAL", "replay_state_esn"),
    (S.XFRMA_SA_EXTRA_FLAGS, "XFRMA_SA_EXTRA_FLAGS", "uint32"),
    (S.XFRMA_PROTO, "XFRMA_PROTO", "uint8"),
    (S.XFRMA_ADDRESS_FILTER, "XFRMA_ADDRESS_FILTER", "cdata"),
    (S.XFRMA_PAD, "XFRMA_PAD", "none"),
    (S.XFRMA_OFFLOAD_DEV, "XFRMA_OFFLOAD_DEV", "cdata"),
    (S.XFRMA_SET_MARK, "XFRMA_SET_MARK", "uint32"),
    (S.XFRMA_SET_MARK_MASK, "XFRMA_SET_MARK_MASK", "uint32"),
    (S.XFRMA_IF_ID, "XFRMA_IF_ID", "uint32"),
    (S.XFRMA_MTIMER_THRESH, "XFRMA_MTIMER_THRESH", "uint32"),
    (S.XFRMA_SA_DIR, "XFRMA_SA_DIR", "uint8"),
    (S.XFRMA_NAT_KEEPALIVE_INTERVAL, "XFRMA_NAT_KEEPALIVE_INTERVAL", "uint32"),
    (S.XFRMA_SA_PCPU, "XFRMA_SA_PCPU", "uint32"),
)


# ---------------------------------------------------------------------------------------
# pyroute2 classes: the same layouts on pyroute2's generic netlink machinery. The fast
# codec does not use them on the hot path; tests prove both produce identical bytes, and
# they decode anything (including error echoes) for diagnostics.

# Names built by _pyroute2_classes, resolved on first access by the module __getattr__.
PYROUTE2_CLASS_NAMES = frozenset((
    "MarshalXfrm",
    "xfrm_dump_msg",
    "xfrm_msg",
    "xfrm_usersa_id_msg",
    "xfrm_usersa_info_msg",
    "xfrm_userpolicy_id_msg",
    "xfrm_userpolicy_info_msg",
    "xfrm_userspi_info_msg",
))


def _pyroute2_classes() -> Dict[str, Any]:
    """The pyroute2 message classes (imports pyroute2; ImportError when it cannot)."""
    from pyroute2.netlink import nla, nla_base_string, nlmsg, nlmsg_base
    from pyroute2.netlink import nlmsg_decoder_generic, nlmsg_encoder_generic
    from pyroute2.netlink.marshal import Marshal

    class _key_tail:
        """Field type for the key bytes that end xfrm_algo*; its length comes from
        alg_key_len, which the generic field decoder cannot see, so the nla decodes it."""

        @staticmethod
        def encode_into(data: bytearray, offset: int, value: bytes) -> int:
            data.extend(value or b"")
            return offset + len(value or b"")

        @staticmethod
        def decode_from(data: bytearray, offset: int) -> Tuple[bytes, int]:
            return b"", offset

    def _algo_class(layout: S.Layout) -> type:
        """An nla for xfrm_algo*: declared fixed part plus a key tail of any length."""

        class _algo(nla):
            fields = layout.flat_fields + (("alg_key", _key_tail),)
            defaults = {"alg_name": b"", "alg_key": b""}
            fixed_size = layout.size

            def decode(self) -> None:
                nla.decode(self)
                start = self.offset + S.NLATTR.size + self.fixed_size
                key_len = (self["alg_key_len"] + 7) // 8
                self["alg_key"] = bytes(self.data[start:start + key_len])
                self["alg_name"] = self["alg_name"].split(b"\0", 1)[0]

        _algo.__name__ = layout.c_name
        return _algo

    class _headerless_struct(nlmsg_base, nlmsg_encoder_generic, nlmsg_decoder_generic):
        """A bare struct (no netlink header), for arrays packed back to back."""

        header = None

    class _user_tmpl(_headerless_struct):
        fields = S.USER_TMPL.flat_fields
        defaults = {"id_daddr": b"", "saddr": b""}

    class xfrm_msg(nlmsg):
        """Base of every XFRM message class: the XFRMA_* attribute table."""

        prefix = "XFRMA_"
        nla_map = tuple((attr_id, name, kind) for attr_id, name, kind in XFRMA_NAMES)

        algo = _algo_class(S.ALGO)
        algo_auth = _algo_class(S.ALGO_AUTH)
        algo_aead = _algo_class(S.ALGO_AEAD)

        # XFRMA_ALG_AUTH carries a plain xfrm_algo (the kernel's default truncation)
        algo_auth_plain = _algo_class(S.ALGO)

        class mark(nla):
            fields = S.MARK.flat_fields

        class userpolicy_type(nla):
            fields = S.USERPOLICY_TYPE.flat_fields

        class lifetime_cur(nla):
            fields = S.LIFETIME_CUR.flat_fields

        class replay_state(nla):
            fields = S.REPLAY_STATE.flat_fields

        class replay_state_esn(nla):
            fields = S.REPLAY_STATE_ESN.flat_fields

        class user_tmpl_list(nla_base_string):
            """XFRMA_TMPL: N xfrm_user_tmpl back to back, no per-item header."""

            def encode(self) -> None:
                packed = bytearray()
                for item in self.value:
                    tmpl = _user_tmpl()
                    tmpl.setvalue(item)
                    tmpl.encode()
                    packed += tmpl.data
                self["value"] = bytes(packed)
                nla_base_string.encode(self)

            def decode(self) -> None:
                nla_base_string.decode(self)
                raw = bytearray(self["value"])
                templates: List[Dict[str, Any]] = []
                for offset in range(0, len(raw) - S.USER_TMPL.size + 1, S.USER_TMPL.size):
                    tmpl = _user_tmpl(data=raw, offset=offset)
                    tmpl.decode()
                    templates.append(
                        {k: v for k, v in tmpl.items() if not k.startswith("__") and k not in ("attrs", "value")}
                    )
                self.value = templates

    class xfrm_usersa_info_msg(xfrm_msg):
        fields = S.USERSA_INFO.flat_fields
        defaults = {"sel_daddr": b"", "sel_saddr": b"", "id_daddr": b"", "saddr": b""}

    class xfrm_usersa_id_msg(xfrm_msg):
        fields = S.USERSA_ID.flat_fields
        defaults = {"daddr": b""}

    class xfrm_userspi_info_msg(xfrm_msg):
        fields = S.USERSPI_INFO.flat_fields
        defaults = {"info_sel_daddr": b"", "info_sel_saddr": b"", "info_id_daddr": b"", "info_saddr": b""}

    class xfrm_userpolicy_info_msg(xfrm_msg):
        fields = S.USERPOLICY_INFO.flat_fields
        defaults = {"sel_daddr": b"", "sel_saddr": b""}

    class xfrm_userpolicy_id_msg(xfrm_msg):
        fields = S.USERPOLICY_ID.flat_fields
        defaults = {"sel_daddr": b"", "sel_saddr": b""}

    class xfrm_dump_msg(xfrm_msg):
        """GETSA/GETPOLICY dump request: attributes only, the kernel reads no fixed header."""

        fields = ()

    class MarshalXfrm(Marshal):
        """Decodes XFRM replies (and requests echoed in error replies) with the classes above."""

        msg_map = {
            S.XFRM_MSG_NEWSA: xfrm_usersa_info_msg,
            S.XFRM_MSG_UPDSA: xfrm_usersa_info_msg,
            S.XFRM_MSG_DELSA: xfrm_usersa_id_msg,
            S.XFRM_MSG_GETSA: xfrm_usersa_id_msg,
            S.XFRM_MSG_ALLOCSPI: xfrm_userspi_info_msg,
            S.XFRM_MSG_NEWPOLICY: xfrm_userpolicy_info_msg,
            S.XFRM_MSG_UPDPOLICY: xfrm_userpolicy_info_msg,
            S.XFRM_MSG_DELPOLICY: xfrm_userpolicy_id_msg,
            S.XFRM_MSG_GETPOLICY: xfrm_userpolicy_id_msg,
        }

    return {name: value for name, value in locals().items() if name in PYROUTE2_CLASS_NAMES}


globals().update(_pyroute2_classes())
