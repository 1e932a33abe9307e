// `minmax sweep` as its users meet it: rows equal to single `minmax train` runs of the same settings,
// weights kept, a kill mid-sweep resumed to the same sweep.csv, divergence recorded, bad sweep
// specifications refused before any work, figures optional. (Several processes under mpirun:
// tests/cli/test_sweep_mpi.sh.)
#include "../support/child_process.hpp"
#include "../support/scratch_directory.hpp"
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tinyattn/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using tinyattn::test::Child;
using tinyattn::test::ChildSettings;
using tinyattn::test::Outcome;
using tinyattn::test::read_text;

struct Scratch : tinyattn::test::ScratchDirectory {
  Scratch() : ScratchDirectory("tinyattn-sweep") {}
};

const std::string kMinmax = TINYATTN_MINMAX_BINARY;

Outcome run_minmax(const std::vector<std::string>& arguments, const ChildSettings& settings = {}) {
  return Child(kMinmax, arguments, settings).wait();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string cell; std::getline(in, cell, ',');) fields.push_back(cell);
  if (!line.empty() && line.back() == ',') fields.push_back("");
  return fields;
}

std::size_t finished_runs(const std::string& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir + "/runs", ec))
    n += entry.path().extension() == ".csv" && entry.path().filename().string().find(".tmp.") == std::string::npos;
  return n;
}

// Waits (at most a minute: below ctest's TIMEOUT of 120 s) until the sweep `child` writes into `dir` has
// finished `runs` runs, then sends it `signal` while it is still running.
void signal_after_finished_runs(Child& child, const std::string& dir, std::size_t runs, int signal) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (child.running() && finished_runs(dir) < runs && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  REQUIRE_MESSAGE(child.running(), "the sweep ended before signal " << signal << " could be sent");
  child.send(signal);
}

void check_same_tensors(const std::string& expected_path, const std::string& actual_path) {
  const auto expected = tinyattn::io::SafetensorsFile::load(expected_path);
  const auto actual = tinyattn::io::SafetensorsFile::load(actual_path);
  REQUIRE(actual.names() == expected.names());
  for (const tinyattn::io::TensorView& e : expected.tensors()) {
    INFO("tensor " << e.name);
    const tinyattn::io::TensorView& a = actual.tensor(e.name);
    REQUIRE(a.bytes == e.bytes);
    CHECK(std::memcmp(a.data, e.data, e.bytes) == 0);
  }
}

