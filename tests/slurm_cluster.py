"""A one-node Slurm cluster on this machine, for tests: Debian's slurm-wlm and munge, daemons in a temp dir.

As root, missing packages are installed with apt (``apt-get update`` once, then ``apt-get install slurm-wlm
munge``). ``munged --force`` is started unless a munge daemon already answers; ``slurmctld`` and ``slurmd``
read a ``slurm.conf`` written under the temp dir (the node line is ``slurmd -C``'s, so it matches the
hardware), with ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``,
``JobAcctGatherType=jobacct_gather/none`` (no cgroups, no accounting database) and free ports. Clients
(``sbatch``, ``squeue``, submitit) find it through ``$SLURM_CONF``. Everything started is stopped by its pid
file. docs/scale-out.md gives the same steps by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def why_not_available() -> str | None:
    """None when a local cluster can be started here (installing what is missing), else the reason."""
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd runs jobs as their user; apt installs the packages)"
    if all(shutil.which(t) for t in ("slurmctld", "slurmd", "munged", "sbatch")):
        return None
    if not shutil.which("apt-get"):
        return "slurm-wlm is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            return f"could not install slurm-wlm and munge: {' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _munge_answers() -> bool:
    try:
        token = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if token.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=token.stdout, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class LocalSlurm:
    """``with LocalSlurm(tmp) as cluster:`` a running one-node cluster; ``cluster.env`` for its clients."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.pid_files: list[Path] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_conf(self) -> None:
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        host = node.split()[0].split("=", 1)[1]
        for d in ("state", "spool", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=ferkit-test", f"SlurmctldHost={host}", "SlurmUser=root", "AuthType=auth/munge",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none", "ReturnToService=2",
            "SchedulerType=sched/backfill", "MinJobAge=600",
            f"{node} State=UNKNOWN", f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")

    def start(self) -> None:
        self.write_conf()
        if not _munge_answers():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            subprocess.run(["munged", "--force", f"--pid-file={self.root / 'munged.pid'}"], check=True,
                           capture_output=True, timeout=30)
            self.pid_files.append(self.root / "munged.pid")
            self._wait(_munge_answers, "munged did not answer")
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(self.conf)], check=True, capture_output=True, env=self.env, timeout=60)
            self.pid_files.append(self.root / f"{daemon}.pid")
        self._wait(self._node_idle, "the Slurm node did not become idle (see " + str(self.root / "log") + ")")

    def _node_idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env, timeout=30)
        return out.returncode == 0 and "idle" in out.stdout

    @staticmethod
    def _wait(ready, message: str, timeout: float = 60) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(message)

    def stop(self) -> None:
        """SIGTERM every daemon this started, by its pid file, newest first; wait for each to go."""
        for pid_file in reversed(self.pid_files):
            try:
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                continue
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
        self.pid_files.clear()

    def __enter__(self) -> LocalSlurm:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
