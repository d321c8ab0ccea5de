# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IP forwarding sysctls: plan, read and write the live values and the persisted drop-in file.

This is the logic behind the ``sysctl_ipv6_forward`` module, kept free of Ansible so that
tests can run it against a directory that stands in for ``/proc/sys``. Every function takes
the ``/proc/sys`` root and the drop-in file path as arguments.

The module manages only its own keys, ``net.<family>.conf.<interface>.forwarding`` and,
where it enables IPv6 forwarding, ``net.ipv6.conf.<interface>.accept_ra`` (see
``plan_accept_ra``):
- live values are written one by one under ``/proc/sys`` (never ``sysctl -p`` of a file,
  which would re-apply whatever else that file holds);
- the drop-in file belongs to this module: it holds exactly the keys of the last run, one
  ``key = value`` line each, under a header that marks it as managed. A file without that
  header is never overwritten, so pointing the module at a shared file fails instead of
  destroying the file.

Planning reads everything and validates everything before anything is written, so a run
that fails on a bad interface or a read-only ``/proc/sys`` changes nothing.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._files import destination_problem

PROC_SYS_ROOT = "/proc/sys"
DEFAULT_SYSCTL_FILE = "/etc/sysctl.d/60-netsec-ipsec.conf"

FAMILY_IPV6 = "ipv6"
FAMILY_IPV4 = "ipv4"

# The pseudo-interfaces under net/<family>/conf: "all" also rewrites every interface and
# "default" when written, "default" is what interfaces created later start with.
INTERFACE_ALL = "all"
INTERFACE_DEFAULT = "default"

SETTING_FORWARDING = "forwarding"
SETTING_ACCEPT_RA = "accept_ra"

VALUE_ENABLED = "1"
VALUE_DISABLED = "0"

# accept_ra: 0 ignores router advertisements, 1 accepts them only while the interface does not
# forward (the kernel's default), 2 accepts them while it forwards too. A forwarding interface
# with 1 ignores them, so a host configured by SLAAC loses its default route (deleted when
# forwarding is switched on, never renewed). With forwarding off, 2 behaves as 1
# (ipv6_accept_ra() in the kernel).
ACCEPT_RA_UNLESS_FORWARDING = "1"
ACCEPT_RA_ALSO_FORWARDING = "2"

# Where systemd-sysctl and `sysctl --system` look for drop-ins, highest priority first: a file
# name found in several of them is read only from the first; all names then apply in
# lexical order, so a later name overrides an earlier one. procps reads /etc/sysctl.conf last.
SYSCTL_D_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SYSCTL_CONF = "/etc/sysctl.conf"
SYSCTL_D_SUFFIX = ".conf"
# Older names for the same kernel setting, as they may appear in other sysctl.d files.
KEY_ALIASES = {"net.ipv4.ip_forward": "net.ipv4.conf.all.forwarding"}

FILE_MODE = "0644"  # the drop-in's mode unless the task gives one
DIRECTORY_MODE = 0o755

# The first line of every file this module writes; a file that does not start with it is
# not ours and is never overwritten.
MANAGED_MARKER = "# Managed by netsec.ipsec"
FILE_HEADER = (
    MANAGED_MARKER + " (module netsec.ipsec.sysctl_ipv6_forward); do not edit.\n"
    "# Every run rewrites this file to hold exactly the keys of that run.\n"
    "# Files that sort later in sysctl.d order can override these values.\n"
)

PROC_SYS_READ_ONLY_HINT = " (containers usually mount /proc/sys read-only; set the value on the host or in the container's runtime settings)"

# Linux's own limit (IFNAMSIZ 16, including the terminating NUL).
INTERFACE_NAME_MAX_BYTES = 15
# Characters dev_valid_name() in the kernel rejects besides whitespace.
INTERFACE_NAME_FORBIDDEN = "/:"


