"""A one-node Slurm cluster on this machine, for the tests of the cluster path (and by hand).

    python tests/slurm_cluster.py [--dir DIR] -- COMMAND ...   # COMMAND runs with the cluster up

Starts munge (its own key and socket), slurmctld and slurmd from Debian's ``slurm-wlm`` on localhost:
twice the machine's cores and most of its memory as one node in one partition, ``test``; no accounting
database (Snakemake's Slurm executor then queries job states with ``squeue``, which needs
``MinJobAge`` longer than its polling: 600 s here). State, logs and munge's key and socket live in
one folder. The config is written to Slurm's default place, ``/etc/slurm/slurm.conf``, and removed
on exit: inside a job the executor deletes every ``SLURM_*`` variable, ``SLURM_CONF`` included,
before its ``srun``, which then finds no other. An existing ``slurm.conf`` there (a real
cluster's) is never touched: the cluster refuses to start. Everything started is stopped on
exit, jobs cancelled first. Needs root (slurmd runs jobs as their user; munged runs as ``munge``).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

PARTITION = "test"
CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = CONF.with_name("gres.conf")
#: GPUs the node declares, so that jobs asking gres=gpu:N run here: plain files stand in for the devices
#: (Slurm's gpu plugin counts a node's GPUs by their files; nothing opens them)
GPUS = 2
DAEMONS = ("munged", "slurmctld", "slurmd")
_SBIN = ("/usr/sbin", "/usr/bin")


def snakemake_args(profile: Path) -> list:
    """What a user of this cluster adds to the repo's Slurm profile: its partition, no account, and (no
    accounting database) job states from squeue; a short first status check, since the test jobs take seconds."""
    return ["--profile", str(profile), "--default-resources", f"slurm_partition={PARTITION}", "--slurm-no-account",
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"]


def missing() -> Optional[str]:
    """Why a cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "needs root (slurmd and munged)"
    absent = [d for d in DAEMONS + ("sbatch", "squeue", "sinfo") if not _which(d)]
    if absent:
        return f"{', '.join(absent)} not installed (Debian: apt-get install slurm-wlm munge)"
    if CONF.exists() and "ClusterName=aprotest" not in CONF.read_text():
        return f"{CONF} exists and is not this test cluster's: not touched"
    return None


def _which(name: str) -> Optional[str]:
    return shutil.which(name) or next((f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None)


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    return int(total_kb / 1024 * 0.8)  # leave the rest to the system and the Snakemake process


def _config(root: Path, node: str, cpus: int, memory_mb: int) -> str:
    return f"""\
ClusterName=aprotest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{GPUS} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _wait(what: str, check, timeout: float = 60.0, log: Optional[Path] = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"slurm_cluster: {what} not ready after {timeout:.0f} s\n{tail}")


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(40):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.25)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def one_node_cluster(root: Optional[Path] = None) -> Iterator[dict]:
    """Starts the cluster in ``root`` (a new temporary folder by default) and yields the environment its
    commands need (``os.environ`` with ``SLURM_CONF``); stops it, and removes a temporary folder, on exit."""
    reason = missing()
    if reason:
        raise RuntimeError(f"slurm_cluster: {reason}")
    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="apro-slurm-")) if own_root else Path(root).resolve()
    munge = root / "munge"
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # munged's socket folder must be reachable by every user (so must root's parents), its key by munge only
    os.chmod(root, 0o755)
    os.chmod(munge, 0o755)
    key = munge / "key"
    key.write_bytes(os.urandom(128))
    shutil.chown(munge, "munge", "munge")
    shutil.chown(key, "munge", "munge")
    key.chmod(0o600)
    node = socket.gethostname().split(".")[0]
    conf = CONF
    conf.parent.mkdir(parents=True, exist_ok=True)
    # twice the cores as CPUs (config_overrides lets the node claim them): jobs spend much of their seconds
    # starting up and waiting for the executor's polling, which overlap; a job's CPUs are still its threads
    conf.write_text(_config(root, node, 2 * (os.cpu_count() or 1), _memory_mb()))
    for i in range(GPUS):
        (root / f"gpu{i}").touch()
    GRES_CONF.write_text(f"NodeName={node} Name=gpu File={root}/gpu[0-{GPUS - 1}]\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged"), f"--socket={munge}/socket",
                        f"--key-file={key}", f"--pid-file={munge}/pid", f"--log-file={munge}/log",
                        f"--seed-file={munge}/seed"], check=True, env=env)
        started.append(munge / "pid")
        subprocess.run([_which("slurmctld"), "-f", str(conf)], check=True, env=env)
        started.append(root / "slurmctld.pid")
        subprocess.run([_which("slurmd"), "-f", str(conf), "-N", node], check=True, env=env)
        started.append(root / "slurmd.pid")

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.strip() == "idle"

        _wait("the node (sinfo: idle)", idle, log=root / "log" / "slurmd.log")
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
        for pid_file in reversed(started):
            _stop(pid_file)
        conf.unlink(missing_ok=True)
        GRES_CONF.unlink(missing_ok=True)
        if own_root:
            shutil.rmtree(root, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="the cluster's folder (default: a temporary one, removed after)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...: run with the cluster up")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with one_node_cluster(args.dir) as env:
        print(f"slurm_cluster: up, SLURM_CONF={env['SLURM_CONF']}, partition {PARTITION}", flush=True)
        return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
