"""What a lab node runs when it boots, emulated for ``lab-reboot --keep-disk`` (see lab/README.md).

    python lab_boot.py I        (run by lab-reboot, imported, inside node I: its namespaces and cgroup)

There is no systemd in the lab. This runs the part of a Debian 12 boot that matters to the
collection, from the files the node itself installed (those in the upper layer of its /etc
overlay; the host's files, which every node sees through the overlay, never count):

* ``systemd-sysctl.service``: the ``net.*`` settings of the node's ``/etc/sysctl.d/*.conf``,
  parsed, merged and written as systemd-sysctl 252 does;
* the node's ``Type=oneshot`` services that its boot pulls in (enabled through a symlink in a
  ``*.wants/`` directory of ``/etc/systemd/system``, or wanted by one that is), with their
  conditions, ``ExecStartPre=``/``ExecStart=``/``ExecStartPost=`` lines;
* the lab's own boot steps, placed as the units they stand for: the node's network
  (``systemd-networkd.service``: address and link up) and, with ``--ssh``, its sshd
  (``ssh.service``).

Everything is put in one order that systemd could have chosen (the Before=/After= graph of the
boot transaction, implicit dependencies included); among the orders it allows, the node's units
start as late as possible, so that a missing ordering shows. Anything the emulation does not
model is refused with the file, line and setting, and none of the node's own steps run then.

Exit status: 0 all ran and succeeded; 2 a unit (or systemd-sysctl) failed; 3 the node's boot
files cannot be emulated (nothing of them ran; the node's network still comes up); 1 the lab's
own steps failed.
"""

from __future__ import annotations

import errno
import heapq
import os
import re
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

EXIT_OK, EXIT_LAB_FAILURE, EXIT_UNIT_FAILED, EXIT_NOT_EMULATED = 0, 1, 2, 3

# systemd's compiled-in search path for command names without a slash, which is also the PATH
# it gives services (`systemd-path search-binaries-default` on Debian 12).
SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Lab limit per command: systemd gives Type=oneshot no start timeout, a hung lab-reboot would
# only end with the lab's --timeout.
EXEC_TIMEOUT = 90
WHITESPACE = " \t\n\r"
COMMENTS = "#;"
DEFAULT_TARGET = "graphical.target"         # Debian's default.target
SYSTEM_UNIT_DIR = "systemd/system"          # under /etc
SYSCTL_DIR = "sysctl.d"                     # under /etc

UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?"
                       r"\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)")


class NotEmulated(Exception):
    """A unit or sysctl setting the emulation does not model (or that systemd would reject)."""


# ---------------------------------------------------------------------------------------------
# The boot the lab models. Ordering and wants as in Debian 12's unit files (systemd 252), reduced
# to the units that order anything here; `action` is the lab step that stands for the unit.


@dataclass(frozen=True)
class ModelUnit:
    wants: Tuple[str, ...] = ()             # Wants= and Requires= (the lab's boot never fails them)
    after: Tuple[str, ...] = ()
    before: Tuple[str, ...] = ()
    action: Optional[str] = None            # "sysctl", "network", "sshd"
    default_dependencies: bool = True


def model_units(ssh: bool) -> Dict[str, ModelUnit]:
    """The units of the lab's boot, in the order the lab starts them when it may choose."""
    units = {
        "local-fs.target": ModelUnit(default_dependencies=False),
        "systemd-modules-load.service": ModelUnit(before=("sysinit.target",), default_dependencies=False),
        "systemd-sysctl.service": ModelUnit(after=("systemd-modules-load.service",), before=("sysinit.target",),
                                            action="sysctl", default_dependencies=False),
        "sysinit.target": ModelUnit(wants=("local-fs.target", "systemd-modules-load.service", "systemd-sysctl.service"),
                                    after=("local-fs.target",)),
        "basic.target": ModelUnit(wants=("sysinit.target",), after=("sysinit.target",)),
        # Passive: part of the boot only when a unit in it wants it (systemd.special(7)).
        "network-pre.target": ModelUnit(),
        "systemd-networkd.service": ModelUnit(wants=("network.target",),
                                              after=("network-pre.target", "systemd-sysctl.service"),
                                              before=("network.target", "multi-user.target"), action="network",
                                              default_dependencies=False),
        "network.target": ModelUnit(after=("network-pre.target",)),
        "network-online.target": ModelUnit(after=("network.target",)),
        "multi-user.target": ModelUnit(wants=("basic.target", "systemd-networkd.service") + (("ssh.service",) if ssh else ()),
                                       after=("basic.target",)),
        DEFAULT_TARGET: ModelUnit(wants=("multi-user.target",), after=("multi-user.target",)),
    }
    if ssh:
        # sysinit.target and basic.target: its default dependencies
        units["ssh.service"] = ModelUnit(after=("network.target", "sysinit.target", "basic.target"), action="sshd")
    return units


