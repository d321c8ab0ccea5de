"""Tests of lab/run itself, run on the HOST (each boots a UML lab, ~3 s):

    build/venv/bin/pytest -q tests/labtool
"""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_RUN = REPO / "lab" / "run"
UML = os.environ.get("LAB_UML", "/usr/bin/linux.uml")

pytestmark = pytest.mark.skipif(not os.access(UML, os.X_OK), reason=f"needs {UML} (user-mode-linux)")


def lab_run(tmp_path, *args, env=None, timeout=180):
    full_env = dict(os.environ, LAB_OUT_BASE=str(tmp_path), **(env or {}))
    return subprocess.run([str(LAB_RUN), *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def out_dir(stderr):
    for line in stderr.splitlines():
        if line.startswith("lab: output in "):
            return line[len("lab: output in "):]
    raise AssertionError(f"no output folder announced:\n{stderr}")


def uml_processes(out):
    """Host processes of the UML instance whose output folder is `out`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"uml_dir={out}/uml".encode() in cmdline:
            found.append(int(pid))
    return found


def test_host_untouched_argv_env_and_cwd_pass_through(tmp_path):
    marker = f"lab-host-test-{uuid.uuid4().hex}"
    script = (f"touch /etc/{marker} /usr/{marker} && test -e /etc/{marker} && test -e /usr/{marker}"
              ' && printf "<%s>\\n" "$@" && echo "cwd=$PWD" && echo "env=$LAB_ENV_PROBE"'
              ' && echo "nodes=$LAB_NODES" && echo "ansible=$(command -v ansible-playbook)"'
              ' && cat <(echo process substitution)')
    args = ["a b", "it's", '"quoted"', "", "$HOME", "*", "tab\there", "two\nlines", "--", "-n"]
    res = lab_run(tmp_path, "--nodes", "1", "--", "bash", "-c", script, "_", *args,
                  env={"LAB_ENV_PROBE": "v a l'ue", "LAB_NOT_FORWARDED": "x"})
    assert res.returncode == 0, res.stdout + res.stderr
    expected = [f"<{a}>" for a in args]
    expected = "\n".join(expected).split("\n") + [
        f"cwd={REPO}", "env=v a l'ue", "nodes=1", f"ansible={REPO}/build/venv/bin/ansible-playbook",
        "process substitution"]
    assert res.stdout.split("\n")[:-1] == expected      # COMMAND's output only, no boot noise, no \r
    assert not Path(f"/etc/{marker}").exists()
    assert not Path(f"/usr/{marker}").exists()
    out = Path(out_dir(res.stderr))
    assert out.parent == tmp_path
    assert (out / "rc").read_text().strip() == "0"


def test_exit_status_and_stderr_propagate(tmp_path):
    res = lab_run(tmp_path, "--nodes", "0", "--", "sh", "-c", "echo failing; echo oops >&2; exit 7")
    assert res.returncode == 7, res.stdout + res.stderr
    assert res.stdout == "failing\n"
    assert "oops\n" in res.stderr


def test_usage_error_is_125(tmp_path):
    res = lab_run(tmp_path, "--nodes", "many", "--", "true")
    assert res.returncode == 125
    assert "--nodes" in res.stderr


def test_timeout_powers_off(tmp_path):
    start = time.monotonic()
    res = lab_run(tmp_path, "--nodes", "1", "--timeout", "5", "--", "sleep", "100", timeout=120)
    elapsed = time.monotonic() - start
    assert res.returncode == 124, res.stdout + res.stderr
    assert elapsed < 60
    assert uml_processes(out_dir(res.stderr)) == []


def test_sigterm_powers_off_and_leaves_no_process(tmp_path):
    env = dict(os.environ, LAB_OUT_BASE=str(tmp_path))
    proc = subprocess.Popen([str(LAB_RUN), "--nodes", "2", "--", "sleep", "300"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = Path(out_dir(proc.stderr.readline()))
        deadline = time.monotonic() + 60
        while not (out / "timings").exists():       # written once the nodes are up
            assert time.monotonic() < deadline, "lab did not come up"
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        assert uml_processes(str(out))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 128 + signal.SIGTERM
    assert uml_processes(str(out)) == []
