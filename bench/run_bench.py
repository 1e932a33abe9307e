#!/usr/bin/env python3
"""Side-by-side benchmark: tinyattn vs the PyTorch reference, same experiment, same machine, one run.

  bench/run_bench.sh [--epochs 750] [--repeats 5] [--peer ../shared/peers/torch_minmax.py]
                     [--peer-repeats 1] [--scaling] [--no-peer]

Each side runs at every thread count from 1 to the number of cores; the best (lowest median) counts.
tinyattn: median of --repeats runs. Peer: median of --peer-repeats runs (a full 750-epoch run of the
peer takes minutes). Prints the machine, the commands, every measurement, and the ratio.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = [l for l in out.splitlines() if l.startswith("{")]
    return json.loads(lines[-1])


def run_measured(cmd):
    """Runs cmd, returns (its last JSON line, its own peak RSS in KiB from wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.stdout.read(), proc.stderr.read()  # the peer writes little to stderr
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1]), usage.ru_maxrss


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=750)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--peer", default=os.path.join(ROOT, "..", "shared", "peers", "torch_minmax.py"))
    p.add_argument("--peer-python", default="/usr/bin/python3")
    p.add_argument("--peer-repeats", type=int, default=1)
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--scaling", action="store_true", help="also the shape scaling table")
    p.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    a = p.parse_args()

    bench = os.path.join(a.build, "bench", "bench_experiment")
    cores = os.cpu_count() or 1
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"experiment: reference shape V=131 D=32 H=2 T=4, {a.epochs} epochs, test evaluation every epoch\n")

    best_ours = None
    for threads in range(1, cores + 1):
        cmd = [bench, "--epochs", str(a.epochs), "--threads", str(threads)]
        runs = [run_json(cmd) for _ in range(a.repeats)]
        ms = statistics.median(r["ms_per_epoch"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        print(f"tinyattn  threads {threads}: median {ms:.3f} ms/epoch over {a.repeats} runs "
              f"(runs: {', '.join('%.3f' % r['ms_per_epoch'] for r in runs)}), peak RSS {rss:.1f} MB, "
              f"test acc {runs[0]['test_acc']:.4f}   [{' '.join(cmd)}]")
        if best_ours is None or ms < best_ours[0]:
            best_ours = (ms, threads, rss, runs[0])

    best_peer = None
    if not a.no_peer:
        if not os.path.exists(a.peer):
            print(f"\npeer not found at {a.peer}: skipped (pass --peer PATH)")
        else:
            for threads in range(1, cores + 1):
                cmd = [a.peer_python, a.peer, "--epochs", str(a.epochs), "--threads", str(threads), "--json"]
                runs = []
                for _ in range(a.peer_repeats):
                    result, rss_kb = run_measured(cmd)
                    result["peak_rss_mb"] = rss_kb / 1024.0
                    runs.append(result)
                ms = statistics.median(r["ms_per_epoch"] for r in runs)
                rss = max(r["peak_rss_mb"] for r in runs)
                print(f"PyTorch   threads {threads}: median {ms:.3f} ms/epoch over {a.peer_repeats} run(s), "
                      f"peak RSS {rss:.1f} MB, test acc {runs[0]['test_acc']:.4f}, torch {runs[0]['torch']}   [{' '.join(cmd)}]")
                if best_peer is None or ms < best_peer[0]:
                    best_peer = (ms, threads, rss, runs[0])

    print()
    print(f"tinyattn best: {best_ours[0]:.3f} ms/epoch ({best_ours[1]} threads), whole experiment "
          f"{best_ours[0] * a.epochs / 1000:.2f} s, peak RSS {best_ours[2]:.1f} MB")
    if best_peer:
        print(f"PyTorch  best: {best_peer[0]:.3f} ms/epoch ({best_peer[1]} threads), whole experiment "
              f"{best_peer[0] * a.epochs / 1000:.2f} s, peak RSS {best_peer[2]:.1f} MB")
        print(f"ratio: tinyattn is {best_peer[0] / best_ours[0]:.1f}x faster, in {best_ours[2] / best_peer[2] * 100:.1f}% "
              f"of the memory")

    if a.scaling:
        print("\nscaling (tinyattn, median of 3 x 50 epochs, all cores):")
        scaling = os.path.join(a.build, "bench", "bench_scaling")
        out = subprocess.run([scaling, "--epochs", "50", "--repeats", "3"], check=True, capture_output=True, text=True).stdout
        rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        for r in rows:
            peer_ms = ""
            if best_peer and r["max_n"] == 128 and not a.no_peer:
                cmd = [a.peer_python, a.peer, "--epochs", "20", "--threads", str(best_peer[1]), "--json",
                       "--d-model", str(r["d_model"]), "--heads", str(r["heads"])]
                pr = run_json(cmd)
                peer_ms = f" | PyTorch {pr['ms_per_epoch']:.1f} ms/epoch (20 epochs) -> {pr['ms_per_epoch'] / r['ms_per_epoch_median']:.0f}x"
            print(f"  max_n {r['max_n']:3d} (V {r['vocab']:3d}, {r['train']}+{r['test']} samples) D {r['d_model']:3d} "
                  f"H {r['heads']}: {r['ms_per_epoch_median']:.3f} ms/epoch [{r['logit_path']}, {r['score_path']}]{peer_ms}")


if __name__ == "__main__":
    main()
