"""Runs INSIDE a lab (started by test_lab_reboot.py): reboots nodes with and without --keep-disk and
records what it sees as JSON in $LAB_OUT/reboot.json; the assertions are in test_lab_reboot.py.

    lab/run --nodes 3 -- python tests/labtool/lab_reboot_scenario.py main
    lab/run --nodes 2 --ssh -- python tests/labtool/lab_reboot_scenario.py ssh

The unit files are realistic (test_lab_reboot.py checks them with `systemd-analyze verify` on the
host); they write markers under /var/lib/lab-test of the node.
"""

import json
import os
import subprocess
import sys
import time

MARKS = "/var/lib/lab-test"
UNIT_DIR = "/etc/systemd/system"
# Harmless policies (they block UDP to the discard port) to restore, or to see go at a reboot.
NODE2_POLICY = "src 10.77.0.2/32 dst 10.77.0.1/32 proto udp dport 9 dir out priority 100 action block"
NODE1_POLICY = "src 10.77.0.1/32 dst 10.77.0.3/32 proto udp dport 9 dir out priority 100 action block"


def oneshot(unit, *commands, wanted_by="multi-user.target"):
    return ("[Unit]\nDescription=lab-reboot test unit\n%s\n[Service]\nType=oneshot\nRemainAfterExit=yes\n%s\n"
            "[Install]\nWantedBy=%s\n" % (unit, "".join(c + "\n" for c in commands), wanted_by))


def mark(name):
    """A command that appends the unit's name to the order file and creates its marker."""
    return "ExecStart=/bin/sh -c 'echo %s >>%s/order && touch %s/%s'" % (name, MARKS, MARKS, name)


# name -> (unit file text, where it is enabled or None)
UNITS = {
    # What the mesh role will install: restore policies from a file, before the network.
    "lab-restore.service": (oneshot(
        "DefaultDependencies=no\nWants=network-pre.target\nBefore=network-pre.target shutdown.target\n"
        "After=local-fs.target\nConflicts=shutdown.target\nConditionPathExists=%s/policies" % MARKS,
        "ExecStart=ip -batch %s/policies" % MARKS,
        "ExecStartPost=/bin/sh -c 'ip -o addr show dev eth1 >%s/eth1-at-restore'" % MARKS,
        mark("lab-restore"), wanted_by="sysinit.target"), "sysinit.target"),
    "lab-online.service": (oneshot(
        "Wants=network-online.target\nAfter=network-online.target",
        "ExecStart=/bin/sh -c 'ip -o addr show dev eth1 >%s/eth1-at-online'" % MARKS, mark("lab-online")),
        "multi-user.target"),
    "lab-order-a.service": (oneshot("After=lab-order-b.service", mark("lab-order-a")), "multi-user.target"),
    "lab-order-b.service": (oneshot("", mark("lab-order-b")), "multi-user.target"),
    "lab-order-c.service": (oneshot("Before=lab-order-b.service", mark("lab-order-c")), "multi-user.target"),
    "lab-cond.service": (oneshot("ConditionPathExists=%s/absent" % MARKS, mark("lab-cond")), "multi-user.target"),
    "lab-cond-negated.service": (oneshot("ConditionPathExists=!%s/absent" % MARKS, mark("lab-cond-negated")),
                                 "multi-user.target"),
    "lab-ignore.service": (oneshot("", "ExecStart=-/bin/false", mark("lab-ignore")), "multi-user.target"),
    "lab-disabled.service": (oneshot("", mark("lab-disabled")), None),
    "lab-fail.service": (oneshot("", "ExecStart=/bin/sh -c 'echo boom >&2; exit 3'", mark("lab-fail")),
                         "multi-user.target"),
    "lab-after-fail.service": (oneshot("After=lab-fail.service", mark("lab-after-fail")), "multi-user.target"),
    "lab-simple.service": ("[Unit]\nDescription=lab-reboot test unit\n\n[Service]\nType=simple\n%s\n\n"
                           "[Install]\nWantedBy=multi-user.target\n" % mark("lab-simple"), "multi-user.target"),
    "lab-cycle-a.service": (oneshot("After=lab-cycle-b.service", mark("lab-cycle-a")), "multi-user.target"),
    "lab-cycle-b.service": (oneshot("After=lab-cycle-a.service", mark("lab-cycle-b")), "multi-user.target"),
    "lab-one.service": (oneshot("DefaultDependencies=no\nWants=network-pre.target\nBefore=network-pre.target",
                                "ExecStart=ip -batch %s/policies" % MARKS, wanted_by="sysinit.target"),
                        "sysinit.target"),
    # Enabled on the lab's root /etc (what every node sees through its overlay): never run.
    "lab-host.service": (oneshot("", mark("lab-host")), "multi-user.target"),
}
# Whose own value must not reach a node: written to the lab's root /etc/sysctl.d.
HOST_SYSCTL = "net.ipv4.conf.all.arp_filter = 1\n"
NODE_SYSCTL = "net.ipv4.conf.all.arp_ignore = 2\nnet/ipv4/conf/eth1/arp_announce = 2\n"
SYSCTLS = ["net.ipv4.ip_forward", "net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.eth1.arp_announce",
           "net.ipv4.conf.all.arp_filter"]
