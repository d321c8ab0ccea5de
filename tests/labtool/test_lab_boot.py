"""The boot emulation of `lab-reboot --keep-disk` (lab/lib/lab_boot.py), on files in a temporary
directory: parsing, the boot transaction and its order, conditions, sysctl.d. No lab needed; the
lab itself is exercised in test_lab_reboot.py.
"""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_boot", REPO / "lab" / "lib" / "lab_boot.py")
lab_boot = importlib.util.module_from_spec(_spec)
sys.modules["lab_boot"] = lab_boot
_spec.loader.exec_module(lab_boot)
NotEmulated = lab_boot.NotEmulated


# --- command lines -------------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("ip -batch /var/lib/x", [["ip", "-batch", "/var/lib/x"]]),
    ("  /bin/sh   -c  'echo a; b'  ", [["/bin/sh", "-c", "echo a; b"]]),
    ('/bin/echo "two words" \'\' x', [["/bin/echo", "two words", "", "x"]]),
    (r"/bin/echo \x41\101\u00e9\s\t\\ \"", [["/bin/echo", "AA\u00e9 \t\\", '"']]),
    ("/bin/echo \"in \\\"quotes\\\"\" 'single \\x41'", [["/bin/echo", 'in "quotes"', "single A"]]),
    ("echo one ; echo \"two two\"", [["echo", "one"], ["echo", "two two"]]),
    (r"echo / >/dev/null & \; ls", [["echo", "/", ">/dev/null", "&", ";", "ls"]]),
    ("echo a;b", [["echo", "a;b"]]),
    ("echo trailing ;", [["echo", "trailing"]]),
])
def test_command_words_follow_systemd_syntax(text, words):
    assert lab_boot.command_words(text) == words


def test_escaped_bytes_above_ascii_reach_the_command_as_bytes():
    word = lab_boot.command_words(r"/bin/echo \xff\377")[0][1]
    assert os.fsencode(word) == b"\xff\xff"


@pytest.mark.parametrize("text, message", [
    ("/bin/echo 'open", "unterminated quote"),
    ('/bin/echo a"b c"', "a quote may only open a word"),
    ('/bin/echo "a"b', "closing quote must be followed by whitespace"),
    (r"/bin/echo \q", "unknown escape \\q"),
    (r"/bin/echo \x4", "bad escape"),
    (r"/bin/echo \x00", "NUL"),
    (r"/bin/echo \400", "above 255"),
    (r"/bin/echo \ud800", "not a unicode character"),
    ("echo a ; ; echo b", "empty command"),
])
def test_command_words_refuse_what_systemd_rejects_or_reads_otherwise(text, message):
    with pytest.raises(NotEmulated, match=message.replace("\\", "\\\\")):
        lab_boot.command_words(text)


def test_prefixes_specifiers_and_dollars():
    first, second = lab_boot.parse_commands("ExecStart", "-ip -batch /var/%%x $$HOME a$b ; :echo $X ${Y}", "f:1")
    assert (first.path, first.argv, first.ignore_failure) == ("ip", ["ip", "-batch", "/var/%x", "$HOME", "a$b"], True)
    assert (second.path, second.argv, second.ignore_failure) == ("echo", ["echo", "$X", "${Y}"], False)


@pytest.mark.parametrize("value, message", [
    ("/bin/echo $HOME", r"environment variable \$HOME is not emulated"),
    ("/bin/echo a${HOME}b", r"environment variable \$\{HOME\} is not emulated"),
    ("/bin/echo %n", "specifier '%n' is not emulated"),
    ("@/bin/echo echo", "prefix '@' is not emulated"),
    ("+/bin/true", "prefix '\\+' is not emulated"),
    ("!/bin/true", "prefix '!' is not emulated"),
    ("bin/true", "neither a valid executable name nor an absolute path: bin/true"),
    ("-", "empty executable"),
])
def test_commands_not_emulated_are_named_with_file_and_line(value, message):
    with pytest.raises(NotEmulated, match="^u.service:7: ExecStart=.*" + message):
        lab_boot.parse_commands("ExecStart", value, "u.service:7")