class SysctlError(Exception):
    """A problem that stops the run before (or, rarely, while) anything is written.

    ``problems`` holds one human-readable line per problem found; the message joins them.
    """

    def __init__(self, problems: Sequence[str], written: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        # Keys already written when the error happened (only apply_live can have written any).
        self.written = list(written)
        super().__init__("; ".join(self.problems))


@dataclasses.dataclass(frozen=True)
class ConfKey:
    """One per-interface sysctl: ``net.<family>.conf.<interface>.<setting>``."""

    family: str
    interface: str
    setting: str

    @property
    def name(self) -> str:
        """The sysctl name, with dots in the interface name written as ``/`` (sysctl's rule)."""
        return "net.%s.conf.%s.%s" % (self.family, self.interface.replace(".", "/"), self.setting)

    def path(self, proc_root: str) -> str:
        return os.path.join(self.interface_dir(proc_root), self.setting)

    def interface_dir(self, proc_root: str) -> str:
        return os.path.join(proc_root, "net", self.family, "conf", self.interface)


@dataclasses.dataclass(frozen=True)
class ValueChange:
    before: Optional[str]
    after: Optional[str]

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclasses.dataclass(frozen=True)
class FileChange:
    path: str
    before: Optional[str]  # None: the file does not exist
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run will do, computed from the live values and the file as they are now."""

    keys: Tuple[ConfKey, ...]  # the forwarding keys
    value: str  # their value
    live: Dict[str, ValueChange]  # the forwarding keys' live values
    # The accept_ra keys this run manages (all set to ACCEPT_RA_ALSO_FORWARDING) and their live values.
    accept_ra_keys: Tuple[ConfKey, ...]
    accept_ra: Dict[str, ValueChange]
    file: Optional[FileChange]  # None when the values are not persisted
    persisted: Optional[Dict[str, ValueChange]]
    # Interfaces (or all/default) whose IPv6 is switched off by disable_ipv6 = 1.
    ipv6_disabled_on: Tuple[str, ...]

    @property
    def assignments(self) -> Tuple[Tuple[ConfKey, str], ...]:
        """Every key with its value, in the order they are written live and in the file.

        accept_ra comes before forwarding: writing 1 to a forwarding key (other than
        ``default``) makes the kernel delete, in the whole namespace, the default routes
        learned from router advertisements on every interface whose accept_ra is not 2
        (rt6_purge_dflt_routers). Written the other way round, the routes this module means
        to keep would be gone until the next advertisement. The file keeps the same order,
        for ``sysctl --system`` run on a live host.
        """
        return tuple((key, ACCEPT_RA_ALSO_FORWARDING) for key in self.accept_ra_keys) + tuple((key, self.value) for key in self.keys)

    @property
    def changed(self) -> bool:
        return (
            any(change.changed for change in self.live.values())
            or any(change.changed for change in self.accept_ra.values())
            or bool(self.file and self.file.changed)
        )


def interface_name_problem(interface: str) -> Optional[str]:
    """Why ``interface`` cannot be a Linux interface name (the kernel's dev_valid_name), or None."""
    if not interface:
        return "an interface name must not be empty"
    if len(interface.encode("utf-8")) > INTERFACE_NAME_MAX_BYTES:
        return "interface name %r is longer than %d bytes" % (interface, INTERFACE_NAME_MAX_BYTES)
    if interface in (".", ".."):
        return "interface name %r is not allowed" % interface
    if any(char in INTERFACE_NAME_FORBIDDEN or char.isspace() for char in interface):
        return "interface name %r contains '/', ':' or whitespace" % interface
    return None


def forwarding_keys(interfaces: Sequence[str], ipv6: bool, ipv4: bool) -> Tuple[ConfKey, ...]:
    """The keys to manage, in the order they are written and persisted.

    ``all`` comes first and ``default`` second for each family: writing ``all`` rewrites
    every interface, so an interface listed after it keeps the last word, both now and when
    sysctl.d applies the file at boot. IPv6 keys come before IPv4 keys.
    """
    problems = [problem for problem in (interface_name_problem(name) for name in interfaces) if problem]
    if not interfaces:
        problems.append("interfaces must name at least one interface, all or default")
    if not (ipv6 or ipv4):
        problems.append("nothing to manage: at least one of ipv6 and ipv4 must be true")
    if problems:
        raise SysctlError(problems)
    unique = list(dict.fromkeys(interfaces))
    pseudo = [name for name in (INTERFACE_ALL, INTERFACE_DEFAULT) if name in unique]
    ordered = pseudo + [name for name in unique if name not in pseudo]
    families = [family for family, wanted in ((FAMILY_IPV6, ipv6), (FAMILY_IPV4, ipv4)) if wanted]
    return tuple(ConfKey(family, name, SETTING_FORWARDING) for family in families for name in ordered)


def canonical_key(name: str) -> str:
    """A sysctl name in dotted form, whichever form a sysctl.d line used.

    sysctl.d accepts ``net/ipv6/conf/eth0.100/forwarding`` as well as
    ``net.ipv6.conf.eth0/100.forwarding``: when the first separator is ``/``, dots and
    slashes swap roles (sysctl.d(5)).
    """
    name = name.strip()
    first_dot, first_slash = name.find("."), name.find("/")
    if first_slash != -1 and (first_dot == -1 or first_slash < first_dot):
        return name.translate(str.maketrans("./", "/."))
    return name


def parse_sysctl_text(text: str) -> Dict[str, str]:
    """``key = value`` assignments of a sysctl.d file, by canonical key; the last one wins."""
    values: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        # A leading "-" tells systemd-sysctl to ignore a failure to set the key.
        values[canonical_key(key.lstrip("-"))] = value.strip()
    return values


def render_sysctl_file(assignments: Sequence[Tuple[str, str]]) -> str:
    return FILE_HEADER + "".join("%s = %s\n" % (key, value) for key, value in assignments)


def read_owned_file(path: str) -> Optional[str]:
    """The text of the drop-in file, None when there is none; ``SysctlError`` when the file
    is not this module's (it lacks the header), so that it is never removed or rewritten,
    or when the path is a symbolic link or not a regular file (never followed)."""
    problem = destination_problem(path)
    if problem:
        raise SysctlError(["sysctl_file %s: %s" % (path, problem)])
    text = _read_file(path)
    if text is not None and not is_managed_file(text):
        raise SysctlError(["%s does not start with the netsec.ipsec header: it is not this module's file and is "
                           "left alone" % path])
    return text


def is_managed_file(text: str) -> bool:
    """A file we may rewrite: ours (it starts with the marker) or empty."""
    return not text.strip() or text.startswith(MANAGED_MARKER)


def read_value(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def write_value(path: str, value: str) -> None:
    # No O_CREAT: a key that does not exist must fail, never appear as a new file.
    descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(descriptor, (value + "\n").encode("ascii"))
    finally:
        os.close(descriptor)


def not_writable_reason(path: str) -> Optional[str]:
    """Why the current process cannot write ``path`` (an existing file or directory), or None."""
    if os.access(path, os.W_OK):
        return None
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return "read-only file system"
    return "permission denied (run as root, for example with become: true)"


def nearest_existing_directory(path: str) -> str:
    directory = os.path.dirname(path)
    while not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return directory


def _non_directory_ancestor(path: str) -> Optional[str]:
    """The first parent of ``path`` that exists but is not a directory (so cannot be created), or None."""
    directory = os.path.dirname(path)
    while not os.path.isdir(directory):
        if os.path.lexists(directory):
            return directory
        directory = os.path.dirname(directory)
    return None


def _read_file(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _check_file(path: str, problems: List[str]) -> Optional[str]:
    """Validate the drop-in file for a rewrite; return its current text (None when absent)."""
    if not os.path.isabs(path):
        problems.append("sysctl_file %s must be an absolute path" % path)
        return None
    blocker = _non_directory_ancestor(path)
    if blocker:
        problems.append("sysctl_file %s: %s exists and is not a directory" % (path, blocker))
        return None
    problem = destination_problem(path)
    if problem:
        problems.append("sysctl_file %s: %s" % (path, problem))
        return None
    try:
        text = _read_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append("cannot read sysctl_file %s: %s" % (path, exc))
        return None
    if text is not None and not is_managed_file(text):
        problems.append(
            "refusing to overwrite %s: it does not start with %r, so it is not a file this module manages "
            "(it may be shared, like /etc/sysctl.conf); remove it or choose another sysctl_file" % (path, MANAGED_MARKER)
        )
    return text


def plan_forwarding(
    proc_root: str,
    sysctl_file: str,
    interfaces: Sequence[str],
    enabled: bool,
    persist: bool,
    ipv6: bool = True,
    ipv4: bool = False,
    keep_router_advertisements: bool = True,
) -> Plan:
    """Read the current state and decide what changes; raise SysctlError listing every problem.

    Writability is checked only for what will actually be written, so a run that has nothing
    to do succeeds even where ``/proc/sys`` is read-only.
    """
    keys = forwarding_keys(interfaces, ipv6, ipv4)
    value = VALUE_ENABLED if enabled else VALUE_DISABLED
    problems: List[str] = []

    live: Dict[str, ValueChange] = {}
    ipv6_disabled_on: List[str] = []
    for family in sorted({key.family for key in keys}):
        family_dir = os.path.join(proc_root, "net", family)
        if not os.path.isdir(family_dir):
            if family == FAMILY_IPV6:
                problems.append(
                    "IPv6 is disabled in this kernel: %s does not exist (booted with ipv6.disable=1, "
                    "or IPv6 support not loaded); set ipv6: false to manage IPv4 forwarding only" % family_dir
                )
            else:
                problems.append("%s does not exist: this kernel has no %s support" % (family_dir, family))
    if problems:
        raise SysctlError(problems)

    for key in keys:
        path = key.path(proc_root)
        if not os.path.isdir(key.interface_dir(proc_root)):
            problems.append(
                "cannot manage %s: interface %r does not exist in this network namespace (no %s)"
                % (key.name, key.interface, key.interface_dir(proc_root))
            )
            continue
        try:
            before = read_value(path)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append("cannot read %s from %s: %s" % (key.name, path, exc))
            continue
        live[key.name] = ValueChange(before, value)
        if before != value:
            _check_writable(key, path, problems)
        if key.family == FAMILY_IPV6 and _ipv6_disabled(key.interface_dir(proc_root)):
            ipv6_disabled_on.append(key.interface)

    file_before: Optional[str] = None
    file_values: Optional[Dict[str, str]] = None  # None: the file is not read (persist=false)
    if persist:
        file_before = _check_file(sysctl_file, problems)
        file_values = parse_sysctl_text(file_before or "")

    accept_ra_keys: Tuple[ConfKey, ...] = ()
    accept_ra: Dict[str, ValueChange] = {}
    if enabled and keep_router_advertisements:
        accept_ra_keys, accept_ra = plan_accept_ra(proc_root, keys, file_values, problems)

    assignments = [(key, ACCEPT_RA_ALSO_FORWARDING) for key in accept_ra_keys] + [(key, value) for key in keys]
    file_change: Optional[FileChange] = None
    persisted: Optional[Dict[str, ValueChange]] = None
    if file_values is not None:
        persisted = {key.name: ValueChange(file_values.get(key.name), wanted) for key, wanted in assignments}
        file_change = FileChange(sysctl_file, file_before, render_sysctl_file([(key.name, wanted) for key, wanted in assignments]))
        if file_change.changed and os.path.isabs(sysctl_file):
            directory = nearest_existing_directory(sysctl_file)
            reason = not_writable_reason(directory) if os.path.isdir(directory) else None
            if reason:
                problems.append("cannot write sysctl_file %s: directory %s: %s" % (sysctl_file, directory, reason))

    if problems:
        raise SysctlError(problems)
    return Plan(keys, value, live, accept_ra_keys, accept_ra, file_change, persisted, tuple(ipv6_disabled_on))


def _check_writable(key: ConfKey, path: str, problems: List[str]) -> None:
    reason = not_writable_reason(path)
    if reason:
        problems.append("cannot write %s to %s: %s%s" % (key.name, path, reason, PROC_SYS_READ_ONLY_HINT if "read-only" in reason else ""))


def accept_ra_interfaces(proc_root: str, keys: Sequence[ConfKey]) -> List[str]:
    """The interfaces whose IPv6 forwarding ``keys`` switch on, ``default`` first.

    ``all`` stands for ``default`` and every interface that exists now: writing
    ``all.forwarding`` sets theirs, while ``all.accept_ra`` is copied to none of them (the
    kernel reads each interface's own accept_ra), so the interfaces are set one by one.
    """
    named = [key.interface for key in keys if key.family == FAMILY_IPV6]
    if INTERFACE_ALL not in named:
        return named
    conf_dir = os.path.join(proc_root, "net", FAMILY_IPV6, "conf")
    existing = sorted(set(os.listdir(conf_dir)) - {INTERFACE_ALL, INTERFACE_DEFAULT})
    return [INTERFACE_DEFAULT] + existing


def plan_accept_ra(
    proc_root: str, keys: Sequence[ConfKey], file_values: Optional[Dict[str, str]], problems: List[str]
) -> Tuple[Tuple[ConfKey, ...], Dict[str, ValueChange]]:
    """The accept_ra keys to set to 2 where ``keys`` enable IPv6 forwarding, with their live values.

    - accept_ra 1 (RAs accepted until the interface forwards) becomes 2, so that the
      interface keeps accepting RAs, and with them its SLAAC default route, while it forwards;
    - accept_ra 2 stays managed, and in the file, when the file already holds its line (the
      line an earlier run wrote after changing it from 1), and always for ``default``: one
      stable key, whose line is thus written again if the file was lost;
    - any other value (0: RAs off on purpose, or user space handles them, as systemd-networkd
      does) is left alone, live and in the file.

    An interface that already had 2 without a line in the file is not added to it: it either
    got 2 from ``default`` when it was created, which ``default``'s line repeats at boot, or
    from someone else, whose setting it is. This keeps the file from changing each time a
    container's interface comes or goes. Interfaces that do not exist are reported by the
    forwarding keys, or (found under ``all``) have just gone away: they are skipped.
    """
    try:
        interfaces = accept_ra_interfaces(proc_root, keys)
    except OSError as exc:
        problems.append("cannot list the IPv6 interfaces under %s: %s" % (os.path.join(proc_root, "net", FAMILY_IPV6, "conf"), exc))
        return (), {}
    managed: List[ConfKey] = []
    values: Dict[str, ValueChange] = {}
    for interface in interfaces:
        key = ConfKey(FAMILY_IPV6, interface, SETTING_ACCEPT_RA)
        if not os.path.isdir(key.interface_dir(proc_root)):
            continue
        path = key.path(proc_root)
        try:
            before = read_value(path)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append("cannot read %s from %s: %s" % (key.name, path, exc))
            continue
        if before == ACCEPT_RA_UNLESS_FORWARDING:
            _check_writable(key, path, problems)
        elif before != ACCEPT_RA_ALSO_FORWARDING:
            continue
        elif interface != INTERFACE_DEFAULT and (file_values is None or file_values.get(key.name) != ACCEPT_RA_ALSO_FORWARDING):
            continue
        managed.append(key)
        values[key.name] = ValueChange(before, ACCEPT_RA_ALSO_FORWARDING)
    return tuple(managed), values


def _ipv6_disabled(interface_dir: str) -> bool:
    try:
        return read_value(os.path.join(interface_dir, "disable_ipv6")) == VALUE_ENABLED
    except OSError:
        return False


def apply_live(proc_root: str, plan: Plan) -> Dict[str, str]:
    """Write the keys whose value differs, in plan order; return every key's value read back.

    Each key is re-read just before writing: writing ``all`` may already have set it.
    """
    written: List[str] = []
    for key, value in plan.assignments:
        path = key.path(proc_root)
        try:
            if read_value(path) != value:
                write_value(path, value)
                written.append(key.name)
        except OSError as exc:
            raise SysctlError(
                ["cannot write %s to %s: %s (already written in this run: %s)" % (key.name, path, _describe(exc), ", ".join(written) or "nothing")],
                written,
            ) from exc
    after: Dict[str, str] = {}
    for key, _value in plan.assignments:
        path = key.path(proc_root)
        try:
            after[key.name] = read_value(path)
        except OSError as exc:
            raise SysctlError(
                ["cannot read back %s from %s: %s (written in this run: %s)" % (key.name, path, _describe(exc), ", ".join(written) or "nothing")],
                written,
            ) from exc
    return after


def values_not_kept(plan: Plan, after: Dict[str, str]) -> Optional[str]:
    """A message naming every key whose value read back differs from the one written, or None."""
    missing: Dict[str, List[str]] = {}
    for key, value in plan.assignments:
        if after.get(key.name) != value:
            missing.setdefault(value, []).append(key.name)
    if not missing:
        return None
    return "the kernel did not keep " + "; ".join("the value %s for: %s" % (value, ", ".join(names)) for value, names in missing.items())


def _describe(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def boot_overrides(sysctl_file: str, assignments: Dict[str, str], search_dirs: Sequence[str], sysctl_conf: str) -> List[str]:
    """Warnings for other sysctl.d files that would undo ``assignments`` at boot.

    Only meaningful when ``sysctl_file`` is in one of ``search_dirs``. Reports a file that
    masks ours (same name, higher-priority directory) and every later file (or
    ``sysctl_conf``) that sets one of our keys to another value. Unreadable files are skipped:
    this is advice, not validation.
    """
    directory, name = os.path.split(os.path.normpath(sysctl_file))
    search_dirs = [os.path.normpath(path) for path in search_dirs]
    if directory not in search_dirs or not name.endswith(SYSCTL_D_SUFFIX):
        return []
    effective: Dict[str, str] = {}
    for search_dir in search_dirs:
        try:
            names = os.listdir(search_dir)
        except OSError:
            continue
        for entry in names:
            if entry.endswith(SYSCTL_D_SUFFIX):
                effective.setdefault(entry, os.path.join(search_dir, entry))
    warnings: List[str] = []
    winner = effective.get(name)
    if winner and os.path.realpath(winner) != os.path.realpath(sysctl_file):
        warnings.append("%s masks %s at boot: sysctl.d reads a file name only from its highest-priority directory" % (winner, sysctl_file))
    later = [effective[entry] for entry in sorted(effective) if entry > name]
    if os.path.isfile(sysctl_conf):
        later.append(sysctl_conf)
    seen = {os.path.realpath(sysctl_file)}
    for path in later:
        # Debian links /etc/sysctl.d/99-sysctl.conf to /etc/sysctl.conf: report it once.
        if os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        try:
            values = parse_sysctl_text(_read_file(path) or "")
        except (OSError, UnicodeDecodeError):
            continue
        for alias, key in KEY_ALIASES.items():
            if alias in values:
                values.setdefault(key, values[alias])
        for key, value in assignments.items():
            if key in values and values[key] != value:
                warnings.append(
                    "%s sets %s = %s and is applied after %s, so at boot it overrides %s = %s"
                    % (path, key, values[key], sysctl_file, key, value)
                )
    return warnings


def render_live_values(values: Dict[str, Optional[str]]) -> str:
    """The live values as text lines, for a readable diff."""
    return "".join("%s = %s\n" % (key, value) for key, value in values.items())
