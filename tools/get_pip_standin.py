# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the get-pip script that ansible-test downloads to bootstrap its virtualenvs.

Its download host is not reachable from the machines this project is tested on, so
tools/ansible-test-bootstrap places this file where ansible-test caches the download.
ansible-test runs it inside a fresh virtualenv as ``python get_pip.py [options] pip==X
--no-setuptools --no-wheel``: bootstrap pip from the interpreter's own ensurepip, then install
the pinned packages from the package index.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY_OPTIONS = frozenset(("--no-setuptools", "--no-wheel"))


def main() -> None:
    pip_arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + pip_arguments)


if __name__ == "__main__":
    main()