# --- unit files ----------------------------------------------------------------------------

RESTORE = """\
# a comment
[Unit]
Description=Restore the node's XFRM policies
Documentation=man:ip-xfrm(8)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target \\
  shutdown.target
; a comment inside a continued line is dropped
After=local-fs.target
Conflicts=shutdown.target
ConditionPathExists=/var/lib/ipsec/policies

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStartPre=-/bin/false
ExecStart=ip -batch /var/lib/ipsec/policies
ExecStartPost=/bin/true

[Install]
WantedBy=sysinit.target

[X-Vendor]
Anything=goes
"""


def test_parse_unit_reads_what_runs_and_its_order():
    unit = lab_boot.parse_unit("restore.service", "/etc/systemd/system/restore.service", RESTORE)
    assert unit.default_dependencies is False
    assert unit.wants == ["network-pre.target"]
    assert unit.before == ["network-pre.target", "shutdown.target"]
    assert unit.after == ["local-fs.target"]
    assert [c.path for c in unit.conditions] == ["/var/lib/ipsec/policies"]
    assert [(str(c), c.ignore_failure) for c in unit.commands["ExecStartPre"]] == [("ExecStartPre=-/bin/false", True)]
    assert [c.argv for c in unit.commands["ExecStart"]] == [["ip", "-batch", "/var/lib/ipsec/policies"]]
    assert [c.argv for c in unit.commands["ExecStartPost"]] == [["/bin/true"]]


def test_the_collection_s_boot_unit_is_emulated():
    """The mesh role's unit as the collection renders it (RequiresMountsFor: the lab's file
    systems are all mounted before the boot's first step)."""
    from ansible_collections.netsec.ipsec.plugins.module_utils._planner.boot import BOOT_UNIT_NAME, render_boot_unit
    unit = lab_boot.parse_unit(BOOT_UNIT_NAME, "/etc/systemd/system/" + BOOT_UNIT_NAME, render_boot_unit().content)
    assert unit.default_dependencies is False and unit.wants == ["network-pre.target"]
    assert "network-pre.target" in unit.before
    assert [c.path for c in unit.conditions] == ["/var/lib/netsec-ipsec/boot-policies"]
    assert [c.argv for c in unit.commands["ExecStart"]] == [["ip", "-force", "-batch",
                                                            "/var/lib/netsec-ipsec/boot-policies"]]


def test_empty_assignments_reset_commands_and_conditions():
    text = ("[Unit]\nConditionPathExists=/a\nConditionPathExists=\nConditionPathExists=!/b\n"
            "[Service]\nType=oneshot\nExecStart=/bin/false\nExecStart=\nExecStart=/bin/true\n")
    unit = lab_boot.parse_unit("u.service", "u.service", text)
    assert [(c.path, c.negate) for c in unit.conditions] == [("/b", True)]
    assert [c.argv for c in unit.commands["ExecStart"]] == [["/bin/true"]]


@pytest.mark.parametrize("line, message", [
    ("[Service]\nType=simple", r"u.service:\d+: Type=simple is not emulated \(only Type=oneshot\)"),
    ("[Service]\nType=forking", "Type=forking is not emulated"),
    ("[Service]\nRestart=on-failure", r"u.service:\d+: Restart= in \[Service\] is not emulated"),
    ("[Service]\nExecStop=/bin/true", r"ExecStop= in \[Service\] is not emulated"),
    ("[Unit]\nRequires=a.service", r"Requires= in \[Unit\] is not emulated"),
    ("[Unit]\nConditionKernelCommandLine=x", r"ConditionKernelCommandLine= in \[Unit\] is not emulated"),
    ("[Unit]\nAssertPathExists=/x", r"AssertPathExists= in \[Unit\] is not emulated"),
    ("[Unit]\nConditionPathExists=relative", "the path must be absolute"),
    ("[Unit]\nRequiresMountsFor=/var/lib relative/dir", "RequiresMountsFor=.*the path must be absolute"),
    ("[Unit]\nAfter=not-a-unit", "not a valid unit name"),
    ("[Unit]\nDefaultDependencies=maybe", "not a boolean"),
    ("[Socket]\nListenStream=1", r"section \[Socket\] is not emulated"),
    ("Description=x", "assignment outside of a section"),
    ("[Unit]\njust words", "not an assignment"),
    ("[Unit", "invalid section header"),
])
def test_parse_unit_refuses_what_it_does_not_model(line, message):
    text = line + "\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
    with pytest.raises(NotEmulated, match=message):
        lab_boot.parse_unit("u.service", "u.service", text)


