"""GPUs for the jobs that share one machine: ``apro with-gpus N -- COMMAND``.

Snakemake's ``gpus`` resource only counts: two 4-GPU trainings it starts side by side on an 8-GPU
machine would both see GPUs 0-3. This pool hands each job its own devices. A job takes N device
ids from a machine-wide pool under a file lock, marked with its process id, and becomes COMMAND
(``exec``, the same process) with ``CUDA_VISIBLE_DEVICES`` set to them; torchrun and its workers
inherit it. When that process ends, however it ends (``kill -9`` too), the next job that asks
finds its holder gone and takes the devices back. A job waits while too few devices are free;
asking for more than the machine has is an error.

The devices: ``APRO_GPU_IDS`` (e.g. ``0,1,2,3``: the tests simulate GPUs with it), else the
``CUDA_VISIBLE_DEVICES`` the workflow was started with, else every GPU torch sees. The pool's
state lives in ``APRO_GPU_POOL`` (default: ``<tmp>/apro-gpu-pool-<uid>``), one per machine and
user, so separate workflows on one machine share it. Under Slurm (``SLURM_JOB_ID`` set) the
scheduler's allocation already chose the devices: COMMAND runs as it is.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from apro.errors import InputError

__all__ = ["machine_devices", "pool_dir", "GpuPool", "exec_with_gpus"]


def machine_devices(environ=os.environ) -> List[str]:
    """The device ids of this machine's pool (see the module's docstring)."""
    for variable in ("APRO_GPU_IDS", "CUDA_VISIBLE_DEVICES"):
        value = environ.get(variable)
        if value is not None:
            return [d.strip() for d in value.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def pool_dir(environ=os.environ) -> Path:
    return Path(environ.get("APRO_GPU_POOL") or Path(tempfile.gettempdir()) / f"apro-gpu-pool-{os.getuid()}")


def _start_time(pid: int) -> Optional[str]:
    """The start time of a running process (field 22 of /proc/<pid>/stat), which tells a holder from a later
    process with its pid; None once it ended (a zombie, not yet reaped by its parent, has ended too)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


class GpuPool:
    """The pool of ``devices`` whose state (device -> holder) is ``<folder>/pool.json``, guarded by ``pool.lock``."""

    def __init__(self, devices: Sequence[str], folder: Path):
        self.devices = list(devices)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked_state(self) -> Iterator[dict]:
        with open(self.folder / "pool.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.folder / "pool.json"
            try:
                state = json.loads(path.read_text()) if path.exists() else {}
            except json.JSONDecodeError:
                state = {}  # a torn write cannot happen (atomic rename); a hand-edited file is reset
            # holders that died give their devices back
            state = {d: h for d, h in state.items() if _start_time(h["pid"]) == h["start"]}
            yield state
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, path)

    def try_acquire(self, count: int, pid: int) -> Optional[List[str]]:
        """``count`` free devices, now marked as ``pid``'s, or None while too few are free."""
        with self._locked_state() as state:
            free = [d for d in self.devices if d not in state]
            if len(free) < count:
                return None
            for d in free[:count]:
                state[d] = {"pid": pid, "start": _start_time(pid)}
            return free[:count]

    def acquire(self, count: int, pid: int, poll: float = 2.0, say=print) -> List[str]:
        """Waits until ``count`` devices are free and takes them."""
        if count > len(self.devices):
            raise InputError(f"a job asks for {count} GPUs but this machine's pool has {len(self.devices)}: "
                             f"{','.join(self.devices) or 'none'} (APRO_GPU_IDS / CUDA_VISIBLE_DEVICES)")
        waited = False
        while True:
            got = self.try_acquire(count, pid)
            if got is not None:
                return got
            if not waited:
                say(f"with-gpus: waiting for {count} free GPUs of {len(self.devices)} ({self.folder}/pool.json)",
                    flush=True)
                waited = True
            time.sleep(poll)


def exec_with_gpus(count: int, command: Sequence[str], environ=os.environ) -> None:
    """Becomes ``command`` on ``count`` devices of the machine's pool (as it is under Slurm, or for 0 GPUs)."""
    if count < 0:
        raise InputError(f"with-gpus: the GPU count must be >= 0, got {count}")
    if not command:
        raise InputError("with-gpus: give the command to run after --")
    env = dict(environ)
    if count and not env.get("SLURM_JOB_ID"):
        pool = GpuPool(machine_devices(env), pool_dir(env))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(pool.acquire(count, os.getpid()))
        print(f"with-gpus: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}", flush=True)
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as exc:
        raise InputError(f"with-gpus: cannot run {command[0]!r}: {exc}") from None
