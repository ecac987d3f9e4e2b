# Stage "ops": compile the C++ ops (apro._C) and benchmark them.
import glob

OPS_SOURCES = sorted(f for pattern in ("csrc/**/*.cpp", "csrc/**/*.h") for f in glob.glob(pattern, recursive=True))


rule build_ops:
    """Compile apro._C from csrc/ and check it imports; the marker holds the .so path and torch version."""
    input:
        "setup.py",
        OPS_SOURCES,
    output:
        apro_layout.ops_marker(),
    log:
        apro_layout.job_log("ops", "build_ops"),
    benchmark:
        apro_layout.job_benchmark("ops", "build_ops")
    params:
        apro=APRO,
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "MAX_JOBS={threads} {params.apro} build-ops --quiet --marker {output} 2>&1 | tee {log}"


rule benchmark_ops:
    """Time the GP/LP/MST ops (benchmarks/ops.py) and write the table for people."""
    input:
        ops=apro_layout.ops_marker(),
        script="benchmarks/ops.py",
    output:
        apro_layout.ops_table(),
    log:
        apro_layout.job_log("ops", "benchmark_ops"),
    benchmark:
        apro_layout.job_benchmark("ops", "benchmark_ops")
    params:
        apro=APRO,
    threads: 2  # the table's 2-thread figures (capped by --cores; an executor without --cores has no total)
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "{params.apro} bench-ops --out {output} 2>&1 | tee {log}"