def test_default_type_is_simple_and_refused():
    with pytest.raises(NotEmulated, match="no Type=, so Type=simple"):
        lab_boot.parse_unit("u.service", "u.service", "[Service]\nExecStart=/bin/true\n")


def test_a_oneshot_without_execstart_is_refused():
    with pytest.raises(NotEmulated, match="no ExecStart="):
        lab_boot.parse_unit("u.service", "u.service", "[Service]\nType=oneshot\n")


@pytest.mark.parametrize("name, message", [("u.target", "only .service"), ("u@x.service", "template")])
def test_only_plain_services(name, message):
    with pytest.raises(NotEmulated, match=message):
        lab_boot.parse_unit(name, name, "[Service]\nType=oneshot\nExecStart=/bin/true\n")


def test_conditions_plain_negated_and_triggering(tmp_path):
    (tmp_path / "here").touch()

    def failed(*conditions):
        text = "[Unit]\n" + "".join("ConditionPathExists=%s\n" % c for c in conditions) + \
            "[Service]\nType=oneshot\nExecStart=/bin/true\n"
        unit = lab_boot.parse_unit("u.service", "u.service", text)
        condition = unit.failed_condition(str(tmp_path))
        return condition and condition.text

    assert failed("/here") is None
    assert failed("/absent") == "ConditionPathExists=/absent"
    assert failed("!/absent") is None
    assert failed("!/here") == "ConditionPathExists=!/here"
    assert failed("|/absent", "|/here") is None
    assert failed("|/absent", "|!/here") == "ConditionPathExists=|/absent"
    assert failed("|/here", "/absent") == "ConditionPathExists=/absent"


# --- sysctl.d ------------------------------------------------------------------------------

def test_sysctl_keys_normalised_as_systemd_does():
    assert lab_boot.normalize_sysctl_key("net.ipv4.ip_forward") == "net/ipv4/ip_forward"
    assert lab_boot.normalize_sysctl_key("net/ipv4/conf/eth0.100/rp_filter") == "net/ipv4/conf/eth0.100/rp_filter"
    assert lab_boot.normalize_sysctl_key("net.ipv4.conf.eth0/100.rp_filter") == "net/ipv4/conf/eth0.100/rp_filter"
    assert lab_boot.normalize_sysctl_key("/net//ipv6/./conf") == "net/ipv6/conf"


def test_sysctl_files_merge_in_order_later_wins_and_moves():
    settings = lab_boot.parse_sysctl_files([
        ("50-a.conf", "# comment\n; comment\nnet.ipv4.ip_forward = 1\n-net.a = x y \nnet.b=1\n"),
        ("60-b.conf", "net/ipv4/ip_forward=0\nnet.b = 1\n"),
    ])
    assert [(s.key, s.value, s.ignore_failure, s.where) for s in settings] == [
        ("net/a", "x y", True, "50-a.conf:4"),
        ("net/b", "1", False, "50-a.conf:5"),               # same value: keeps its place
        ("net/ipv4/ip_forward", "0", False, "60-b.conf:1"),  # new value: moves to the end
    ]


@pytest.mark.parametrize("text, message", [
    ("kernel.pid_max = 4194304", r"60-x.conf:1: kernel.pid_max: only net.\* settings"),
    ("vm/swappiness = 1", r"only net.\* settings"),
    ("net = 1", r"only net.\* settings"),
    ("net.ipv4.conf.*.rp_filter = 2", "glob patterns are not emulated"),
    ("-net.ipv4.conf.all.rp_filter", "not an assignment"),
    ("just words", "not an assignment"),
])
def test_sysctl_refuses_shared_and_unmodelled_settings(text, message):
    with pytest.raises(NotEmulated, match=message):
        lab_boot.parse_sysctl_files([("60-x.conf", "net.ok = 1\n" * 0 + text + "\n")])


