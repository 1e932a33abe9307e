#!/usr/bin/env python3
"""Sweep benchmark: N seeds of the reference experiment (750 epochs, test evaluated every epoch), side by side.

  bench/run_sweep_bench.sh [--seeds 64] [--epochs 750] [--peer-epochs 100] [--no-peer] [--no-mpi]

Measures, one after another on this machine:
  1. N sequential `minmax train --seed s --no-plot` runs (each with every core, as a user would loop);
  2. one `minmax sweep --seeds 0-(N-1) --no-plot` (the runs as an ensemble, one per core at a time);
  3. `mpirun --bind-to none -np 1` and `-np 2` of the same sweep (when minmax has MPI);
  4. the PyTorch peer (torch_minmax.py --json) for --peer-epochs epochs at 1 and at every core thread,
     its best ms/epoch scaled to N runs x --epochs (a full peer run takes minutes).
Checks that every sweep wrote the same sweep.csv and that its rows equal the sequential runs' last
curves.csv rows. Prints every measurement and the ratios.
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def machine():
    model = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def timed(cmd, env=None):
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--epochs", type=int, default=750)
    p.add_argument("--peer", default=os.path.join(ROOT, "..", "shared", "peers", "torch_minmax.py"))
    p.add_argument("--peer-python", default="/usr/bin/python3")
    p.add_argument("--peer-epochs", type=int, default=100)
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--no-mpi", action="store_true")
    p.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    a = p.parse_args()
    minmax = os.path.join(a.build, "examples", "minmax")
    n, cores = a.seeds, os.cpu_count() or 1
    work = tempfile.mkdtemp(prefix="tinyattn-sweep-bench-")
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"experiment: {n} seeds of the reference experiment, {a.epochs} epochs each, test evaluated every epoch\n")
    results = {}
    try:
        # 1. Sequential runs, as a shell loop over `minmax train` would do them.
        start = time.monotonic()
        last_rows = []
        for seed in range(n):
            out = os.path.join(work, "train")
            timed([minmax, "train", "--seed", str(seed), "--epochs", str(a.epochs), "--no-plot", "--out", out])
            last_rows.append(open(os.path.join(out, "curves.csv")).read().splitlines()[-1].split(",")[1:])
            shutil.rmtree(out)
        results["sequential"] = time.monotonic() - start
        print(f"{n} x minmax train (sequential, {cores} threads each): {results['sequential']:.1f} s "
              f"({results['sequential'] / n:.2f} s per run)")

        # 2./3. The sweep: plain, and under mpirun with 1 and 2 processes.
        sweeps = [("sweep", [])]
        mpirun = shutil.which("mpirun")
        has_mpi = "MPI: yes" in subprocess.run([minmax, "--version"], capture_output=True, text=True).stdout
        if not a.no_mpi and mpirun and has_mpi:
            # --bind-to none: Open MPI would otherwise bind each of 1 or 2 ranks to one core.
            sweeps += [("mpirun -np 1", [mpirun, "--bind-to", "none", "-np", "1"]),
                       ("mpirun -np 2", [mpirun, "--bind-to", "none", "-np", "2"])]
        elif not a.no_mpi:
            print("mpirun runs skipped: " + ("no mpirun" if not mpirun else "minmax built without MPI"))
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        reference_csv = None
        for name, launcher in sweeps:
            out = os.path.join(work, name.replace(" ", "_"))
            cmd = launcher + [minmax, "sweep", "--seeds", f"0-{n - 1}", "--epochs", str(a.epochs), "--no-plot", "--out", out]
            seconds, _ = timed(cmd, env)
            results[name] = seconds
            csv = open(os.path.join(out, "sweep.csv")).read()
            same = "" if reference_csv is None else ("; sweep.csv identical to the plain sweep's" if csv == reference_csv
                                                      else "; sweep.csv DIFFERS from the plain sweep's")
            if reference_csv is None:
                reference_csv = csv
                rows = [line.split(",") for line in csv.splitlines()[1:]]
                matches = sum(rows[s][7:11] == last_rows[s] for s in range(n))
                same = f"; {matches}/{n} rows equal the sequential runs' final curves.csv rows"
            print(f"{name:>14} minmax sweep --seeds 0-{n - 1}: {seconds:.1f} s ({seconds / n:.2f} s per run){same}")
            shutil.rmtree(out)

        # 4. The peer, scaled.
        peer_best = None
        if not a.no_peer and os.path.exists(a.peer):
            for threads in sorted({1, cores}):
                cmd = [a.peer_python, a.peer, "--epochs", str(a.peer_epochs), "--threads", str(threads), "--json"]
                _, out = timed(cmd)
                r = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
                print(f"peer threads {threads}: {r['ms_per_epoch']:.1f} ms/epoch over {a.peer_epochs} epochs   [{' '.join(cmd)}]")
                if peer_best is None or r["ms_per_epoch"] < peer_best:
                    peer_best = r["ms_per_epoch"]
            results["peer"] = peer_best * a.epochs * n / 1000
            print(f"peer, {n} runs x {a.epochs} epochs at its best thread count (scaled): {results['peer']:.0f} s")
        elif not a.no_peer:
            print(f"peer not found at {a.peer}: skipped")

        print("\nratios (higher = the sweep is faster):")
        print(f"  sequential minmax train / minmax sweep: {results['sequential'] / results['sweep']:.2f}x")
        if "peer" in results:
            print(f"  PyTorch peer x {n} / minmax sweep:      {results['peer'] / results['sweep']:.1f}x")
        if "mpirun -np 2" in results:
            print(f"  mpirun -np 2 / mpirun -np 1 (time):     {results['mpirun -np 2'] / results['mpirun -np 1']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