DISK = ["/etc/lab-disk", "/root/lab-disk", "/var/lab-disk", "/tmp/lab-disk", "/run/lab-disk"]


def run(*cmd, check=True):
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if check and res.returncode != 0:
        raise SystemExit("%r exited %d\n%s%s" % (cmd, res.returncode, res.stdout, res.stderr))
    return res


def sh(node, script, check=True):
    return run("lab-exec", node, "sh", "-c", script, check=check).stdout


def install(node, name):
    text, wanted_by = UNITS[name]
    script = "mkdir -p %s && cat >%s/%s" % (MARKS, UNIT_DIR, name)
    run("lab-exec", node, "sh", "-c", script + " <<'EOF'\n" + text + "EOF\n")
    if wanted_by:
        sh(node, "mkdir -p {d}/{w}.wants && ln -sf {d}/{n} {d}/{w}.wants/{n}".format(d=UNIT_DIR, w=wanted_by, n=name))


def disable(node, name):
    sh(node, "rm -f %s/*.wants/%s" % (UNIT_DIR, name))


def reboot(*args):
    start = time.monotonic()
    res = run("lab-reboot", *args, check=False)
    return {"rc": res.returncode, "stdout": res.stdout, "stderr": res.stderr,
            "seconds": round(time.monotonic() - start, 2)}


def state(node):
    """What a test looks at in a node."""
    script = ("for f in %s; do [ -e $f ] && echo $f; done; echo --;" % " ".join(DISK)
              + " ls -A /tmp; echo --; ls -A /run; echo --; ls -A /lab/nodes/%s/tmp.u; echo --;" % node
              + " cat /proc/sys/kernel/random/boot_id; echo --; ip xfrm policy list; echo --;"
              + " sysctl -n %s; echo --;" % " ".join(SYSCTLS)
              + " ls %s 2>/dev/null; echo --; cat %s/order 2>/dev/null; echo --;" % (MARKS, MARKS)
              + " cat %s/eth1-at-restore 2>/dev/null; echo --; cat %s/eth1-at-online 2>/dev/null; echo --;" % (MARKS, MARKS)
              + " ip -o -4 addr show dev eth1")
    lines = [part.splitlines() for part in sh(node, script).split("--\n")]
    return {"disk": lines[0], "tmp": lines[1], "run": lines[2], "tmp_upper": lines[3], "boot_id": lines[4][0],
            "xfrm_policies": lines[5], "sysctl": dict(zip(SYSCTLS, lines[6])), "marks": lines[7],
            "order": lines[8], "eth1_at_restore": lines[9], "eth1_at_online": lines[10], "eth1": lines[11]}