# ---------------------------------------------------------------------------------------------
# sysctl.d (systemd-sysctl 252)


@dataclass
class Setting:
    key: str            # normalised: "net/ipv4/ip_forward"
    value: str
    ignore_failure: bool
    where: str          # "60-x.conf:3"


def normalize_sysctl_key(key: str) -> str:
    """systemd's sysctl_normalize(): with "." as the first separator, dots and slashes swap."""
    first = re.search(r"[./]", key)
    if first and first.group() == ".":
        key = key.translate(str.maketrans("./", "/."))
    parts = [p for p in key.split("/") if p not in ("", ".")]
    return "/".join(parts)


def parse_sysctl_files(files: Sequence[Tuple[str, str]]) -> List[Setting]:
    """The settings of sysctl.d files [(name, text)], in the order systemd-sysctl writes them.

    Files are taken in the order given (systemd sorts them by file name). A later assignment of
    a key replaces an earlier one and moves to its place, unless it sets the same value.
    """
    settings: Dict[str, Setting] = {}
    for name, text in files:
        for number, raw in enumerate(re.split(r"\r\n|\r|\n", text), 1):
            where = "%s:%d" % (name, number)
            line = raw.strip(WHITESPACE)
            if not line or line[0] in COMMENTS:
                continue
            if "=" not in line:
                raise NotEmulated("%s: not an assignment (%r); systemd-sysctl would fail" % (where, line))
            key, value = line.split("=", 1)
            ignore_failure = key.startswith("-")
            if ignore_failure:
                key = key[1:]
            key = normalize_sysctl_key(key.strip(WHITESPACE))
            value = value.strip(WHITESPACE)
            if any(c in key for c in "*?["):
                raise NotEmulated("%s: %s: glob patterns are not emulated" % (where, key))
            parts = key.split("/")
            if parts[0] != "net" or len(parts) < 2 or ".." in parts:
                raise NotEmulated("%s: %s: only net.* settings are emulated (other sysctls are shared by all"
                                  " nodes of the lab)" % (where, key.replace("/", ".")))
            existing = settings.get(key)
            if existing is not None:
                if existing.value == value:
                    existing.ignore_failure = existing.ignore_failure or ignore_failure
                    continue
                del settings[key]
            settings[key] = Setting(key, value, ignore_failure, where)
    return list(settings.values())


# ---------------------------------------------------------------------------------------------
# Unit files (systemd.syntax(7), systemd.unit(5), systemd.service(5) of systemd 252)


@dataclass
class Command:
    setting: str            # "ExecStart"
    text: str               # as written, for messages
    path: str               # absolute, or a name looked up in SEARCH_PATH
    argv: List[str]
    ignore_failure: bool

    def __str__(self) -> str:
        return "%s=%s" % (self.setting, self.text)


@dataclass
class Condition:
    path: str
    negate: bool
    trigger: bool
    text: str

    def holds(self, root: str = "/") -> bool:
        exists = os.path.exists(os.path.join(root, self.path.lstrip("/")))
        return exists != self.negate


EXEC_SETTINGS = ("ExecStartPre", "ExecStart", "ExecStartPost")


@dataclass
class Unit:
    name: str
    file: str
    default_dependencies: bool = True
    wants: List[str] = field(default_factory=list)
    after: List[str] = field(default_factory=list)
    before: List[str] = field(default_factory=list)
    conflicts: List[Tuple[str, str]] = field(default_factory=list)      # (name, where)
    conditions: List[Condition] = field(default_factory=list)
    commands: Dict[str, List[Command]] = field(default_factory=lambda: {s: [] for s in EXEC_SETTINGS})

    def failed_condition(self, root: str = "/") -> Optional[Condition]:
        """The condition that keeps the unit from running, if any (all plain ones and, when
        there are triggering ones, at least one of those must hold)."""
        for condition in self.conditions:
            if not condition.trigger and not condition.holds(root):
                return condition
        triggers = [c for c in self.conditions if c.trigger]
        if triggers and not any(c.holds(root) for c in triggers):
            return triggers[0]
        return None


# Settings accepted and ignored: they do not change what runs at boot or in which order.
IGNORED = {
    "Unit": {"Description", "Documentation", "RefuseManualStart", "RefuseManualStop"},
    "Service": {"RemainAfterExit"},
    "Install": {"WantedBy", "RequiredBy", "UpheldBy", "Also", "Alias", "DefaultInstance"},
}
SECTIONS = ("Unit", "Service", "Install")