# --- the node's files and its boot ---------------------------------------------------------

class Node:
    """A node's /etc as the emulation sees it: the upper layer and the merged view. Files the
    node installs go to both; files of the host only to the merged view."""

    def __init__(self, root: Path):
        self.upper = root / "upper"
        self.etc = root / "etc"
        for d in (self.upper, self.etc):
            (d / "systemd" / "system").mkdir(parents=True)
            (d / "sysctl.d").mkdir(parents=True)

    def install(self, relative, text, host=False):
        for base in ([self.etc] if host else [self.upper, self.etc]):
            path = base / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def unit(self, name, unit="", service="Type=oneshot\nExecStart=/bin/true\n", wanted_by="multi-user.target",
             host=False):
        self.install("systemd/system/" + name, "[Unit]\n%s\n[Service]\n%s" % (unit, service), host=host)
        if wanted_by:
            self.link("%s.wants/%s" % (wanted_by, name), "/etc/systemd/system/" + name, host=host)

    def link(self, relative, target, host=False):
        for base in ([self.etc] if host else [self.upper, self.etc]):
            path = base / "systemd" / "system" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)

    def plan(self, ssh=False):
        return lab_boot.NodeBoot(self.upper, self.etc, ssh).plan()


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def node_order(plan):
    return [n for n in plan.order if n in plan.units]


def test_the_restore_unit_runs_after_sysctl_and_before_the_network(node):
    node.unit("restore.service", "DefaultDependencies=no\nWants=network-pre.target\nBefore=network-pre.target",
              wanted_by="sysinit.target")
    plan = node.plan(ssh=True)
    assert plan.problems == []
    steps = [n for n in plan.order if n in ("systemd-sysctl.service", "restore.service", "systemd-networkd.service",
                                            "ssh.service")]
    assert steps == ["systemd-sysctl.service", "restore.service", "systemd-networkd.service", "ssh.service"]


def test_before_network_pre_without_wants_does_not_hold(node):
    """Nothing else pulls network-pre.target in: without Wants= the ordering is void, and the lab
    shows it by starting the unit after the network."""
    node.unit("restore.service", "DefaultDependencies=no\nBefore=network-pre.target", wanted_by="sysinit.target")
    plan = node.plan()
    assert plan.order.index("restore.service") > plan.order.index("systemd-networkd.service")
    assert "network-pre.target" not in plan.order


def test_default_dependencies_put_a_unit_after_basic_target(node):
    node.unit("late.service", "Before=network-pre.target\nWants=network-pre.target")
    plan = node.plan()
    assert plan.order.index("basic.target") < plan.order.index("late.service") < \
        plan.order.index("systemd-networkd.service")


def test_lab_steps_run_first_then_what_they_wait_for_then_the_rest(node):
    """Of the orders systemd allows, the one where the node's units start as late as they may:
    the unit the network waits for runs before the others, which run after the network."""
    node.unit("restore.service", "DefaultDependencies=no\nWants=network-pre.target\nBefore=network-pre.target",
              wanted_by="sysinit.target")
    node.unit("a-late.service")
    node.unit("b-free.service", "DefaultDependencies=no", wanted_by="sysinit.target")
    order = node.plan(ssh=True).order
    steps = [n for n in order if n.endswith(".service")]
    assert steps == ["systemd-modules-load.service", "systemd-sysctl.service", "restore.service",
                     "systemd-networkd.service", "ssh.service", "a-late.service", "b-free.service"]


def test_targets_start_after_the_units_they_want(node):
    node.unit("wanted.service")
    node.unit("no-defaults.service", "DefaultDependencies=no")
    node.unit("after-it.service", "After=multi-user.target")       # no loop: the target does not wait for it
    order = node.plan().order
    assert order.index("wanted.service") < order.index("multi-user.target")
    assert order.index("no-defaults.service") > order.index(lab_boot.DEFAULT_TARGET)
    assert order.index("after-it.service") > order.index("multi-user.target")


