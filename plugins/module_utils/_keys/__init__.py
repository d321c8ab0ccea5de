# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPsec keys in Cilium's keys-file format, one concern a file; import each name from its file.

* ``model``: ``Key``, ``KeysFile``, ``KeysFileError``, the limits and spellings of a keys file,
  the rules every key obeys whatever its source (key ID, ICV), and what a message may quote.
* ``catalogue``: the supported algorithms, their key lengths, and how an unknown name is told.
* ``secrets``: keys written back as text, masked renderings, fingerprints, descriptions, and
  every spelling of a key that output must mask.
* ``rotation``: which key may follow which, the next key ID, fresh random keys.
* ``grammar``: a key line and a whole keys file read into keys, and the one validation of a
  key's fields that the option's list of dicts goes through too.
* ``sources``: where keys come from: a keys file on disk, option ``content``, option ``keys``.

Each file imports only files listed above it (the grammar checks consecutive lines with the
rotation rule: a keys file lists its keys in rotation order).
"""