def unit_assignments(text: str, file: str) -> List[Tuple[str, str, str, str]]:
    """[(where, section, key, value)] of a unit file: continuation lines joined, comments dropped."""
    result = []
    section: Optional[str] = None
    ignored_section = False
    continued: Optional[str] = None
    lines = re.split(r"\r\n|\r|\n", text)
    for number, raw in enumerate(lines + [""], 1):
        if number > len(lines) and continued is None:
            break
        stripped = raw.lstrip(WHITESPACE)
        if stripped and stripped[0] in COMMENTS:
            continue            # comments are dropped even inside a continued line
        line = raw if continued is None else continued + raw
        escaped = False
        for char in line:
            escaped = not escaped and char == "\\"
        if escaped and number <= len(lines):
            continued = line[:-1] + " "
            continue
        continued = None
        where = "%s:%d" % (file, number)
        line = line.strip(WHITESPACE)
        if not line:
            continue
        if line[0] == "[":
            if line[-1] != "]":
                raise NotEmulated("%s: invalid section header %r" % (where, line))
            name = line[1:-1]
            ignored_section = name.startswith("X-")
            if name not in SECTIONS and not ignored_section:
                raise NotEmulated("%s: section [%s] is not emulated" % (where, name))
            section = None if ignored_section else name
            continue
        if ignored_section:
            continue
        if section is None:
            raise NotEmulated("%s: assignment outside of a section" % where)
        if "=" not in line or line.startswith("="):
            raise NotEmulated("%s: not an assignment: %r" % (where, line))
        key, value = line.split("=", 1)
        result.append((where, section, key.strip(WHITESPACE), value.strip(WHITESPACE)))
    return result


def parse_boolean(value: str, where: str, key: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "yes", "y", "true", "t", "on"):
        return True
    if lowered in ("0", "no", "n", "false", "f", "off"):
        return False
    raise NotEmulated("%s: %s=%s: not a boolean" % (where, key, value))


def expand_specifiers(word: str, where: str, key: str) -> str:
    """Only "%%" (a literal "%"): the lab expands no specifier."""
    if "%" not in word:
        return word
    out = []
    i = 0
    while i < len(word):
        if word[i] == "%":
            if word[i + 1:i + 2] != "%":
                raise NotEmulated("%s: %s=: specifier %r is not emulated (write %%%% for a %%)"
                                  % (where, key, word[i:i + 2]))
            i += 1
        out.append(word[i])
        i += 1
    return "".join(out)


def unit_names(value: str, where: str, key: str) -> List[str]:
    names = []
    for word in value.split():
        name = expand_specifiers(word, where, key)
        if not UNIT_NAME.fullmatch(name):
            raise NotEmulated("%s: %s=%s: not a valid unit name" % (where, key, name))
        names.append(name)
    return names


SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                  "\\": "\\", '"': '"', "'": "'", "s": " "}


def _byte(value: int) -> str:
    """One byte of a \\x or octal escape; above 0x7f as the surrogate os.fsencode() turns back into it."""
    return chr(value) if value < 0x80 else chr(0xDC00 + value)


HEX_DIGITS = "0123456789abcdefABCDEF"


def unescape_one(text: str, i: int) -> Tuple[str, int]:
    """The C escape whose backslash is at text[i-1]: (the character, index after it) (systemd's
    cunescape_one: \\xHH and \\OOO are bytes, \\uHHHH and \\UHHHHHHHH characters, no NUL)."""
    char = text[i:i + 1]
    if not char:
        raise NotEmulated("trailing backslash")
    if char in SIMPLE_ESCAPES:
        return SIMPLE_ESCAPES[char], i + 1
    if char in "01234567":
        digits, base, start = "01234567", 8, i
        end = i + 3
    elif char in ("x", "u", "U"):
        digits, base, start = HEX_DIGITS, 16, i + 1
        end = start + {"x": 2, "u": 4, "U": 8}[char]
    else:
        raise NotEmulated("unknown escape \\%s" % char)
    chunk = text[start:end]
    if len(chunk) != end - start or any(c not in digits for c in chunk):
        raise NotEmulated("bad escape \\%s" % text[i:end])
    value = int(chunk, base)
    if value == 0:
        raise NotEmulated("escape \\%s is a NUL character" % text[i:end])
    if char in ("u", "U"):
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise NotEmulated("escape \\%s is not a unicode character" % text[i:end])
        return chr(value), end
    if value > 0xFF:
        raise NotEmulated("escape \\%s is above 255" % text[i:end])
    return _byte(value), end


def _word(text: str, i: int) -> Tuple[str, int]:
    """One word from text[i] (not whitespace): quotes removed, escapes resolved.

    Quotes are taken only where systemd.syntax(7) allows them (around a whole word); elsewhere
    systemd's parser and its documentation disagree, so the lab refuses the line.
    """
    out = []
    quote = text[i] if text[i] in "'\"" else None
    if quote:
        i += 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            unescaped, i = unescape_one(text, i + 1)
            out.append(unescaped)
        elif quote and char == quote:
            i += 1
            if i < len(text) and text[i] not in WHITESPACE:
                raise NotEmulated("a closing quote must be followed by whitespace")
            return "".join(out), i
        elif not quote and char in WHITESPACE:
            break
        elif not quote and char in "'\"":
            raise NotEmulated("a quote may only open a word")
        else:
            out.append(char)
            i += 1
    if quote:
        raise NotEmulated("unterminated quote")
    return "".join(out), i


