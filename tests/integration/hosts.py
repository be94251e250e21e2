"""Hosts on one machine: network namespaces joined to the root namespace by veth pairs.

`Network` makes a bridge in the root namespace with one address (the servers' side: a broker
or database started by the test listens there as well as on loopback) and, per `Host`, a
namespace with its own address on that bridge's subnet, reached through a veth pair whose root
end is a bridge port. A host can run commands (`ip netns exec`), lose all its processes
(SIGKILL) and lose its link (`ip link set ... down`: packets vanish, nobody is told), and
everything is removed on leaving, also when the test fails. A `PrivateCluster` is a
PostgreSQL of the test's own listening on the bridge's address (the machine's listens on
loopback only, which a namespace cannot reach).

Traffic stays on this machine: the bridge has no physical port and nothing is forwarded
beyond it. Needs root (CAP_NET_ADMIN) and `ip`; `netns_unavailable()` says why not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from demo.embedded import free_port
from tests.services import wait_until

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
IP = shutil.which("ip", path=_SEARCH_PATH)
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert IP is not None
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check, timeout=20)


def netns_unavailable() -> str | None:
    """Why hosts cannot be made here (for a skip), or None."""
    if IP is None:
        return "needs the `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "needs root to create network namespaces and veth pairs"
    name = f"epchk{secrets.token_hex(3)}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


def cluster_unavailable() -> str | None:
    """Why a `PrivateCluster` cannot be started here (for a skip), or None."""
    if not (PG_BIN / "initdb").exists():
        return f"needs PostgreSQL's initdb and pg_ctl in {PG_BIN}"
    if shutil.which("runuser", path=_SEARCH_PATH) is None:
        return "needs runuser to start PostgreSQL as its own account"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "needs the postgres account to own a private cluster"
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no interface or route of this machine uses."""
    used = _ip("-4", "route", "show", "table", "all").stdout + _ip("-4", "addr").stdout
    for _ in range(200):
        net = ipaddress.IPv4Network(
            f"10.{secrets.randbelow(50) + 200}.{secrets.randbelow(256)}.0/24"
        )
        if f"10.{net.network_address.packed[1]}.{net.network_address.packed[2]}." not in used:
            return net
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test network")


@dataclass
class Host:
    """A namespace with one address, reached through a veth pair (root end `link`)."""

    name: str  # the namespace
    address: str
    link: str  # the veth end in the root namespace (a bridge port)
    inner: str  # the veth end in the namespace
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def popen(
        self, command: Sequence[str], log: IO[bytes], **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """`command` run in the host (its only network is the link), output to `log`."""
        assert IP is not None
        proc = subprocess.Popen(
            [IP, "netns", "exec", self.name, *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            **kwargs,
        )
        self.processes.append(proc)
        return proc

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """`command` run in the host to completion."""
        return _ip("netns", "exec", self.name, *command, check=False)

    def pids(self) -> list[int]:
        """Every process in the namespace (`ip netns pids`)."""
        out = _ip("netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_all(self) -> int:
        """SIGKILL every process of the host, as a power loss would; how many there were."""
        pids = set(self.pids()) | {p.pid for p in self.processes if p.poll() is None}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        return len(pids)

    def cut(self) -> None:
        """The link goes down: from now on packets to and from the host vanish silently."""
        _ip("link", "set", self.link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.link, "up")


class Network:
    """A bridge with an address in the root namespace, and hosts on it. Use as a context
    manager: leaving removes processes, namespaces, veth pairs and the bridge."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.subnet = _free_subnet()
        self.bridge = f"ep{self.tag}br"
        self.address = str(self.subnet.network_address + 1)  # the root namespace's side
        self.hosts: list[Host] = []
        self._made_bridge = False

    def __enter__(self) -> Network:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._made_bridge = True
            _ip("addr", "add", f"{self.address}/{self.subnet.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def add_host(self) -> Host:
        n = len(self.hosts) + 1
        host = Host(
            name=f"ep{self.tag}h{n}",
            address=str(self.subnet.network_address + 10 + n),
            link=f"ep{self.tag}v{n}",
            inner=f"ep{self.tag}i{n}",
        )
        self.hosts.append(host)  # before anything is made: close() removes what was
        prefix = self.subnet.prefixlen
        _ip("netns", "add", host.name)
        _ip("link", "add", host.link, "type", "veth", "peer", "name", host.inner)
        _ip("link", "set", host.inner, "netns", host.name)
        _ip("link", "set", host.link, "master", self.bridge)
        _ip("link", "set", host.link, "up")
        inside = ("netns", "exec", host.name, IP or "ip")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "addr", "add", f"{host.address}/{prefix}", "dev", host.inner)
        _ip(*inside, "link", "set", host.inner, "up")
        wait_until(
            lambda: (
                host.run("ping", "-c1", "-W1", self.address).returncode == 0
                if shutil.which("ping")
                else True
            ),
            15,
            f"{host.name} to reach {self.address}",
            every=0.2,
        )
        return host

    def close(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(Exception):
                host.kill_all()
            _ip("netns", "del", host.name, check=False)  # takes the veth pair with it
            _ip("link", "del", host.link, check=False)
        if self._made_bridge:
            _ip("link", "del", self.bridge, check=False)
            self._made_bridge = False


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (initdb, pg_ctl) on a free port, listening on
    loopback and on `addresses`, trusting connections from `subnet`. Durability settings are
    off: the faults under test are the ingest's and the network's, not the database's."""

    def __init__(self, addresses: Sequence[str], subnet: str) -> None:
        self.port = free_port()
        self.user = "postgres"
        # Owned by the server's account, which cannot enter pytest's root-only directories.
        self.directory = Path(tempfile.mkdtemp(prefix="envpatrol-pg-"))
        self.addresses = ["127.0.0.1", *addresses]
        self.subnet = subnet
        self.log_path = self.directory / "server.log"
        self._started = False

    def _as_owner(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", self.user, "--", *command],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )

    def __enter__(self) -> PrivateCluster:
        try:
            owner = pwd.getpwnam(self.user)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            data = self.directory / "data"
            self._as_owner(
                str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                "--no-sync", "-E", "UTF8", "--locale", "C",
            )  # fmt: skip
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.subnet} trust\n")
            options = (
                f"-p {self.port} -k {self.directory}"
                f" -c listen_addresses='{','.join(self.addresses)}'"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                " -c shared_buffers=32MB -c max_connections=40"
            )
            self._as_owner(
                str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.log_path),
                "-o", options, "-w", "-t", "60", "start",
            )  # fmt: skip
            self._started = True
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def url(self, host: str = "127.0.0.1", database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{host}:{self.port}/{database}"

    def close(self) -> None:
        if self._started:
            with contextlib.suppress(subprocess.SubprocessError):
                self._as_owner(
                    str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"),
                    "-m", "immediate", "-w", "-t", "30", "stop",
                )  # fmt: skip
            self._started = False
        shutil.rmtree(self.directory, ignore_errors=True)
