#!/usr/bin/env python3
"""Compile time of translation units, one job at a time, with the project's own Release commands.

Times (wall clock, and the compiler's peak memory) each translation unit that instantiates one
configuration as a user's program would (bench/compile_one_configuration.cpp: train, evaluate,
inspect, save and load weights; one unit per configuration), and each unit of the example programs.
The aim for a unit that instantiates one configuration: at most 40 s (Release, one job).

Run it through bench/run_compile_bench.sh, which configures the Release build with the benchmarks and
compile_commands.json. Options: --build DIR (build/release), --repeat N (1: each unit N times, the
median reported), --only SUBSTRING (units whose source path contains it).
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

LIMIT_S = 40.0


def units(build):
    path = os.path.join(build, "compile_commands.json")
    if not os.path.exists(path):
        sys.exit(f"run_compile_bench: {path} not found: configure with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "
                 "(bench/run_compile_bench.sh does)")
    with open(path) as f:
        entries = json.load(f)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    chosen = []
    for e in entries:
        rel = os.path.relpath(e["file"], root)
        if rel == "bench/compile_one_configuration.cpp":
            words = shlex.split(e["command"])
            config = next(w.split("=", 1)[1] for w in words if w.startswith("-DTINYATTN_BENCH_CONFIGURATION="))
            chosen.append((f"{rel} (configuration {config})", e, True))
        elif rel.startswith("examples/"):
            chosen.append((rel, e, False))
    if not chosen:
        sys.exit("run_compile_bench: no unit found in compile_commands.json: configure with -DTINYATTN_BUILD_BENCH=ON")
    chosen.sort(key=lambda c: (not c[2], c[0]))
    return chosen


def compile_once(entry, out):
    words = shlex.split(entry["command"])
    words[words.index("-o") + 1] = out
    start = time.perf_counter()
    child = subprocess.Popen(words, cwd=entry["directory"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    errors = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"run_compile_bench: compiling {entry['file']} failed:\n{errors}")
    return seconds, usage.ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build/release")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    if args.repeat < 1:
        sys.exit(f"run_compile_bench: --repeat must be >= 1, found {args.repeat}")
    chosen = [c for c in units(args.build) if args.only in c[0]]
    if not chosen:
        sys.exit(f"run_compile_bench: no unit's path contains '{args.only}'")
    print(f"# compile time, Release, one job ({os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')})")
    print(f"# {shlex.split(chosen[0][1]['command'])[0]}, {args.repeat} run(s) per unit, median\n")
    print("| translation unit | s | peak MB | one configuration <= 40 s |")
    print("| --- | --- | --- | --- |")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "unit.o")
        for name, entry, one_configuration in chosen:
            runs = [compile_once(entry, out) for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in runs)
            memory = max(r[1] for r in runs)
            if one_configuration:
                worst = max(worst, seconds)
            verdict = ("yes" if seconds <= LIMIT_S else "NO") if one_configuration else ""
            times = ", ".join(f"{r[0]:.1f}" for r in runs)
            print(f"| {name} | {seconds:.1f}" + (f" ({times})" if args.repeat > 1 else "") +
                  f" | {memory:.0f} | {verdict} |", flush=True)
    print(f"\nslowest unit instantiating one configuration: {worst:.1f} s (aim <= {LIMIT_S:.0f} s)")


if __name__ == "__main__":
    main()
