"""The local multi-node cluster of launch/local_cluster.sh, for tests: nodes are network
namespaces with their own addresses (198.18.0.0/15), an S3 API server listens on the
bridge address every node reaches."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from typing import Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "launch", "local_cluster.sh")
HOST_IP = "198.18.0.254"


def node_ip(k: int) -> str:
    return f"198.18.0.{k + 1}"


def unavailable() -> Optional[str]:
    """Why network namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is missing"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) for network namespaces"
    probe = f"gdprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class LocalCluster:
    """Drives launch/local_cluster.sh with its own name prefix and directory."""

    def __init__(self, directory: str, prefix: str = "gdt", env: Optional[dict[str, str]] = None) -> None:
        """``env``: more of the nodes' environment, e.g. their object-store credentials (gandist
        never sends those to the workers: each node has its own)."""
        self.settings = {"GANDIST_CLUSTER_PREFIX": prefix, "GANDIST_CLUSTER_DIR": directory}
        self.env = {**os.environ, **(env or {}), **self.settings}
        self.head_address = f"{node_ip(0)}:6379"
        self.dashboard = f"http://{node_ip(0)}:8265"
        self.nodes: set[int] = set()  # the indices of the nodes that are up
        self.used: set[int] = set()  # every index given out (a killed node keeps its namespace)

    def script(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run([SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"local_cluster.sh {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout[-2000:]}{done.stderr[-3000:]}")
        return done.stdout

    def up(self, nodes: int) -> None:
        self.script("up", str(nodes))
        self.nodes = set(range(nodes))
        self.used = set(self.nodes)

    def fresh_index(self) -> int:
        return max(self.used) + 1

    def add(self, k: int) -> None:
        self.script("add", str(k))
        self.nodes.add(k)
        self.used.add(k)

    def kill(self, k: int) -> None:
        self.script("kill", str(k))
        self.nodes.discard(k)

    def down(self) -> None:
        self.script("down")

    def command(self, k: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside node k (e.g. a driver on the head node)."""
        return ["env", *(f"{k}={v}" for k, v in self.settings.items()), SCRIPT, "exec", str(k), *argv]

    def alive_nodes(self) -> int:
        out = self.script("status")
        active = out.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return len(re.findall(r"^\s*\d+ node_", active, flags=re.M))


def worker_ips(driver_output: str) -> dict[int, str]:
    """Rank -> node address of the last worker group Ray Train started, from the table its
    controller prints ("Started training worker group of size N:", then a line per rank,
    "- (ip=198.18.0.2, pid=123) world_rank=0, ...")."""
    groups = driver_output.split("Started training worker group of size")
    size = int(re.match(r"\s*(\d+)", groups[-1]).group(1)) if len(groups) > 1 else 0
    ranks = re.findall(r"\(ip=([\d.]+), pid=\d+\) world_rank=(\d+)", groups[-1])
    return {int(rank): ip for ip, rank in ranks[:size]}
