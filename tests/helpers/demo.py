"""``circnode demo`` as a real process, as a user runs it, in a folder and on ports of the test's own."""
import json
import os
import subprocess
import sys
import time

import requests

from node.demo import supervisor

DEMO_PORTS = 6  # three nodes and their three IdPs


def free_port_block(count=DEMO_PORTS):
    return supervisor.free_port_block(count)


class Demo:
    """``circnode demo --dir FOLDER --port-base BASE`` running; its output beside FOLDER."""

    def __init__(self, folder, base):
        self.folder, self.base = str(folder), base
        self.out_path = f"{self.folder.rstrip('/')}.{time.monotonic_ns()}.out"  # a second demo here writes its own
        with open(self.out_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "demo", "--dir", self.folder, "--port-base", str(base)],
                stdout=out, stderr=subprocess.STDOUT)

    def output(self):
        with open(self.out_path, errors="replace") as handle:
            return handle.read()

    def wait_running(self, timeout=120):
        """Wait for 'is running'; fail with the output if the demo ends first."""
        deadline = time.monotonic() + timeout
        while "network is running" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the demo did not start (status {self.process.poll()}):\n{self.output()}")
            time.sleep(0.2)

    def wait_exit(self, timeout=60):
        return self.process.wait(timeout=timeout)

    def url(self, index):
        return f"http://127.0.0.1:{self.base + index}"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def token(self, code):
        with open(os.path.join(self.folder, "network.json")) as handle:
            return {entry["code"]: entry["token"] for entry in json.load(handle)}[code]

    def api(self, index, code, method, path, **kwargs):
        return requests.request(method, self.url(index) + path, timeout=10,
                                headers={"Authorization": f"Bearer {self.token(code)}"}, **kwargs)