def command_words(text: str) -> List[List[str]]:
    """The commands of an Exec*= value (separated by lone ";"), each a list of unquoted words."""
    commands: List[List[str]] = [[]]
    i = 0
    while True:
        while i < len(text) and text[i] in WHITESPACE:
            i += 1
        if i >= len(text):
            break
        end = i + 1
        if text[i] == ";" and (end == len(text) or text[end] in WHITESPACE):
            if not commands[-1]:
                raise NotEmulated("empty command before ';'")
            commands.append([])
            i = end
            continue
        if text.startswith("\\;", i) and (end + 1 == len(text) or text[end + 1] in WHITESPACE):
            commands[-1].append(";")
            i = end + 1
            continue
        word, i = _word(text, i)
        commands[-1].append(word)
    return [c for c in commands if c]


def expand_variables(word: str) -> str:
    """systemd substitutes $NAME (a whole word) and ${NAME} at start; the lab defines no variable
    for services, so it refuses both. "$$" is a "$"; "$" before anything else stays."""
    if word.startswith("$") and word[1:2] not in ("{", "$"):
        raise NotEmulated("environment variable %s is not emulated (write $$ for a $)" % word)
    out = []
    i = 0
    while i < len(word):
        if word.startswith("${", i):
            raise NotEmulated("environment variable %s is not emulated (write $$ for a $)"
                              % word[i:word.find("}", i) + 1 or None])
        if word.startswith("$$", i):
            i += 1
        out.append(word[i])
        i += 1
    return "".join(out)


def parse_commands(key: str, value: str, where: str) -> List[Command]:
    try:
        words_list = command_words(value)
    except NotEmulated as exc:
        raise NotEmulated("%s: %s=%s: %s" % (where, key, value, exc)) from None
    commands = []
    for words in words_list:
        first = words[0]
        ignore_failure, expand_env = False, True
        prefix_end = 0
        while prefix_end < len(first) and first[prefix_end] in "-@:+!":
            prefix = first[prefix_end]
            if prefix == "-" and not ignore_failure:
                ignore_failure = True
            elif prefix == ":" and expand_env:
                expand_env = False
            else:
                raise NotEmulated("%s: %s=%s: prefix %r is not emulated (only '-' and ':')" % (where, key, value, prefix))
            prefix_end += 1
        path = expand_specifiers(first[prefix_end:], where, key)
        if not path:
            raise NotEmulated("%s: %s=%s: empty executable" % (where, key, value))
        if "/" in path and not path.startswith("/"):
            raise NotEmulated("%s: %s=%s: neither a valid executable name nor an absolute path: %s"
                              % (where, key, value, path))
        args = []
        for word in words[1:]:
            word = expand_specifiers(word, where, key)
            if expand_env:
                try:
                    word = expand_variables(word)
                except NotEmulated as exc:
                    raise NotEmulated("%s: %s=%s: %s" % (where, key, value, exc)) from None
            args.append(word)
        commands.append(Command(key, value, path, [path] + args, ignore_failure))
    return commands


