"""Real node processes on loopback for the multi-node tests.

Built with ``node.demo.network.make_network`` (the same code the demo runs), each
node a ``circnode run`` child process that a test can stop, SIGKILL, restart
or start with a shifted clock.
"""
import os
import signal
import socket
import subprocess
import sys

import requests

from node.demo.network import DEMO_NODES, make_network, start_idp, start_node, wait_healthy, wait_idp
from tests.faultproxy import FaultProxy


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Network:
    def __init__(self, base_dir, nodes=DEMO_NODES[:2], items=50, patrons=10, extra_config="", proxied=False,
                 overrides=None, idps=False):
        """With PROXIED, each node's base_url is a FaultProxy in front of it (``net.proxy[CODE]``).

        With IDPS each institution also has a demo identity provider (``net.start_idp(CODE)``).
        """
        self.base_dir = str(base_dir)
        self.proxy = {}
        listen = [free_port() for _ in nodes]
        if proxied:
            for (code, _), port in zip(nodes, listen):
                self.proxy[code] = FaultProxy(port)
            ports = [self.proxy[code].port for code, _ in nodes]
        else:
            ports = listen
        self.infos = {info.code: info for info in make_network(
            self.base_dir, nodes=nodes, items=items, patrons=patrons, extra_config=extra_config, ports=ports,
            overrides=overrides, idps=idps)}
        for info, port in zip(self.infos.values(), listen):
            info.listen_port = port
        self.processes = {}

    def info(self, code):
        return self.infos[code]

    def start(self, code, env=None):
        info = self.infos[code]
        process = start_node(info, env=env)
        self.processes[code] = process
        wait_healthy(info, process=process)
        return process

    def start_idp(self, code):
        """Start CODE's demo identity provider (``python -m node.demo.idp``); stopped with the nodes."""
        info = self.infos[code]
        process = start_idp(info)
        self.processes[f"{code}-idp"] = process
        wait_idp(info, process=process)
        return process

    def start_all(self):
        for code in self.infos:
            self.start(code)

    def stop(self, code, sig=signal.SIGTERM):
        process = self.processes.pop(code, None)
        if process and process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(timeout=15)

    def kill(self, code):
        """SIGKILL: no clean shutdown, no chance to finish anything."""
        self.stop(code, signal.SIGKILL)

    def stop_all(self):
        for code in list(self.processes):
            self.stop(code)
        for proxy in self.proxy.values():
            proxy.close()

    def url(self, code, path=""):
        """CODE's own address (not through its proxy): where its desk and API are used."""
        return self.infos[code].direct_url + path

    def api(self, code, method, path, json=None, timeout=10):
        """Call CODE's JSON API with its admin token."""
        return requests.request(method, self.url(code, path), json=json, timeout=timeout,
                                headers={"Authorization": f"Bearer {self.infos[code].token}"})

    def cli(self, code, *args, input=None, env=None):
        """Run ``circnode --config <CODE's ini> ARGS`` and return the CompletedProcess."""
        return subprocess.run([sys.executable, "-m", "node.cli", "--config", self.infos[code].config, *args],
                              capture_output=True, text=True, input=input, timeout=120,
                              env={**os.environ, **(env or {})})