def scenario_main():
    result = {"control_tmp": sorted(os.listdir("/tmp"))}
    # Files of the lab's root (the host's, for the nodes): seen by every node, never applied.
    os.makedirs(UNIT_DIR + "/multi-user.target.wants", exist_ok=True)
    with open(UNIT_DIR + "/lab-host.service", "w") as handle:
        handle.write(UNITS["lab-host.service"][0])
    os.symlink(UNIT_DIR + "/lab-host.service", UNIT_DIR + "/multi-user.target.wants/lab-host.service")
    with open("/etc/sysctl.d/60-lab-host.conf", "w") as handle:
        handle.write(HOST_SYSCTL)
    result["fresh"] = state("node3")

    # node1: the disk persists, kernel state and /run /tmp do not; a plain reboot wipes the disk.
    sh("node1", "for f in %s; do echo disk >$f; done" % " ".join(DISK)
       + "; sysctl -qw net.ipv4.ip_forward=1 && ip xfrm policy add %s" % NODE1_POLICY
       + " && printf '%s' >/etc/sysctl.d/60-lab.conf" % NODE_SYSCTL.replace("\n", "\\n"))
    result["node1_before"] = state("node1")
    result["node1_keep"] = reboot("--keep-disk", "node1")
    result["node1_after_keep"] = state("node1")
    result["node1_plain"] = reboot("node1")
    result["node1_after_plain"] = state("node1")

    # node2: the units run in their order, conditions hold, failures of '-' lines are ignored.
    for name in ("lab-restore.service", "lab-online.service", "lab-order-a.service", "lab-order-b.service",
                 "lab-order-c.service", "lab-cond.service", "lab-cond-negated.service", "lab-ignore.service",
                 "lab-disabled.service"):
        install("node2", name)
    sh("node2", "echo 'xfrm policy add %s' >%s/policies" % (NODE2_POLICY, MARKS))
    result["node2_before"] = state("node2")
    result["node2_keep"] = reboot("--keep-disk", "node2")
    result["node2_after_keep"] = state("node2")

    # node3: a failing unit, then boot files the lab refuses.
    install("node3", "lab-fail.service")
    install("node3", "lab-after-fail.service")
    result["node3_fail"] = reboot("--keep-disk", "node3")
    result["node3_after_fail"] = state("node3")
    disable("node3", "lab-fail.service")
    sh("node3", "rm -f %s/*" % MARKS)
    install("node3", "lab-simple.service")
    sh("node3", "echo 'kernel.pid_max = 4194304' >/etc/sysctl.d/70-lab-kernel.conf")
    result["node3_unsupported"] = reboot("--keep-disk", "node3")
    result["node3_after_unsupported"] = state("node3")
    disable("node3", "lab-simple.service")
    sh("node3", "rm /etc/sysctl.d/70-lab-kernel.conf")
    install("node3", "lab-cycle-a.service")
    install("node3", "lab-cycle-b.service")
    result["node3_cycle"] = reboot("--keep-disk", "node3")

    # Two nodes at once.
    sh("node2", "rm -f %s/order" % MARKS)
    result["both_before"] = {n: state(n) for n in ("node1", "node2")}
    sh("node1", "echo disk >/etc/lab-disk && printf '%s' >/etc/sysctl.d/60-lab.conf" % NODE_SYSCTL.replace("\n", "\\n"))
    result["both_keep"] = reboot("--keep-disk", "node1", "node2")
    result["both_after"] = {n: state(n) for n in ("node1", "node2")}

    # Timing: one unit (node1), and a plain reboot for comparison.
    install("node1", "lab-one.service")
    sh("node1", "echo 'xfrm policy add %s' >%s/policies" % (NODE1_POLICY, MARKS))
    timing = result["timing"] = {}
    for kind, args in (("keep_one_unit", ("--keep-disk", "node1")), ("plain", ("node1",))):    # plain wipes the unit
        timing[kind] = [reboot(*args), reboot(*args), reboot(*args)]
    return result


def scenario_ssh():
    install("node2", "lab-restore.service")
    sh("node2", "echo 'xfrm policy add %s' >%s/policies" % (NODE2_POLICY, MARKS))
    ssh = ["ssh", "-i", "/lab/ssh/id_ed25519", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "root@10.77.0.2", "cat /proc/sys/kernel/random/boot_id"]
    before = run(*ssh).stdout.strip()
    keep = reboot("--keep-disk", "node2")
    after = run(*ssh, check=False)
    return {"before": before, "keep": keep, "ssh_rc": after.returncode, "ssh_boot_id": after.stdout.strip(),
            "state": state("node2")}


def main():
    scenarios = {"main": scenario_main, "ssh": scenario_ssh}
    if len(sys.argv) != 2 or sys.argv[1] not in scenarios:
        raise SystemExit("usage: lab_reboot_scenario.py main|ssh")
    result = scenarios[sys.argv[1]]()
    with open(os.path.join(os.environ["LAB_OUT"], "reboot.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    print("scenario %s done" % sys.argv[1])


if __name__ == "__main__":
    main()