def parse_unit(name: str, file: str, text: str) -> Unit:
    """A node unit from its file's text; NotEmulated for anything the lab does not model."""
    if not name.endswith(".service"):
        raise NotEmulated("%s: only .service units are emulated" % file)
    if "@" in name:
        raise NotEmulated("%s: template and instance units are not emulated" % file)
    unit = Unit(name, file)
    unit_type: Optional[str] = None
    for where, section, key, value in unit_assignments(text, file):
        if key in IGNORED.get(section, ()):
            continue
        if section == "Unit" and key == "DefaultDependencies":
            unit.default_dependencies = parse_boolean(value, where, key)
        elif section == "Unit" and key in ("Wants", "After", "Before"):
            getattr(unit, key.lower()).extend(unit_names(value, where, key))
        elif section == "Unit" and key == "Conflicts":
            unit.conflicts.extend((n, where) for n in unit_names(value, where, key))
        elif section == "Unit" and key == "ConditionPathExists":
            if not value:
                unit.conditions = []        # an empty assignment resets the conditions
                continue
            rest, trigger, negate = value, False, False
            if rest.startswith("|"):
                trigger, rest = True, rest[1:].lstrip(WHITESPACE)
            if rest.startswith("!"):
                negate, rest = True, rest[1:].lstrip(WHITESPACE)
            path = expand_specifiers(rest, where, key)
            if not path.startswith("/"):
                raise NotEmulated("%s: %s=%s: the path must be absolute" % (where, key, value))
            unit.conditions.append(Condition(path, negate, trigger, "%s=%s" % (key, value)))
        elif section == "Unit" and key == "RequiresMountsFor":
            # Every file system of a lab node (its root, and the /etc /root /var overlays that
            # lab-reboot mounts before the boot starts) is mounted before any step runs, so the
            # mounts systemd would order the unit after are always there. The paths are
            # checked as systemd checks them.
            for word in value.split():
                path = expand_specifiers(word, where, key)
                if not path.startswith("/"):
                    raise NotEmulated("%s: %s=%s: the path must be absolute" % (where, key, value))
        elif section == "Service" and key == "Type":
            if value != "oneshot":
                raise NotEmulated("%s: Type=%s is not emulated (only Type=oneshot)" % (where, value))
            unit_type = value
        elif section == "Service" and key in EXEC_SETTINGS:
            if not value:
                unit.commands[key] = []     # an empty assignment resets the list
            else:
                unit.commands[key].extend(parse_commands(key, value, where))
        else:
            raise NotEmulated("%s: %s= in [%s] is not emulated" % (where, key, section))
    if unit_type is None:
        default = "simple" if unit.commands["ExecStart"] else "oneshot"
        if default != "oneshot":
            raise NotEmulated("%s: no Type=, so Type=simple, which is not emulated (only Type=oneshot)" % file)
    if not unit.commands["ExecStart"]:
        raise NotEmulated("%s: no ExecStart= (systemd refuses such a service)" % file)
    return unit


# ---------------------------------------------------------------------------------------------
# The node's files and the boot transaction


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs marks a file deleted from the lower layer with a 0/0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def upper_entries(directory: Path) -> Dict[str, str]:
    """{name: "dir"|"file"} of a directory of the node's upper layer (whiteouts left out)."""
    entries = {}
    try:
        scan = list(os.scandir(directory))
    except FileNotFoundError:
        return {}
    for entry in scan:
        st = entry.stat(follow_symlinks=False)
        if is_whiteout(st):
            continue
        entries[entry.name] = "dir" if stat.S_ISDIR(st.st_mode) else "file"
    return entries


@dataclass
class Plan:
    order: List[str] = field(default_factory=list)          # names, lab model units included
    units: Dict[str, Unit] = field(default_factory=dict)    # the node's units in the boot
    sysctl: List[Setting] = field(default_factory=list)
    sysctl_files: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)     # (name, why)
    wants: List[Tuple[str, str]] = field(default_factory=list)       # (unit, what it pulls in)
    problems: List[str] = field(default_factory=list)