TEST_CASE("sweep: every row equals a single `minmax train` run of its settings, and --keep-weights keeps its weights") {
  Scratch dir;
  const std::string out = dir.file("sweep");
  const Outcome sweep = run_minmax({"sweep", "--seeds", "3,5", "--lr", "3e-3", "--weight-decay", "0.5",
                                    "--train-fraction", "0.25,0.3333333333333333", "--epochs", "25", "--threshold",
                                    "0.1", "--keep-weights", "--no-plot", "--out", out});
  REQUIRE_EXIT_STATUS(sweep, 0);
  CHECK_STDOUT_HAS(sweep, "4/4 runs");
  const std::vector<std::string> rows = lines_of(read_text(out + "/sweep.csv"));
  REQUIRE(rows.size() == 5);
  const std::vector<std::string> header = fields_of(rows[0]);
  REQUIRE(header.size() == 24);
  CHECK(header[11] == "epoch_to_10pct");
  CHECK(header[12] == "max_h0_A");
  CHECK(header[23] == "min_h1_B");
  // Run numbers go seed fastest: (0.25, 3), (0.25, 5), (1/3, 3), (1/3, 5).
  struct Expected {
    const char* seed;
    const char* fraction;
  };
  const Expected runs[] = {{"3", "0.25"}, {"5", "0.25"}, {"3", "0.3333333333333333"}, {"5", "0.3333333333333333"}};
  for (int run = 0; run < 4; ++run) {
    CAPTURE(run);
    const std::vector<std::string> f = fields_of(rows[static_cast<std::size_t>(run) + 1]);
    REQUIRE(f.size() == 24);
    CHECK(f[0] == std::to_string(run));
    CHECK(f[1] == runs[run].seed);
    CHECK(f[5] == "ok");
    CHECK(f[6] == "25");
    const std::string single = dir.file("train" + std::to_string(run));
    std::vector<std::string> train_args{"train",          "--seed", runs[run].seed, "--lr", "3e-3",
                                        "--weight-decay", "0.5",    "--epochs",     "25",   "--no-plot",
                                        "--threads",      "1",      "--out",        single};
    if (run < 2)
      train_args.insert(train_args.end(), {"--train-fraction", runs[run].fraction});  // else: the default split
    REQUIRE_EXIT_STATUS(run_minmax(train_args), 0);
    const std::vector<std::string> curves = lines_of(read_text(single + "/curves.csv"));
    const std::vector<std::string> last = fields_of(curves.back());
    CHECK(std::vector<std::string>(f.begin() + 7, f.begin() + 11) ==
          std::vector<std::string>(last.begin() + 1, last.end()));
    // The first epoch with test accuracy >= 10 %, from the single run's curves.
    std::string reached;
    for (std::size_t e = 1; e < curves.size() && reached.empty(); ++e)
      if (std::stod(fields_of(curves[e])[4]) >= 0.1) reached = fields_of(curves[e])[0];
    CHECK(f[11] == reached);
    double shares = 0;
    for (int c = 12; c < 24; ++c) shares += std::stod(f[static_cast<std::size_t>(c)]);
    CHECK(shares > 0);
    CHECK(shares <= 4.0 + 1e-3);  // per (op, head): A + op + B <= 1
    char name[32];
    std::snprintf(name, sizeof name, "/weights/run-%06d.safetensors", run);
    check_same_tensors(single + "/weights.safetensors", out + name);
    // The kept weights say which split they were trained on: eval finds the same test accuracy.
    const Outcome eval = run_minmax({"eval", "--weights", out + name, "--json"});
    REQUIRE_EXIT_STATUS(eval, 0);
    CHECK_STDOUT_HAS(eval, "\"test_accuracy\": " + last[4]);
  }
  // Only the training fraction varies: it is the x axis, the weight decay the y axis (one row).
  CHECK(read_text(out + "/phase.csv").find("weight-decay,train-fraction,runs,diverged,mean_test_acc,reached") == 0);
}

TEST_CASE("sweep: killed mid-sweep, --resume keeps the finished runs and ends with the same files") {
  Scratch dir;
  const std::vector<std::string> spec{"--seeds",   "0-2", "--weight-decay", "0.3,1", "--epochs", "60",
                                      "--threads", "1",   "--no-plot"};
  auto with_out = [&](const std::string& out) {
    std::vector<std::string> args{"sweep"};
    args.insert(args.end(), spec.begin(), spec.end());
    args.insert(args.end(), {"--out", out});
    return args;
  };
  const std::string whole = dir.file("whole"), killed = dir.file("killed");
  REQUIRE_EXIT_STATUS(run_minmax(with_out(whole)), 0);

  Child child(kMinmax, with_out(killed));
  signal_after_finished_runs(child, killed, 2, SIGKILL);
  const Outcome dead = child.wait();
  CHECK(dead.signal == SIGKILL);
  const std::size_t kept = finished_runs(killed);
  CHECK(kept >= 2);
  CHECK(kept < 6);
  CHECK(!fs::exists(killed + "/sweep.csv"));

  // Starting it again without --resume would mix two sweeps: refused, nothing touched.
  const Outcome again = run_minmax(with_out(killed));
  CHECK_EXIT_STATUS(again, 2);
  CHECK_STDERR_HAS(again, "holds a sweep already");
  CHECK(finished_runs(killed) == kept);

  const Outcome resumed = run_minmax({"sweep", "--resume", killed, "--no-plot"});
  REQUIRE_EXIT_STATUS(resumed, 0);
  CHECK_STDOUT_HAS(resumed, "sweep of 6 runs (" + std::to_string(kept) + " finished before)");
  CHECK(read_text(killed + "/sweep.csv") == read_text(whole + "/sweep.csv"));
  CHECK(read_text(killed + "/phase.csv") == read_text(whole + "/phase.csv"));

  // A row file of another sweep is not mixed in.
  std::ofstream(killed + "/runs/run-000001.csv") << read_text(killed + "/runs/run-000004.csv");
  const Outcome mixed = run_minmax({"sweep", "--resume", killed, "--no-plot"});
  CHECK_EXIT_STATUS(mixed, 1);
  CHECK_STDERR_HAS(mixed, "run-000001.csv does not belong to this sweep");
}

