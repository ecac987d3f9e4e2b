"""`apro with-gpus`: jobs that share a machine get disjoint GPUs (simulated ids, no GPU needed), a killed job's
devices come back, asking for more than exist fails clearly, and under Slurm the allocation stands."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

APRO = [sys.executable, "-m", "apro"]
# what each simulated job records: its devices, and when it held them
RECORD = ("import json, os, sys, time; t0 = time.time(); time.sleep(float(sys.argv[2])); "
          "json.dump({'devices': os.environ['CUDA_VISIBLE_DEVICES'].split(','), 'start': t0, 'end': time.time()}, "
          "open(sys.argv[1], 'w'))")


def _env(tmp_path, ids="0,1,2,3"):
    return {**os.environ, "APRO_GPU_IDS": ids, "APRO_GPU_POOL": str(tmp_path / "pool")}


def _job(tmp_path, count, out, seconds=0.6):
    return subprocess.Popen(APRO + ["with-gpus", str(count), "--", sys.executable, "-c", RECORD, str(out), str(seconds)],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_concurrent_jobs_never_share_a_device(tmp_path):
    counts = [2, 2, 1, 3, 1, 2, 4, 1]  # 16 device-slots on 4 devices: some jobs wait for others
    jobs = [_job(tmp_path, n, tmp_path / f"job{i}.json") for i, n in enumerate(counts)]
    for job in jobs:
        out, _ = job.communicate(timeout=120)
        assert job.returncode == 0, out
    records = [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(len(counts))]
    assert [len(r["devices"]) for r in records] == counts
    for i, a in enumerate(records):
        assert set(a["devices"]) <= {"0", "1", "2", "3"} and len(set(a["devices"])) == len(a["devices"])
        for b in records[i + 1:]:
            overlap = a["start"] < b["end"] and b["start"] < a["end"]
            assert not (overlap and set(a["devices"]) & set(b["devices"])), (a, b)


def test_a_killed_jobs_devices_come_back(tmp_path):
    holder = subprocess.Popen(APRO + ["with-gpus", "4", "--", "sleep", "60"], env=_env(tmp_path),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().startswith("with-gpus: CUDA_VISIBLE_DEVICES=")  # it holds all four
    blocked = _job(tmp_path, 1, tmp_path / "after.json", seconds=0)
    time.sleep(3)
    assert blocked.poll() is None  # waits while the four are held
    os.kill(holder.pid, signal.SIGKILL)  # with-gpus became `sleep`: the holder itself dies
    holder.wait()
    out, _ = blocked.communicate(timeout=30)
    assert blocked.returncode == 0 and "waiting for 1 free GPUs of 4" in out, out
    assert len(json.loads((tmp_path / "after.json").read_text())["devices"]) == 1


def test_more_devices_than_the_machine_has_is_an_error(tmp_path):
    proc = subprocess.run(APRO + ["with-gpus", "5", "--", "true"], env=_env(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "a job asks for 5 GPUs but this machine's pool has 4: 0,1,2,3" in proc.stderr


def test_no_gpus_at_all_is_an_error_naming_the_variables(tmp_path):
    proc = subprocess.run(APRO + ["with-gpus", "1", "--", "true"], env=_env(tmp_path, ids=""),
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "pool has 0: none (APRO_GPU_IDS / CUDA_VISIBLE_DEVICES)" in proc.stderr


@pytest.mark.parametrize("env", [{"SLURM_JOB_ID": "17", "CUDA_VISIBLE_DEVICES": "5,6"}, {}])
def test_under_slurm_or_for_no_gpus_the_command_runs_as_it_is(tmp_path, env):
    count = "2" if env else "0"
    probe = "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES'))"
    proc = subprocess.run(APRO + ["with-gpus", count, "--", sys.executable, "-c", probe],
                          env={**_env(tmp_path), **env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (env.get("CUDA_VISIBLE_DEVICES") or str(os.environ.get("CUDA_VISIBLE_DEVICES")))
    assert not (Path(tmp_path) / "pool" / "pool.json").exists()  # the pool was not touched