class NodeBoot:
    """The boot of one node from its files: `upper` is the upper directory of its /etc overlay,
    `etc` the node's /etc as it sees it (to read files through symlinks)."""

    def __init__(self, upper: Path, etc: Path, ssh: bool):
        self.upper = upper
        self.etc = etc
        self.model = model_units(ssh)

    # -- sysctl.d
    def sysctl_files(self) -> List[str]:
        entries = upper_entries(self.upper / SYSCTL_DIR)
        return sorted(n for n, kind in entries.items() if kind == "file" and n.endswith(".conf") and not n.startswith("."))

    def sysctl_problems(self) -> List[str]:
        """The node changed /etc/sysctl.conf, which a host file in /etc/sysctl.d links to (Debian's
        99-sysctl.conf): systemd-sysctl would read it, the lab does not."""
        if upper_entries(self.upper).get("sysctl.conf") != "file":
            return []
        problems = []
        own = set(self.sysctl_files())
        directory = self.etc / SYSCTL_DIR
        for name in sorted(os.listdir(directory)) if directory.is_dir() else ():
            link = directory / name
            if name in own or not name.endswith(".conf") or not link.is_symlink():
                continue
            target = os.path.normpath(os.path.join("/etc/sysctl.d", os.readlink(link)))
            if target == "/etc/sysctl.conf":
                problems.append("/etc/sysctl.conf: changed by the node and read through the host's /etc/sysctl.d/%s;"
                                " the lab applies only the node's own /etc/sysctl.d/*.conf" % name)
        return problems

    # -- units
    def plan(self) -> Plan:
        plan = Plan()
        try:
            plan.sysctl_files = self.sysctl_files()
            plan.sysctl = parse_sysctl_files(
                [(n, (self.etc / SYSCTL_DIR / n).read_text(errors="surrogateescape")) for n in plan.sysctl_files])
        except NotEmulated as exc:
            plan.problems.append("/etc/sysctl.d/%s" % exc)
        plan.problems.extend(self.sysctl_problems())

        unit_dir = self.upper / SYSTEM_UNIT_DIR
        entries = upper_entries(unit_dir)
        files = {n for n, kind in entries.items() if kind == "file" and UNIT_NAME.fullmatch(n)}
        wanted: Dict[str, List[str]] = {}           # wants directories: {owner: [names]}
        for name, kind in sorted(entries.items()):
            if kind != "dir":
                continue
            owner, suffix = name.rpartition(".")[::2]
            inside = sorted(upper_entries(unit_dir / name))
            if suffix == "wants":
                wanted[owner] = inside
            elif suffix in ("requires", "upholds") and inside:
                plan.problems.append("/etc/systemd/system/%s: dependencies through .%s/ are not emulated" % (name, suffix))
            elif suffix == "d" and any(n.endswith(".conf") for n in inside):
                plan.problems.append("/etc/systemd/system/%s: drop-in files are not emulated" % name)
        for name in sorted(files & set(self.model)):
            plan.problems.append("/etc/systemd/system/%s: overrides a unit the lab models itself; not emulated" % name)

        in_boot: Dict[str, bool] = {}               # name -> a lab model unit
        queue = [DEFAULT_TARGET]
        while queue:
            name = queue.pop(0)
            if name in in_boot:
                continue
            if name in self.model:
                in_boot[name] = True
                queue.extend(self.model[name].wants)
                plan.wants.extend((name, w) for w in self.model[name].wants)
            elif name in files:
                path = self.etc / SYSTEM_UNIT_DIR / name
                file = "/etc/systemd/system/%s" % name
                if os.path.realpath(path) == "/dev/null":
                    plan.skipped.append((name, "masked"))
                    continue
                target = os.readlink(path) if path.is_symlink() else name
                if os.path.basename(target) != name:
                    plan.problems.append("%s: an alias of %s; aliases are not emulated" % (file, os.path.basename(target)))
                    continue
                try:
                    unit = parse_unit(name, file, path.read_text(errors="surrogateescape"))
                except NotEmulated as exc:
                    plan.problems.append(str(exc))
                    continue
                except OSError as exc:
                    plan.problems.append("%s: cannot read: %s" % (file, exc.strerror))
                    continue
                plan.units[name] = unit
                in_boot[name] = False
                # Wants= of units neither the node installed nor the lab models: ignored, as
                # the host's units never run in a node.
                queue.extend(n for n in unit.wants if n in files or n in self.model)
            else:
                continue
            for member in wanted.get(name, ()):
                if member not in files and member not in self.model:
                    plan.problems.append("/etc/systemd/system/%s.wants/%s: %s is not a unit the node installed in"
                                         " /etc/systemd/system (host units never run in the lab)" % (name, member, member))
                queue.append(member)
                plan.wants.append((name, member))
        for owner, members in sorted(wanted.items()):
            if owner in in_boot:
                continue
            if owner in self.model or owner in files:
                plan.skipped.extend((m, "wanted by %s, which is not part of the boot" % owner)
                                    for m in members if m not in in_boot)
            else:
                plan.problems.append("/etc/systemd/system/%s.wants/: the lab's boot does not model %s" % (owner, owner))
        for unit in plan.units.values():
            for other, where in unit.conflicts:
                if other in in_boot:
                    plan.problems.append("%s: Conflicts=%s: a conflict with a unit of the boot is not emulated"
                                         % (where, other))
        if plan.problems:
            return plan
        try:
            plan.order = self.order(in_boot, plan.units, plan.wants)
        except NotEmulated as exc:
            plan.problems.append(str(exc))
        return plan

    def order(self, in_boot: Dict[str, bool], units: Dict[str, Unit], wants: Sequence[Tuple[str, str]]) -> List[str]:
        """A start order systemd allows. When several units may start, the lab's own go first (in
        model order), then (by name) the node's units one of the lab's steps waits for, those a
        target waits for, the others: the node's units run as late as they may, so that a missing
        ordering shows."""
        edges: Dict[str, set] = {n: set() for n in in_boot}

        def edge(first: str, then: str) -> None:
            if first in edges and then in edges and first != then:
                edges[first].add(then)

        def default_dependencies(name: str) -> bool:
            return self.model[name].default_dependencies if in_boot[name] else units[name].default_dependencies

        for name, model in self.model.items():
            if name in in_boot:
                for other in model.after:
                    edge(other, name)
                for other in model.before:
                    edge(name, other)
        for name, unit in units.items():
            implicit = ["sysinit.target", "basic.target"] if unit.default_dependencies else []
            for other in unit.after + implicit:
                edge(other, name)
            for other in unit.before:
                edge(name, other)
        # A target starts after what it wants when both have default dependencies, unless that
        # would make a loop (systemd.target(5); unit_add_default_target_dependency()).
        for owner, member in wants:
            if owner.endswith(".target") and member in edges and default_dependencies(owner) \
                    and default_dependencies(member) and member not in edges[owner]:
                edge(member, owner)

        def awaited_by(names: Iterable[str]) -> set:
            """Everything that must start before the given units."""
            found: set = set()
            stack = list(names)
            while stack:
                name = stack.pop()
                for first, thens in edges.items():
                    if name in thens and first not in found:
                        found.add(first)
                        stack.append(first)
            return found

        by_lab_steps = awaited_by(n for n in edges if in_boot[n] and self.model[n].action)
        by_lab_units = awaited_by(n for n in edges if in_boot[n])
        rank = {n: i for i, n in enumerate(self.model)}

        def priority(name: str) -> Tuple[int, int, str]:
            if in_boot[name]:
                return (0, rank[name], "")
            return (1 if name in by_lab_steps else 2 if name in by_lab_units else 3, 0, name)

        indegree = {n: 0 for n in edges}
        for targets in edges.values():
            for target in targets:
                indegree[target] += 1
        ready = [priority(n) + (n,) for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            name = heapq.heappop(ready)[-1]
            order.append(name)
            for target in edges[name]:
                indegree[target] -= 1
                if indegree[target] == 0:
                    heapq.heappush(ready, priority(target) + (target,))
        if len(order) < len(edges):
            cycle = find_cycle(edges, set(edges) - set(order))
            raise NotEmulated("ordering cycle (each starts before the next): %s" % " -> ".join(cycle))
        return order


def find_cycle(edges: Dict[str, set], among: Iterable[str]) -> List[str]:
    """One cycle among the nodes a topological sort left, as [a, b, ..., a]. Each of them has a
    predecessor among them (else it would have been sorted): walking back must close a loop."""
    among = set(among)
    before: Dict[str, List[str]] = {n: [] for n in among}
    for first, thens in edges.items():
        for then in thens:
            if first in among and then in among:
                before[then].append(first)
    walk = [min(among)]
    seen = {walk[0]: 0}
    while True:
        previous = min(before[walk[-1]])
        if previous in seen:
            loop = walk[seen[previous]:] + [previous]
            return loop[::-1]
        seen[previous] = len(walk)
        walk.append(previous)


# ---------------------------------------------------------------------------------------------
# Running the plan inside the node


def find_executable(path: str) -> Optional[str]:
    """The file a command runs (systemd looks names up in its fixed search path)."""
    candidates = [path] if "/" in path else [os.path.join(d, path) for d in SEARCH_PATH]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class Runner:
    """Runs a plan in the current (node's) namespaces; prints one line per step of the node."""

    def __init__(self, node: str, journal: Path, lab_steps: Dict[str, Sequence[str]], sysctl_root: str = "/proc/sys"):
        self.node = node
        self.journal = journal
        self.lab_steps = lab_steps
        self.sysctl_root = sysctl_root
        self.env = {"PATH": ":".join(SEARCH_PATH)}
        # UML needs these in every process (lab/guest/init2)
        for name in ("GLIBC_TUNABLES", "OPENSSL_ia32cap"):
            if name in os.environ:
                self.env[name] = os.environ[name]

    def say(self, name: str, result: str) -> None:
        print("%s %s %s" % (self.node, name, result), flush=True)

    def warn(self, message: str) -> None:
        print("lab-reboot: %s: %s" % (self.node, message), file=sys.stderr, flush=True)

    def run(self, plan: Plan) -> int:
        os.umask(0o022)
        self.journal.write_bytes(b"")
        status = EXIT_OK
        emulated = not plan.problems
        for problem in plan.problems:
            self.warn("not emulated: %s" % problem)
        if emulated:
            for name, why in plan.skipped:
                self.say(name, "skipped (%s)" % why)
        # Without a plan, only the lab's own steps run, so that the node can be reached.
        order = plan.order if emulated else ["systemd-networkd.service", "ssh.service"]
        for name in order:
            if name in plan.units:
                if not self.run_unit(plan.units[name]):
                    status = EXIT_UNIT_FAILED
            elif name == "systemd-sysctl.service":
                if emulated and plan.sysctl_files and not self.apply_sysctl(plan):
                    status = EXIT_UNIT_FAILED
            elif name in ("systemd-networkd.service", "ssh.service"):
                step = "network" if name == "systemd-networkd.service" else "sshd"
                if step in self.lab_steps and not self.lab_step(name, self.lab_steps[step]):
                    return EXIT_LAB_FAILURE
        if not emulated:
            self.warn("none of the node's boot files ran (sysctl.d, units); its network is up")
            return EXIT_NOT_EMULATED
        return status

    def lab_step(self, name: str, argv: Sequence[str]) -> bool:
        failure = self.spawn(name, "%s (lab step): %s" % (name, " ".join(argv)), argv, dict(os.environ))
        if failure is not None:
            self.warn("lab step %s (%s) failed: %s" % (name, " ".join(argv), failure))
        return failure is None

    def apply_sysctl(self, plan: Plan) -> bool:
        ok = True
        for setting in plan.sysctl:
            path = os.path.join(self.sysctl_root, setting.key)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)      # never creates (as systemd)
                try:
                    os.write(fd, (setting.value + "\n").encode(errors="surrogateescape"))
                finally:
                    os.close(fd)
            except OSError as exc:
                try:
                    with open(path) as handle:
                        if handle.read().rstrip("\n") == setting.value:
                            continue        # systemd checks the value on a failed write
                except OSError:
                    pass
                name = setting.key.replace("/", ".")
                if setting.ignore_failure or exc.errno in (errno.EROFS, errno.EPERM, errno.EACCES):
                    continue
                if exc.errno == errno.ENOENT:
                    self.warn("%s: %s: no such sysctl, ignored (as systemd-sysctl does)" % (setting.where, name))
                    continue
                self.warn("systemd-sysctl.service: %s: cannot write %r to %s: %s"
                          % (setting.where, setting.value, name, exc.strerror))
                ok = False
        count = len(plan.sysctl)
        detail = "%d setting%s from %s" % (count, "" if count == 1 else "s", ", ".join(plan.sysctl_files))
        self.say("systemd-sysctl.service", "%s (%s)" % ("ok" if ok else "failed", detail))
        return ok

    def run_unit(self, unit: Unit) -> bool:
        condition = unit.failed_condition()
        if condition is not None:
            self.say(unit.name, "skipped (%s not met)" % condition.text)
            return True
        ignored = []
        for setting in EXEC_SETTINGS:
            for command in unit.commands[setting]:
                failure = self.execute(unit, command)
                if failure is None:
                    continue
                if command.ignore_failure:
                    ignored.append("%s: %s, ignored" % (command, failure))
                    continue
                self.say(unit.name, "failed (%s: %s)" % (command, failure))
                self.warn("%s failed: %s: %s" % (unit.name, command, failure))
                return False
        self.say(unit.name, "ok" + (" (%s)" % "; ".join(ignored) if ignored else ""))
        return True

    def execute(self, unit: Unit, command: Command) -> Optional[str]:
        return self.spawn(unit.name, "%s: %s" % (unit.name, command), command.argv, self.env)

    def spawn(self, label: str, header: str, argv: Sequence[str], env: Dict[str, str]) -> Optional[str]:
        """Runs argv (argv[0] looked up as systemd does), its output appended to the journal;
        None when it succeeded, else what went wrong (its output then goes to stderr too).
        A file, not a pipe: what a command leaves running must not hold the runner."""
        path = argv[0]
        with open(self.journal, "ab") as journal:
            journal.write(("-- %s\n" % header).encode(errors="surrogateescape"))
            journal.flush()         # before the command appends to the same file
            start = journal.tell()
            executable = find_executable(path)
            if executable is None:
                return "executable %s not found%s" % (path, "" if "/" in path else " in %s" % ":".join(SEARCH_PATH))
            try:
                proc = subprocess.Popen([os.fsencode(a) for a in argv], executable=executable,
                                        stdin=subprocess.DEVNULL, stdout=journal, stderr=journal, cwd="/",
                                        env=env, start_new_session=True)
            except OSError as exc:
                return "cannot execute %s: %s" % (executable, exc.strerror)
        try:
            returncode = proc.wait(timeout=EXEC_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "timed out after %d s (lab limit)" % EXEC_TIMEOUT
        if returncode == 0:
            return None
        output = self.journal.read_bytes()[start:].decode(errors="replace").rstrip("\n")
        for line in output.split("\n") if output else ():
            self.warn("%s| %s" % (label, line))
        if returncode < 0:
            return "killed by signal %d" % -returncode
        return "exit status %d" % returncode


def read_config(path: str = "/lab/config") -> Dict[str, str]:
    config = {}
    with open(path) as handle:
        for line in handle:
            key, value = line.rstrip("\n").partition("=")[::2]
            config[key] = value
    return config


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: lab_boot.py I   (inside node I; run by lab-reboot --keep-disk)", file=sys.stderr)
        return EXIT_LAB_FAILURE
    config = read_config()
    index = argv[1]
    node_dir = Path(config.get("LAB_DIR", "/lab")) / "nodes" / ("node" + index)
    ssh = config.get("LAB_SSH") == "1"
    lab_steps: Dict[str, Sequence[str]] = {"network": ("ip", "-batch", str(node_dir / "net-up.batch"))}
    if ssh:
        lab_steps["sshd"] = ("/bin/sh", "-c", '. /lab/config && . "$0" && node_sshd "$1"',
                             os.path.join(config["LAB_HOME"], "guest", "node-sshd.sh"), index)
    boot = NodeBoot(node_dir / "etc.u", Path("/etc"), ssh)
    plan = boot.plan()
    return Runner("node" + index, node_dir / "journal", lab_steps).run(plan)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