def test_units_order_by_before_and_after_not_by_name(node):
    node.unit("a.service", "After=b.service")
    node.unit("b.service")
    node.unit("c.service", "Before=b.service")
    node.unit("d.service")
    assert node_order(node.plan()) == ["c.service", "b.service", "a.service", "d.service"]


def test_ordering_cycle_is_an_error_naming_it(node):
    node.unit("a.service", "After=b.service")
    node.unit("b.service", "After=c.service")
    node.unit("c.service", "After=a.service")
    node.unit("d.service", "After=a.service")
    plan = node.plan()
    assert plan.problems == ["ordering cycle (each starts before the next):"
                             " a.service -> c.service -> b.service -> a.service"]


def test_cycle_through_an_implicit_dependency(node):
    node.unit("early.service", "Before=sysinit.target")         # DefaultDependencies=yes: After=sysinit.target
    # early -> sysinit.target -> early, or through basic.target (also after sysinit.target)
    assert node.plan().problems == ["ordering cycle (each starts before the next):"
                                    " basic.target -> early.service -> sysinit.target -> basic.target"]


def test_only_enabled_or_wanted_node_units_run(node):
    node.unit("disabled.service", wanted_by=None)
    node.unit("pulled.service", wanted_by=None)
    node.unit("puller.service", "Wants=pulled.service host-only.service")
    node.unit("host.service", host=True)                        # the host's own enabled unit
    node.install("systemd/system/host-only.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n", host=True)
    plan = node.plan()
    assert plan.problems == []
    assert sorted(plan.units) == ["pulled.service", "puller.service"]


def test_units_wanted_by_other_units_and_unreached_targets(node):
    node.unit("first.service")
    node.unit("second.service", wanted_by="first.service")
    node.unit("online.service", wanted_by="network-online.target")
    plan = node.plan()
    assert sorted(plan.units) == ["first.service", "second.service"]
    assert plan.skipped == [("online.service", "wanted by network-online.target, which is not part of the boot")]
    node.unit("puller.service", "Wants=network-online.target")
    assert "online.service" in node.plan().units


def test_masked_unit_is_skipped(node):
    node.link("multi-user.target.wants/masked.service", "/etc/systemd/system/masked.service")
    node.link("masked.service", "/dev/null")
    plan = node.plan()
    assert (plan.problems, plan.units, plan.skipped) == ([], {}, [("masked.service", "masked")])


@pytest.mark.parametrize("setup, message", [
    (lambda n: n.link("multi-user.target.wants/postgresql.service", "/lib/systemd/system/postgresql.service"),
     "multi-user.target.wants/postgresql.service: postgresql.service is not a unit the node installed"),
    (lambda n: n.unit("x.service", wanted_by="remote-fs.target"),
     "remote-fs.target.wants/: the lab's boot does not model remote-fs.target"),
    (lambda n: n.unit("x.service", wanted_by=None) or n.link("multi-user.target.requires/x.service", "../x.service"),
     "dependencies through .requires/ are not emulated"),
    (lambda n: n.unit("x.service") or n.install("systemd/system/x.service.d/override.conf", "[Unit]\n"),
     "x.service.d: drop-in files are not emulated"),
    (lambda n: n.unit("x.service", service="Type=notify\nExecStart=/bin/true\n"),
     "/etc/systemd/system/x.service:4: Type=notify is not emulated"),
    (lambda n: n.unit("systemd-networkd.service"), "overrides a unit the lab models itself"),
    (lambda n: n.unit("x.service", "Conflicts=systemd-networkd.service"), "a conflict with a unit of the boot"),
    (lambda n: n.unit("x.service") or n.link("alias.service", "/etc/systemd/system/x.service")
     or n.link("multi-user.target.wants/alias.service", "/etc/systemd/system/alias.service"),
     "alias.service: an alias of x.service"),
    (lambda n: n.install("sysctl.d/60-x.conf", "kernel.pid_max = 1\n"), r"/etc/sysctl.d/60-x.conf:1: kernel.pid_max"),
])
def test_boot_files_not_emulated_are_named(node, setup, message):
    setup(node)
    plan = node.plan()
    assert any(message in p for p in plan.problems), plan.problems


