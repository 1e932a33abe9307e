#!/usr/bin/env python3
"""Side-by-side benchmark of the classic experiments' configurations: tinyattn vs the PyTorch peer's
presets (../shared/peers/torch_transformer.py --preset grokking|induction), same machine, one run.

  bench/run_transformer_bench.py [--presets grokking,induction] [--epochs E] [--peer-epochs E]
                                 [--repeats 3] [--eval-every K] [--no-peer]

An epoch is the training step(s) plus, every K epochs (default 1), a full test evaluation, on both
sides. Each side runs at every thread count from 1 to the number of cores; the best (lowest median)
counts. Prints the machine, the commands, every measurement and the ratio per preset.
"""
import argparse, json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run_bench import machine, run_json, run_measured  # noqa: E402

DEFAULT_EPOCHS = {"grokking": 100, "induction": 10}
DEFAULT_PEER_EPOCHS = {"grokking": 10, "induction": 3}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="grokking,induction")
    p.add_argument("--epochs", type=int, help="tinyattn epochs per run (default: grokking 100, induction 10)")
    p.add_argument("--peer-epochs", type=int, help="peer epochs per run (default: grokking 10, induction 3)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--peer", default=os.path.join(ROOT, "..", "shared", "peers", "torch_transformer.py"))
    p.add_argument("--peer-python", default="/usr/bin/python3")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    a = p.parse_args()
    bench = os.path.join(a.build, "bench", "bench_transformer")
    if not os.access(bench, os.X_OK):
        sys.exit(f"run_transformer_bench: {bench} not found: build it with\n"
                 f"  cmake --preset release -DTINYATTN_BUILD_BENCH=ON && "
                 f"cmake --build --preset release --target bench_transformer\n"
                 f"(or pass --build DIR of a build that has it)")
    for preset in a.presets.split(","):
        if preset not in DEFAULT_EPOCHS:
            sys.exit(f"run_transformer_bench: unknown preset '{preset}'; expected one of {', '.join(DEFAULT_EPOCHS)}")
    cores = os.cpu_count() or 1
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    for preset in a.presets.split(","):
        epochs = a.epochs or DEFAULT_EPOCHS[preset]
        peer_epochs = a.peer_epochs or DEFAULT_PEER_EPOCHS[preset]
        best_ours = None
        for threads in range(1, cores + 1):
            cmd = [bench, "--preset", preset, "--epochs", str(epochs), "--threads", str(threads),
                   "--eval-every", str(a.eval_every)]
            runs = [run_json(cmd) for _ in range(a.repeats)]
            ms = statistics.median(r["ms_per_epoch"] for r in runs)
            print(f"{preset}: tinyattn threads {threads}: median {ms:.2f} ms/epoch over {a.repeats} runs "
                  f"(runs: {', '.join('%.2f' % r['ms_per_epoch'] for r in runs)}), engine {runs[0]['engine']}, "
                  f"peak RSS {max(r['peak_rss_mb'] for r in runs):.1f} MB   [{' '.join(cmd)}]")
            if best_ours is None or ms < best_ours[0]:
                best_ours = (ms, threads)
        best_peer = None
        if not a.no_peer and os.path.exists(a.peer):
            for threads in range(1, cores + 1):
                cmd = [a.peer_python, a.peer, "--preset", preset, "--epochs", str(peer_epochs), "--threads",
                       str(threads), "--json"]
                if a.eval_every != 1:
                    cmd.append("--no-eval")  # the peer evaluates every epoch or never; see the note printed
                result, rss_kb = run_measured(cmd)
                ms = result["ms_per_epoch"]
                print(f"{preset}: PyTorch  threads {threads}: {ms:.2f} ms/epoch ({peer_epochs} epochs, malloc "
                      f"{result.get('malloc', '?')}), peak RSS {rss_kb / 1024:.1f} MB, torch {result['torch']}   "
                      f"[{' '.join(cmd)}]")
                if best_peer is None or ms < best_peer[0]:
                    best_peer = (ms, threads, result)
        line = f"{preset}: tinyattn best {best_ours[0]:.2f} ms/epoch ({best_ours[1]} threads)"
        if best_peer:
            line += (f", PyTorch best {best_peer[0]:.2f} ms/epoch ({best_peer[1]} threads): "
                     f"ratio {best_peer[0] / best_ours[0]:.1f}x")
        print(line + "\n")


if __name__ == "__main__":
    main()