TEST_CASE("sweep: Ctrl-C (SIGINT) says how to continue and ends as the signal does") {
  Scratch dir;
  const std::string out = dir.file("interrupted");
  Child child(kMinmax, {"sweep", "--seeds", "0-3", "--epochs", "200", "--threads", "1", "--no-plot", "--out", out});
  signal_after_finished_runs(child, out, 1, SIGINT);
  const Outcome o = child.wait();
  CHECK(o.signal == SIGINT);
  CHECK_STDERR_HAS(o, "minmax sweep: interrupted; the finished runs are kept in " + out +
                          "/runs/: continue with minmax sweep --resume " + out);
  CHECK(finished_runs(out) >= 1);
  CHECK(!fs::exists(out + "/sweep.csv"));
}

TEST_CASE("sweep: a diverging run is recorded as diverged and the sweep goes on") {
  Scratch dir;
  const std::string out = dir.file("sweep");
  const Outcome o =
      run_minmax({"sweep", "--lr", "10,2e-3", "--epochs", "40", "--threads", "1", "--out", out, "--no-plot"});
  REQUIRE_EXIT_STATUS(o, 0);
  CHECK_STDOUT_HAS(o, "diverged at epoch");
  CHECK_STDOUT_HAS(o, "1 diverged");
  const std::vector<std::string> rows = lines_of(read_text(out + "/sweep.csv"));
  REQUIRE(rows.size() == 3);
  CHECK(fields_of(rows[1])[5] == "diverged");
  CHECK(std::stoi(fields_of(rows[1])[6]) < 40);
  CHECK(fields_of(rows[2])[5] == "ok");
  CHECK(fields_of(rows[2])[6] == "40");
}

TEST_CASE("sweep: bad specifications are usage errors before any work") {
  Scratch dir;
  const std::string out = dir.file("never");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--seeds", "5-2"}, "--seeds range '5-2' is empty"},
      {{"--seeds", "1,1"}, "--seeds lists 1 twice"},
      {{"--seeds", "1,,2"}, "--seeds has an empty item"},
      {{"--seeds", "x"}, "--seeds expects an integer, found 'x'"},
      {{"--seeds", "0-2000000"}, "has more than 1000000 values"},
      {{"--lr", "0"}, "--lr values must be > 0 and <= 10, found 0"},
      {{"--weight-decay", "-1"}, "--weight-decay values must be >= 0"},
      {{"--train-fraction", "1"}, "--train-fraction values must be > 0 and < 1, found 1"},
      {{"--train-fraction", "1e-6"}, "--train-fraction 1e-06 leaves 0 of 32768 samples to train"},
      {{"--axes", "lr"}, "--axes expects two axes X,Y"},
      {{"--axes", "lr,depth"}, "--axes: unknown axis 'depth'"},
      {{"--epochs", "0"}, "--epochs must be in [1, 100000000], found 0"},
      {{"--threshold", "1.5"}, "--threshold values must be > 0 and <= 1, found 1.5"},
      {{"--colour", "red"}, "unknown option '--colour'"},
      {{"extra"}, "sweep takes no positional argument"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args{"sweep", "--out", out};
    args.insert(args.end(), flags.begin(), flags.end());
    const Outcome o = run_minmax(args);
    CHECK_EXIT_STATUS(o, 2);
    CHECK_STDERR_HAS(o, message);
  }
  CHECK(!fs::exists(out));
  const Outcome missing = run_minmax({"sweep", "--resume", dir.file("nothing-here")});
  CHECK_EXIT_STATUS(missing, 1);
  CHECK_STDERR_HAS(missing, "sweep-spec.txt");
  const Outcome both = run_minmax({"sweep", "--resume", out, "--seeds", "1"});
  CHECK_EXIT_STATUS(both, 2);
  CHECK_STDERR_HAS(both, "drop --seeds");
}