def test_a_disabled_unit_with_unsupported_settings_is_not_read(node):
    node.unit("bad.service", service="Type=simple\nExecStart=/bin/true\n", wanted_by=None)
    assert node.plan().problems == []


def test_sysctl_files_are_the_nodes_own_conf_files_in_name_order(node):
    node.install("sysctl.d/70-b.conf", "net.b = 2\n")
    node.install("sysctl.d/60-a.conf", "net.a = 1\nnet.b = 1\n")
    node.install("sysctl.d/.hidden.conf", "net.hidden = 1\n")
    node.install("sysctl.d/README", "kernel.x = 1\n")
    node.install("sysctl.d/50-host.conf", "kernel.pid_max = 1\n", host=True)    # not the node's: never read
    plan = node.plan()
    assert plan.problems == []
    assert plan.sysctl_files == ["60-a.conf", "70-b.conf"]
    assert [(s.key, s.value) for s in plan.sysctl] == [("net/a", "1"), ("net/b", "2")]


def test_sysctl_conf_changed_by_the_node_is_refused(node):
    (node.etc / "sysctl.d" / "99-sysctl.conf").symlink_to("../sysctl.conf")      # the host's (Debian)
    node.install("sysctl.conf", "net.x = 1\n")
    assert node.plan().problems == ["/etc/sysctl.conf: changed by the node and read through the host's"
                                    " /etc/sysctl.d/99-sysctl.conf; the lab applies only the node's own"
                                    " /etc/sysctl.d/*.conf"]


def test_whiteouts_are_deletions_not_files(node):
    """A host file the node deleted is a 0/0 character device in the upper layer (needs root)."""
    if os.geteuid() != 0:
        pytest.fail("needs root to create a whiteout")
    os.mknod(node.upper / "sysctl.d" / "60-deleted.conf", 0o600 | 0o020000, 0)
    node.install("sysctl.d/60-deleted.conf", "net.x = 1\n", host=True)
    assert node.plan().sysctl_files == []


# --- running a plan (commands run on this host, in a temporary directory) ------------------

def run_plan(node, tmp_path, capsys):
    plan = node.plan()
    runner = lab_boot.Runner("node9", tmp_path / "journal", {}, sysctl_root=str(tmp_path / "proc"))
    status = runner.run(plan)
    out, err = capsys.readouterr()
    return status, out, err


def test_runner_statuses_lines_and_ignored_failures(node, tmp_path, capsys):
    marks = tmp_path / "marks"
    node.unit("a-ok.service", service="Type=oneshot\nExecStartPre=-/bin/false\nExecStartPre=-/nonexistent/x\n"
                                      "ExecStart=/bin/sh -c 'echo a >>%s'\nExecStartPost=echo post\n" % marks)
    node.unit("b-fail.service", "After=a-ok.service",
              service="Type=oneshot\nExecStart=/bin/sh -c 'echo boom >&2; exit 3'\nExecStart=/bin/sh -c 'echo no >>%s'\n"
                      % marks)
    node.unit("c-cond.service", "After=b-fail.service\nConditionPathExists=/nonexistent",
              service="Type=oneshot\nExecStart=/bin/sh -c 'echo c >>%s'\n" % marks)
    node.unit("d-after.service", "After=b-fail.service", service="Type=oneshot\nExecStart=/bin/sh -c 'echo d >>%s'\n" % marks)
    node.unit("e-missing.service", "After=d-after.service", service="Type=oneshot\nExecStart=no-such-command-here\n")
    status, out, err = run_plan(node, tmp_path, capsys)
    assert status == lab_boot.EXIT_UNIT_FAILED
    assert out.splitlines() == [
        "node9 a-ok.service ok (ExecStartPre=-/bin/false: exit status 1, ignored;"
        " ExecStartPre=-/nonexistent/x: executable /nonexistent/x not found, ignored)",
        "node9 b-fail.service failed (ExecStart=/bin/sh -c 'echo boom >&2; exit 3': exit status 3)",
        "node9 c-cond.service skipped (ConditionPathExists=/nonexistent not met)",
        "node9 d-after.service ok",
        "node9 e-missing.service failed (ExecStart=no-such-command-here: executable no-such-command-here not found"
        " in /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)",
    ]
    assert marks.read_text() == "a\nd\n"
    assert "lab-reboot: node9: b-fail.service| boom" in err
    assert "lab-reboot: node9: b-fail.service failed: ExecStart=/bin/sh -c 'echo boom >&2; exit 3': exit status 3" in err
    journal = (tmp_path / "journal").read_text()
    assert "-- a-ok.service: ExecStartPost=echo post\npost\n" in journal


