"""Stand-in for ansible-test's get-pip download, for machines that reach only a package
index: the interpreter's own ensurepip, then the requested pip from the index pip is
configured with (ansible-test blanks PIP_CONFIG_FILE for the bootstrap; on such machines
the index and its certificate live in pip.conf)."""
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap()
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
env = {k: v for k, v in os.environ.items() if k != "PIP_CONFIG_FILE"}
subprocess.check_call([sys.executable, "-m", "pip", "install", *args], env=env)