TEST_CASE("sweep: figures when gnuplot is there, and without it the tables are written and a warning says so") {
  Scratch dir;
  const std::string with = dir.file("with"), without = dir.file("without");
  const Outcome drawn = run_minmax(
      {"sweep", "--seeds", "0,1", "--train-fraction", "0.3,0.5", "--epochs", "3", "--threads", "1", "--out", with});
  REQUIRE_EXIT_STATUS(drawn, 0);
  const bool have_gnuplot = drawn.err.find("gnuplot not found") == std::string::npos;
  for (const char* png :
       {"phase_test_accuracy.png", "phase_epochs.png", "histogram_test_accuracy.png", "histogram_epochs.png"})
    CHECK(fs::exists(with + "/" + png) == have_gnuplot);
  ChildSettings no_gnuplot;
  no_gnuplot.environment["GNUPLOT_IOSTREAM_CMD"] = "/nonexistent/gnuplot";
  const Outcome bare =
      run_minmax({"sweep", "--seeds", "0", "--epochs", "2", "--threads", "1", "--out", without}, no_gnuplot);
  CHECK_EXIT_STATUS(bare, 0);
  CHECK_STDERR_HAS(bare, "gnuplot not found");
  CHECK(fs::exists(without + "/sweep.csv"));
  CHECK(fs::exists(without + "/phase.csv"));
  CHECK(!fs::exists(without + "/phase_test_accuracy.png"));
}

TEST_CASE("train --train-fraction: bad values are usage errors, and a resumed run keeps its split") {
  Scratch dir;
  for (const char* bad : {"0", "1", "-0.5", "half"}) {
    const Outcome o = run_minmax({"train", "--train-fraction", bad, "--out", dir.file("bad")});
    CHECK_EXIT_STATUS(o, 2);
    CHECK_STDERR_HAS(o, "--train-fraction");
  }
  const std::string out = dir.file("run");
  const Outcome first = run_minmax({"train", "--train-fraction", "0.5", "--epochs", "4", "--checkpoint-every", "2",
                                    "--threads", "1", "--no-plot", "--out", out});
  REQUIRE_EXIT_STATUS(first, 0);
  CHECK_STDOUT_HAS(first, "16384 train / 16384 test samples");
  const Outcome other = run_minmax({"train", "--resume", out, "--train-fraction", "0.25", "--epochs", "6"});
  CHECK_EXIT_STATUS(other, 2);
  CHECK_STDERR_HAS(other, "--train-fraction differs from the checkpoint's 0.5");
  const Outcome resumed = run_minmax({"train", "--resume", out, "--epochs", "6", "--threads", "1", "--no-plot"});
  CHECK_EXIT_STATUS(resumed, 0);
  CHECK_STDOUT_HAS(resumed, "16384 train / 16384 test samples");
  const Outcome help = run_minmax({"--help"});
  CHECK_STDOUT_HAS(help, "minmax sweep");
}

#if !defined(TINYATTN_MINMAX_HAS_MPI)
TEST_CASE("sweep: a minmax built without MPI refuses to run as several mpirun processes and says why") {
  Scratch dir;
  ChildSettings as_rank;
  as_rank.environment["OMPI_COMM_WORLD_SIZE"] = "2";
  const Outcome o = run_minmax({"sweep", "--epochs", "1", "--out", dir.file("out")}, as_rank);
  CHECK_EXIT_STATUS(o, 1);
  CHECK_STDERR_HAS(o, "built without MPI: install libopenmpi-dev and openmpi-bin");
}
#endif

}  // namespace