def test_runner_gives_commands_systemds_path_and_root_directory(node, tmp_path, capsys):
    out_file = tmp_path / "env"
    # "$PATH" inside a word is not systemd's to expand: the shell gets it
    node.unit("env.service", service="Type=oneshot\nExecStart=/bin/sh -c 'pwd >{0}; echo $PATH >>{0}; umask >>{0}'\n"
              .format(out_file))
    status, out = run_plan(node, tmp_path, capsys)[:2]
    assert status == 0, out
    assert out_file.read_text() == "/\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n0022\n"


def test_runner_applies_sysctl_and_reports_missing_keys(node, tmp_path, capsys):
    proc = tmp_path / "proc" / "net" / "ipv4"
    proc.mkdir(parents=True)
    (proc / "ip_forward").write_text("0\n")
    node.install("sysctl.d/60-x.conf", "net.ipv4.ip_forward = 1\nnet.ipv4.absent = 1\n-net.ipv4.absent2 = 1\n")
    status, out, err = run_plan(node, tmp_path, capsys)
    assert status == 0
    assert (proc / "ip_forward").read_text() == "1\n"
    assert out == "node9 systemd-sysctl.service ok (3 settings from 60-x.conf)\n"
    assert err == "lab-reboot: node9: 60-x.conf:2: net.ipv4.absent: no such sysctl, ignored (as systemd-sysctl does)\n"


def test_runner_with_problems_runs_none_of_the_nodes_steps(node, tmp_path, capsys):
    marks = tmp_path / "marks"
    node.unit("ok.service", service="Type=oneshot\nExecStart=/bin/sh -c 'echo ok >>%s'\n" % marks)
    node.unit("bad.service", service="Type=simple\nExecStart=/bin/true\n")
    status, out, err = run_plan(node, tmp_path, capsys)
    assert status == lab_boot.EXIT_NOT_EMULATED
    assert out == "" and not marks.exists()
    assert "lab-reboot: node9: not emulated: /etc/systemd/system/bad.service:4: Type=simple is not emulated" in err


def test_lab_boot_runs_under_the_python_it_is_given():
    """lab-reboot runs it with the venv's python -I -S (no site packages): stdlib only."""
    res = subprocess.run([sys.executable, "-I", "-S", str(REPO / "lab" / "lib" / "lab_boot.py")],
                         capture_output=True, text=True, check=False)
    assert res.returncode == lab_boot.EXIT_LAB_FAILURE and res.stderr.startswith("usage: lab_boot.py I")


def test_runner_limits_a_hung_command_and_is_not_held_by_what_a_unit_leaves(node, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lab_boot, "EXEC_TIMEOUT", 2)
    pid_file = tmp_path / "pid"
    node.unit("a-leaves.service", service="Type=oneshot\nExecStart=/bin/sh -c 'sleep 60 & echo $$! >%s'\n" % pid_file)
    node.unit("b-hangs.service", service="Type=oneshot\nExecStart=/bin/sleep 60\n")
    start = time.monotonic()
    status, out = run_plan(node, tmp_path, capsys)[:2]
    assert time.monotonic() - start < 10
    assert status == lab_boot.EXIT_UNIT_FAILED
    assert out.splitlines() == ["node9 a-leaves.service ok",
                                "node9 b-hangs.service failed (ExecStart=/bin/sleep 60: timed out after 2 s (lab limit))"]
    os.kill(int(pid_file.read_text()), 15)        # left running, as the README says
