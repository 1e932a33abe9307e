// Tests of the minmax program (examples/minmax) as its users meet it: the real binary, started with
// fork/exec, judged by its exit status (0 success, 1 run-time error, 2 usage error, 130 interrupted),
// its messages and the files it leaves behind — after usage errors, bad files, missing or failing
// gnuplot, a full disk, divergence, SIGKILL, SIGINT and SIGTERM.
//
// Training runs are short (at most 200 epochs, one thread) so that the suite stays well under a minute
// on two shared cores.
#include "../support/child_process.hpp"
#include "../support/scratch_directory.hpp"
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tinyattn/io/npy.hpp"
#include "tinyattn/io/safetensors.hpp"
#include "tinyattn/io/weights.hpp"
#include "tinyattn/plot/heatmap_animation.hpp"
#include "tinyattn/tinyattn.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct Scratch : tinyattn::test::ScratchDirectory {
  Scratch() : ScratchDirectory("tinyattn-cli") {}
};

using ReferenceNet = tinyattn::AttentionNetwork<tinyattn::ReferenceShape>;

const std::string kMinmax = TINYATTN_MINMAX_BINARY;

std::string fixture(const std::string& name) { return std::string(TINYATTN_TEST_DATA_DIR) + "/" + name; }

// ---- files ------------------------------------------------------------------------------------------

using tinyattn::test::read_text;

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

bool is_file(const std::string& path) { return fs::is_regular_file(path); }

// The names in `directory`, sorted.
std::set<std::string> entries_of(const std::string& directory) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) names.insert(entry.path().filename().string());
  return names;
}

// Left-overs of interrupted atomic writes (tinyattn::io: "<file>.tmp.<pid>.<n>").
std::vector<std::string> temporary_files_in(const std::string& directory) {
  std::vector<std::string> found;
  for (const std::string& name : entries_of(directory))
    if (name.find(".tmp.") != std::string::npos) found.push_back(name);
  return found;
}

std::string listing(const std::set<std::string>& names) {
  std::string text;
  for (const auto& n : names) text += (text.empty() ? "" : ", ") + n;
  return "{" + text + "}";
}

// The directory holds exactly these entries.
#define CHECK_ENTRIES(directory, ...)                                                                               \
  do {                                                                                                              \
    const std::set<std::string> found_ = entries_of(directory), expected_ = __VA_ARGS__;                            \
    CHECK_MESSAGE(found_ == expected_, (directory)                                                                  \
                                           << " holds " << listing(found_) << ", expected " << listing(expected_)); \
  } while (0)

using tinyattn::test::joined;

// The epoch a checkpoint was written at (its metadata 'epochs'); nullopt while there is none.
// Atomic writes mean a file that exists is complete.
std::optional<long> checkpoint_epoch(const std::string& path) {
  if (!is_file(path)) return std::nullopt;
  const auto file = tinyattn::io::SafetensorsFile::load(path);
  return std::stol(file.metadata().at("epochs"));
}

// Both weight files hold the same tensors (names, dtypes, shapes, bytes). Metadata may differ.
void check_same_tensors(const std::string& expected_path, const std::string& actual_path) {
  const auto expected = tinyattn::io::SafetensorsFile::load(expected_path);
  const auto actual = tinyattn::io::SafetensorsFile::load(actual_path);
  CHECK(expected.names().size() == 10);
  CHECK(actual.names() == expected.names());
  for (const tinyattn::io::TensorView& e : expected.tensors()) {
    INFO("tensor " << e.name << " of " << actual_path << " vs " << expected_path);
    REQUIRE(actual.contains(e.name));
    const tinyattn::io::TensorView& a = actual.tensor(e.name);
    CHECK(a.dtype == e.dtype);
    CHECK(a.shape == e.shape);
    REQUIRE(a.bytes == e.bytes);
    CHECK(std::memcmp(a.data, e.data, e.bytes) == 0);
  }
}

// ---- running minmax -------------------------------------------------------------------------------------
using tinyattn::test::Child;
using tinyattn::test::ChildSettings;
using tinyattn::test::Outcome;
using tinyattn::test::wait_for_stdout;

Outcome run_minmax(const std::vector<std::string>& arguments, const ChildSettings& settings = {}) {
  return Child(kMinmax, arguments, settings).wait();
}

// Weights trained once per test process by the real program (60 epochs: ~27% accuracy, enough for
// attention patterns that are not uniform).
const std::string& trained_weights() {
  static Scratch directory;
  static const std::string path = [] {
    const std::string out = directory.file("trained");
    const Outcome o = run_minmax({"train", "--epochs", "60", "--no-plot", "--threads", "1", "--out", out});
    REQUIRE_EXIT_STATUS(o, 0);
    return out + "/weights.safetensors";
  }();
  return path;
}

// A valid weights file for the reference network that needs no training: PyTorch's, seed 0.
const std::string kTorchWeights = fixture("torch_weights_seed0.safetensors");

// ---- help and usage -------------------------------------------------------------------------------------
TEST_CASE("minmax --help lists the commands, and no or an unknown command is a usage error") {
  const Outcome help = run_minmax({"--help"});
  CHECK_EXIT_STATUS(help, 0);
  for (const char* command : {"minmax train", "minmax eval", "minmax analyze", "minmax plot", "minmax predict",
                              "--checkpoint-every", "--resume"})
    CHECK_STDOUT_HAS(help, command);
  CHECK(help.err.empty());

  const Outcome train_help = run_minmax({"train", "--help"});
  CHECK_EXIT_STATUS(train_help, 0);
  CHECK_STDOUT_HAS(train_help, "--epochs N");

  const Outcome version = run_minmax({"--version"});
  CHECK_EXIT_STATUS(version, 0);
  CHECK_STDOUT_HAS(version, "minmax (tinyattn)");

  const Outcome nothing = run_minmax({});
  CHECK_EXIT_STATUS(nothing, 2);
  CHECK_STDERR_HAS(nothing, "missing command: train, sweep, eval, analyze, plot or predict");
  CHECK_STDERR_HAS(nothing, "run 'minmax --help'");

  const Outcome unknown = run_minmax({"frobnicate"});
  CHECK_EXIT_STATUS(unknown, 2);
  CHECK_STDERR_HAS(unknown, "unknown command 'frobnicate'");
}

TEST_CASE("every malformed train flag is a usage error (status 2) that names the flag, and nothing is written") {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases{
      {{"--epochs", "-5"}, "--epochs must be in [0, 100000000], found -5"},
      {{"--epochs", "1.5"}, "--epochs expects an integer, found '1.5'"},
      {{"--epochs="}, "--epochs needs a non-empty value"},
      {{"--lr", "abc"}, "--lr expects a number, found 'abc'"},
      {{"--lr", "0"}, "--lr must be > 0 and <= 10, found 0"},
      {{"--lr", "nan"}, "--lr expects a number, found 'nan'"},
      {{"--lr", "11"}, "--lr must be > 0 and <= 10, found 11"},
      {{"--lr"}, "--lr needs a value"},
      {{"--weight-decay", "-1"}, "--weight-decay must be >= 0"},
      {{"--seed", "-1"}, "--seed must be in [0, "},
      {{"--frobnicate"}, "unknown option '--frobnicate'"},
      {{"--epochs", "3", "--epochs", "4"}, "--epochs given twice"},
      {{"--no-plot=1"}, "--no-plot takes no value, found '--no-plot=1'"},
      {{"junk"}, "train takes no positional argument, found 'junk'"},
      {{"--checkpoint-every", "0"}, "--checkpoint-every must be in [1, "},
      {{"--threads", "0"}, "--threads must be in [1, 4096], found 0"},
  };
  Scratch cwd;
  for (const Case& c : cases) {
    std::vector<std::string> args{"train"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Outcome o = run_minmax(args, {{}, {}, cwd.path.string()});
    CHECK_EXIT_STATUS(o, 2);
    CHECK_STDERR_HAS(o, "minmax: " + c.message);
    CHECK_STDERR_HAS(o, "(run 'minmax --help' for usage)");
    CHECK_MESSAGE(o.out.empty(), o.describe());
  }
  CHECK_MESSAGE(entries_of(cwd.path.string()).empty(), "a usage error created minmax-out");
}

TEST_CASE("plot and predict usage errors") {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases{
      {{"plot"}, "plot needs --weights FILE"},
      {{"plot", "--weights", kTorchWeights, "extra"}, "plot takes no positional argument, found 'extra'"},
      {{"predict", "17", "max", "99"}, "predict needs --weights FILE"},
      {{"predict", "--weights", kTorchWeights, "17", "max"}, "predict needs three words A OP B"},
      {{"predict", "--weights", kTorchWeights, "--out", "d", "1", "max", "2"}, "predict takes no --out"},
      {{"predict", "--weights", kTorchWeights, "128", "max", "5"}, "operand A must be in [0, 127], found 128"},
      {{"predict", "--weights", kTorchWeights, "5", "min", "128"}, "operand B must be in [0, 127], found 128"},
      {{"predict", "--weights", kTorchWeights, "-1", "max", "5"}, "operand A must be in [0, 127], found -1"},
      {{"predict", "--weights", kTorchWeights, "17x", "max", "5"}, "operand A expects an integer, found '17x'"},
      {{"predict", "--weights", kTorchWeights, "5", "max", "1e3"}, "operand B expects an integer, found '1e3'"},
      {{"predict", "--weights", kTorchWeights, "5", "avg", "7"}, "OP must be 'max' or 'min', found 'avg'"},
  };
  for (const Case& c : cases) {
    const Outcome o = run_minmax(c.args);
    CHECK_EXIT_STATUS(o, 2);
    CHECK_STDERR_HAS(o, "minmax: " + c.message);
  }
}

// ---- predict ----------------------------------------------------------------------------------------------
TEST_CASE("predict prints the network's answer, whether it is right, and the attention from '=' as in train's maps") {
  const std::string weights = trained_weights();
  ReferenceNet net;
  tinyattn::io::load_weights(net, weights);
  const tinyattn::MinMaxTask task(128);

  struct Query {
    int a;
    const char* op;
    int b;
  };
  int right = 0;
  for (const Query q : {Query{17, "max", 99}, Query{99, "min", 17}, Query{0, "max", 127}, Query{64, "min", 64},
                        Query{120, "max", 3}, Query{126, "min", 127}}) {
    const Outcome o = run_minmax({"predict", "--weights", weights, std::to_string(q.a), q.op, std::to_string(q.b)});
    REQUIRE_EXIT_STATUS(o, 0);
    INFO(o.describe());
    const auto op = std::string(q.op) == "max" ? tinyattn::MinMaxOp::max : tinyattn::MinMaxOp::min;
    const auto cache = net.inspect(task.batch({task.index_of(q.a, op, q.b)}));
    // The attention maps train wrote (heads x keys A, op, B x a x b) hold the same pattern.
    const auto maps =
        tinyattn::io::read_npy<float>(fs::path(weights).parent_path().string() + "/attention_weights_" + q.op + ".npy");
    REQUIRE(maps.shape == std::vector<std::int64_t>{2, 3, 128, 128});

    std::istringstream lines(o.out);
    std::string line;
    std::getline(lines, line);
    char op_name[8] = {}, verdict[8] = {};
    int a = -1, b = -1, answer = -1, expected = -1;
    REQUIRE(std::sscanf(line.c_str(), "%7[a-z](%d, %d) = %d (%7[a-z]; expected %d)", op_name, &a, &b, &answer, verdict,
                        &expected) == 6);
    CHECK(std::string(op_name) == q.op);
    CHECK(a == q.a);
    CHECK(b == q.b);
    CHECK(expected == tinyattn::MinMaxTask::answer(q.a, op, q.b));
    CHECK(answer == net.predict(task.batch({task.index_of(q.a, op, q.b)}))[0]);
    CHECK(std::string(verdict) == (answer == expected ? "right" : "wrong"));
    right += answer == expected;

    std::getline(lines, line);
    CHECK(line.find("attention from '='") != std::string::npos);
    for (int h = 0; h < 2; ++h) {
      REQUIRE(std::getline(lines, line));
      int head = -1;
      double w[4] = {};
      REQUIRE(std::sscanf(line.c_str(), " head %d %lf %lf %lf %lf", &head, &w[0], &w[1], &w[2], &w[3]) == 5);
      CHECK(head == h);
      for (int k = 0; k < 4; ++k) CHECK(std::abs(w[k] - cache.weight(0, h, 3, k)) <= 0.6e-4);
      for (int k = 0; k < 3; ++k) {
        const float in_map = maps.values[((static_cast<std::size_t>(h) * 3 + k) * 128 + q.a) * 128 + q.b];
        CHECK_MESSAGE(std::abs(w[k] - in_map) <= 0.6e-4,
                      "attention_weights_" << std::string(q.op) << ".npy[" << h << ", " << k << ", " << q.a << ", "
                                           << q.b << "] is " << in_map << ", predict printed " << w[k]);
      }
      CHECK(std::abs(w[0] + w[1] + w[2] + w[3] - 1.0) <= 3e-4);
    }
  }
  MESSAGE(right << " of 6 queries answered right after 60 epochs");
}

TEST_CASE("predict with a weights file that is missing, of another shape or damaged: status 1 naming the file") {
  Scratch dir;
  SUBCASE("missing") {
    const std::string path = dir.file("absent.safetensors");
    const Outcome o = run_minmax({"predict", "--weights", path, "1", "max", "2"});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, path);
    CHECK_STDERR_HAS(o, "No such file or directory");
  }
  SUBCASE("another shape (D=24, 3 heads)") {
    const std::string path = dir.file("d24.safetensors");
    tinyattn::io::save_weights(tinyattn::AttentionNetwork<tinyattn::Shape<131, 24, 3, 4>>(1), path);
    const Outcome o = run_minmax({"predict", "--weights", path, "1", "max", "2"});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, path + ": the file's configuration has d_model = 24, this model has 32");
  }
  SUBCASE("truncated") {
    const std::string path = dir.file("truncated.safetensors");
    const std::string whole = read_text(kTorchWeights);
    write_text(path, whole.substr(0, whole.size() / 2));
    const Outcome o = run_minmax({"predict", "--weights", path, "1", "max", "2"});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, path);
    CHECK_STDERR_HAS(o, "truncated");
  }
  SUBCASE("garbage") {
    const std::string path = dir.file("garbage.safetensors");
    write_text(path, "this is not a safetensors file, just some text\n");
    const Outcome o = run_minmax({"predict", "--weights", path, "1", "max", "2"});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "minmax: error: " + path + ": header length");
  }
  SUBCASE("a directory") {
    const Outcome o = run_minmax({"predict", "--weights", dir.path.string(), "1", "max", "2"});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "Is a directory");
  }
}

// ---- the output directory --------------------------------------------------------------------------------
TEST_CASE("train --out where no directory can be made or written: status 1 and a message naming it") {
  Scratch dir;
  write_text(dir.file("somefile"), "a regular file\n");
  SUBCASE("under a regular file") {
    const std::string out = dir.file("somefile") + "/x";
    const Outcome o = run_minmax({"train", "--epochs", "0", "--no-plot", "--out", out});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "cannot create output directory '" + out + "': Not a directory");
  }
  SUBCASE("a regular file") {
    const Outcome o = run_minmax({"train", "--epochs", "0", "--no-plot", "--out", dir.file("somefile")});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "cannot create output directory '" + dir.file("somefile") + "': Not a directory");
    CHECK(read_text(dir.file("somefile")) == "a regular file\n");
  }
  // Tests run as root here, and permission bits do not stop root (CAP_DAC_OVERRIDE). procfs refuses
  // writes whatever the caller's privileges: a process directory such as /proc/self denies write
  // access to everyone, and no regular file can be created in /proc itself.
  SUBCASE("a process directory in /proc (write access denied even to root)") {
    const Outcome o = run_minmax({"train", "--epochs", "0", "--no-plot", "--out", "/proc/self"});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "cannot write to output directory '/proc/self'");
  }
  SUBCASE("/proc itself (root passes the access check; the probe file before training fails)") {
    const Outcome o = run_minmax({"train", "--epochs", "0", "--no-plot", "--out", "/proc"});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "cannot write to output directory '/proc'");
    CHECK(o.out.find("training") == std::string::npos);  // refused before any training
  }
}

// ---- gnuplot -------------------------------------------------------------------------------------------------
const std::set<std::string> kFilesWithoutFigures{"weights.safetensors",       "curves.csv",
                                                 "attention_weights_max.npy", "attention_scores_max.npy",
                                                 "attention_weights_min.npy", "attention_scores_min.npy"};
const std::vector<std::string> kFigures{"curves.png", "attention_weights_max.png", "attention_scores_max.png",
                                        "attention_weights_min.png", "attention_scores_min.png"};

TEST_CASE("train and plot without gnuplot: status 0, a warning, every file but the figures") {
  Scratch dir;
  const ChildSettings no_gnuplot{{{"GNUPLOT_IOSTREAM_CMD", "/nonexistent/gnuplot"}}, {}, {}};
  const std::string out = dir.file("run");
  const Outcome o = run_minmax({"train", "--epochs", "3", "--threads", "1", "--out", out}, no_gnuplot);
  CHECK_EXIT_STATUS(o, 0);
  CHECK_STDERR_HAS(o, "warning: gnuplot not found (tried '/nonexistent/gnuplot'");
  CHECK_ENTRIES(out, kFilesWithoutFigures);

  const std::string plots = dir.file("plots");
  const Outcome p = run_minmax({"plot", "--weights", out + "/weights.safetensors", "--out", plots}, no_gnuplot);
  CHECK_EXIT_STATUS(p, 0);
  CHECK_STDERR_HAS(p, "warning: gnuplot not found");
  CHECK_ENTRIES(plots, {"attention_weights_max.npy", "attention_scores_max.npy", "attention_weights_min.npy",
                        "attention_scores_min.npy"});
}

TEST_CASE("train and plot with a failing gnuplot: status 1 and a clear message, every other file written") {
  Scratch dir;
  const ChildSettings failing{{{"GNUPLOT_IOSTREAM_CMD", "false"}}, {}, {}};
  const std::string out = dir.file("run");
  const Outcome o = run_minmax({"train", "--epochs", "3", "--threads", "1", "--out", out}, failing);
  CHECK_EXIT_STATUS(o, 1);
  CHECK_STDERR_HAS(o, "minmax: error: tinyattn::plot: gnuplot command 'false' drawing");
  CHECK_STDERR_HAS(o, "failed with exit status 1");
  CHECK_ENTRIES(out, kFilesWithoutFigures);  // no figure, no partial figure, no temporary file

  const std::string plots = dir.file("plots");
  const Outcome p = run_minmax({"plot", "--weights", out + "/weights.safetensors", "--out", plots}, failing);
  CHECK_EXIT_STATUS(p, 1);
  CHECK_STDERR_HAS(p, "gnuplot command 'false'");
  CHECK_ENTRIES(plots, {"attention_weights_max.npy", "attention_scores_max.npy", "attention_weights_min.npy",
                        "attention_scores_min.npy"});
}

std::optional<std::string> gnuplot_on_path() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');)
    if (!d.empty() && ::access((d + "/gnuplot").c_str(), X_OK) == 0) return d + "/gnuplot";
  return std::nullopt;
}

TEST_CASE("train with gnuplot on PATH draws the five PNG figures") {
  if (!gnuplot_on_path()) {
    MESSAGE("gnuplot is not on PATH: skipped");
    return;
  }
  Scratch dir;
  const std::string out = dir.file("run");
  const Outcome o = run_minmax({"train", "--epochs", "3", "--threads", "1", "--out", out},
                               {{{"GNUPLOT_IOSTREAM_CMD", std::nullopt}}, {}, {}});
  CHECK_EXIT_STATUS(o, 0);
  CHECK_MESSAGE(o.err.find("warning") == std::string::npos, o.describe());
  std::set<std::string> expected = kFilesWithoutFigures;
  expected.insert(kFigures.begin(), kFigures.end());
  CHECK_ENTRIES(out, expected);
  for (const std::string& png : kFigures) {
    INFO(png);
    const std::string bytes = read_text(out + "/" + png);
    CHECK(bytes.size() > 1000);
    CHECK(bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  }
}

// ---- crash-safe training ------------------------------------------------------------------------------------
// 200 epochs (about a second on one thread) leave ample time to kill or interrupt the run between
// its checkpoints at 20 and 200.
const std::vector<std::string> kResumableRun{"train", "--epochs",  "200",       "--checkpoint-every",
                                             "10",    "--no-plot", "--threads", "1"};

std::vector<std::string> with_out(std::vector<std::string> args, const std::string& out) {
  args.insert(args.end(), {"--out", out});
  return args;
}

// The uninterrupted run every resumed run must match, once per test process.
const std::string& uninterrupted_run() {
  static Scratch directory;
  static const std::string out = [] {
    const Outcome o = run_minmax(with_out(kResumableRun, directory.file("A")));
    REQUIRE_EXIT_STATUS(o, 0);
    return directory.file("A");
  }();
  return out;
}

void check_same_as_uninterrupted(const std::string& dir) {
  const std::string& reference = uninterrupted_run();
  check_same_tensors(reference + "/weights.safetensors", dir + "/weights.safetensors");
  const std::string expected_curves = read_text(reference + "/curves.csv"), curves = read_text(dir + "/curves.csv");
  CHECK(std::count(expected_curves.begin(), expected_curves.end(), '\n') == 201);
  CHECK(curves == expected_curves);
  CHECK(temporary_files_in(dir).empty());
}

TEST_CASE("a run killed with SIGKILL resumes from its last checkpoint to the uninterrupted result, bit for bit") {
  uninterrupted_run();
  Scratch dir;
  const std::string out = dir.file("B"), checkpoint = out + "/checkpoint.safetensors";
  Child run(kMinmax, with_out(kResumableRun, out));
  // Kill once a checkpoint at epoch >= 20 exists, at a moment when no file is being written: stop the
  // process, look for temporary files, kill it if there are none, otherwise let it go on and retry.
  // (SIGKILL leaves a temporary file behind when it hits a write; that is inherent, not tested here.)
  std::optional<long> killed_after;
  int writes_in_progress = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;  // below ctest's TIMEOUT (120 s)
  while (!killed_after && run.running() && std::chrono::steady_clock::now() < deadline) {
    const auto epoch = checkpoint_epoch(checkpoint);
    if (epoch && *epoch >= 20) {
      if (!run.stop()) break;
      if (temporary_files_in(out).empty()) {
        run.send(SIGKILL);
        killed_after = checkpoint_epoch(checkpoint);
      } else {
        ++writes_in_progress;
        run.resume();
      }
    }
    std::this_thread::sleep_for(1ms);
  }
  const Outcome killed = run.wait();
  REQUIRE_MESSAGE(killed_after, "the run was not killed before it ended:\n" << killed.describe());
  CHECK(killed.signal == SIGKILL);
  REQUIRE(*killed_after < 200);
  MESSAGE("killed after the checkpoint at epoch " << *killed_after << " (" << writes_in_progress
                                                  << " earlier stops found a write in progress)");
  CHECK_FALSE(is_file(out + "/weights.safetensors"));

  const Outcome resumed = run_minmax({"train", "--resume", out, "--epochs", "200", "--no-plot", "--threads", "1"});
  REQUIRE_EXIT_STATUS(resumed, 0);
  CHECK_STDOUT_HAS(resumed, "resuming from " + out + " at epoch " + std::to_string(*killed_after));
  check_same_as_uninterrupted(out);
}

TEST_CASE("SIGINT saves a checkpoint, exits with 130 and says how to resume, and the resumed run is bit-identical") {
  uninterrupted_run();
  Scratch dir;
  const std::string out = dir.file("C");
  Child run(kMinmax, with_out(kResumableRun, out));
  REQUIRE_MESSAGE(wait_for_stdout(run, "epoch 1/200"), run.wait().describe());  // training, handlers installed
  run.send(SIGINT);
  const Outcome interrupted = run.wait();
  REQUIRE_EXIT_STATUS(interrupted, 130);
  CHECK_STDERR_HAS(interrupted, "interrupted (SIGINT) after epoch ");
  CHECK_STDERR_HAS(interrupted, "checkpoint saved");
  const std::string advice = "continue with: minmax train --resume " + out + " --epochs 200";
  CHECK_STDERR_HAS(interrupted, advice);
  long epoch = -1;
  REQUIRE(std::sscanf(interrupted.err.c_str(), "interrupted (SIGINT) after epoch %ld", &epoch) == 1);
  CHECK(epoch >= 1);
  CHECK(epoch < 200);
  CHECK(checkpoint_epoch(out + "/checkpoint.safetensors") == epoch);
  CHECK_FALSE(is_file(out + "/weights.safetensors"));
  CHECK(temporary_files_in(out).empty());

  // The advice, as printed (plus --no-plot and --threads 1, which do not change the result).
  const std::size_t at = interrupted.err.find(advice) + std::string("continue with: minmax ").size();
  std::istringstream words(interrupted.err.substr(at, interrupted.err.find('\n', at) - at));
  std::vector<std::string> args{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
  args.insert(args.end(), {"--no-plot", "--threads", "1"});
  const Outcome resumed = run_minmax(args);
  REQUIRE_EXIT_STATUS(resumed, 0);
  CHECK_STDOUT_HAS(resumed, "resuming from " + out + " at epoch " + std::to_string(epoch));
  check_same_as_uninterrupted(out);
}

TEST_CASE("SIGTERM saves a checkpoint and exits with 130 too") {
  Scratch dir;
  const std::string out = dir.file("T");
  Child run(kMinmax, with_out(kResumableRun, out));
  REQUIRE_MESSAGE(wait_for_stdout(run, "epoch 1/200"), run.wait().describe());
  run.send(SIGTERM);
  const Outcome o = run.wait();
  CHECK_EXIT_STATUS(o, 130);
  CHECK_STDERR_HAS(o, "interrupted (SIGTERM) after epoch ");
  CHECK(checkpoint_epoch(out + "/checkpoint.safetensors").value_or(0) >= 1);
}

TEST_CASE("resume accepts a curves.csv ahead of its checkpoint (a crash between the two writes)") {
  // A crash after curves.csv was rewritten at epoch 20 but before checkpoint.safetensors was: the
  // checkpoint of a 10-epoch run next to the curves of the 20-epoch run.
  Scratch dir;
  const std::vector<std::string> run{"train", "--checkpoint-every", "10", "--no-plot", "--threads", "1"};
  auto epochs = [&](const char* n, const std::string& out) {
    std::vector<std::string> args = with_out(run, out);
    args.insert(args.end(), {"--epochs", n});
    return args;
  };
  REQUIRE_EXIT_STATUS(run_minmax(epochs("20", dir.file("twenty"))), 0);
  REQUIRE_EXIT_STATUS(run_minmax(epochs("10", dir.file("ten"))), 0);
  const std::string crashed = dir.file("crashed");
  fs::create_directory(crashed);
  fs::copy_file(dir.file("twenty/curves.csv"), crashed + "/curves.csv");
  fs::copy_file(dir.file("ten/checkpoint.safetensors"), crashed + "/checkpoint.safetensors");

  const Outcome resumed = run_minmax({"train", "--resume", crashed, "--epochs", "20", "--no-plot", "--threads", "1"});
  REQUIRE_EXIT_STATUS(resumed, 0);
  CHECK_STDOUT_HAS(resumed, "at epoch 10");
  check_same_tensors(dir.file("twenty/weights.safetensors"), crashed + "/weights.safetensors");
  CHECK(read_text(crashed + "/curves.csv") == read_text(dir.file("twenty/curves.csv")));
}

TEST_CASE("resume refuses conflicting settings (status 2) and a missing or inconsistent checkpoint (status 1)") {
  Scratch dir;
  const std::string out = dir.file("R"), checkpoint = out + "/checkpoint.safetensors";
  REQUIRE_EXIT_STATUS(
      run_minmax({"train", "--epochs", "2", "--checkpoint-every", "1", "--no-plot", "--threads", "1", "--out", out}),
      0);
  const std::string checkpoint_bytes = read_text(checkpoint), curves = read_text(out + "/curves.csv"),
                    weights = read_text(out + "/weights.safetensors");
  auto resume = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"train", "--resume", out, "--no-plot", "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_minmax(args);
  };

  const Outcome seed = resume({"--seed", "5", "--epochs", "4"});
  CHECK_EXIT_STATUS(seed, 2);
  CHECK_STDERR_HAS(seed, "--seed differs from the checkpoint's seed 0");

  const Outcome lr = resume({"--lr", "0.1", "--epochs", "4"});
  CHECK_EXIT_STATUS(lr, 2);
  CHECK_STDERR_HAS(lr, "--lr differs from the checkpoint's lr 0.002");

  const Outcome past = resume({"--epochs", "1"});
  CHECK_EXIT_STATUS(past, 1);
  CHECK_STDERR_HAS(past, "the checkpoint is at epoch 2, past --epochs 1");

  write_text(out + "/curves.csv", curves.substr(0, curves.rfind('\n', curves.size() - 2) + 1));  // one row left
  const Outcome short_curves = resume({"--epochs", "4"});
  CHECK_EXIT_STATUS(short_curves, 1);
  CHECK_STDERR_HAS(short_curves, out + "/curves.csv has 1 epochs, the checkpoint 2");
  write_text(out + "/curves.csv", curves);

  CHECK(read_text(checkpoint) == checkpoint_bytes);  // failed resumes leave the files alone
  CHECK(read_text(out + "/weights.safetensors") == weights);
  CHECK(resume({"--seed", "0", "--epochs", "3"}).exited_with(0));  // agreeing flags are fine

  const std::string empty = dir.file("empty");
  fs::create_directory(empty);
  const Outcome none = run_minmax({"train", "--resume", empty, "--epochs", "4", "--no-plot"});
  CHECK_EXIT_STATUS(none, 1);
  CHECK_STDERR_HAS(none, empty + "/checkpoint.safetensors: cannot open for reading: No such file or directory");
  CHECK(entries_of(empty).empty());
}

// ---- a full disk ----------------------------------------------------------------------------------------------
TEST_CASE("a full disk (RLIMIT_FSIZE): status 1 naming the file, no partial file, the old file kept") {
  Scratch dir;
  const std::string out = dir.file("full");
  fs::create_directory(out);
  const std::string previous = read_text(kTorchWeights);  // a weights file from an earlier run
  write_text(out + "/weights.safetensors", previous);

  SUBCASE("the weights at the end of training") {
    const Outcome o =
        run_minmax({"train", "--epochs", "2", "--no-plot", "--threads", "1", "--out", out}, {{}, 16 * 1024, {}});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "minmax: error: " + out + "/weights.safetensors: cannot write");
    CHECK_STDERR_HAS(o, "File too large");
    CHECK_ENTRIES(out, {"weights.safetensors"});
  }
  SUBCASE("a checkpoint during training") {
    const Outcome o =
        run_minmax({"train", "--epochs", "5", "--checkpoint-every", "2", "--no-plot", "--threads", "1", "--out", out},
                   {{}, 64 * 1024, {}});
    CHECK_EXIT_STATUS(o, 1);
    CHECK_STDERR_HAS(o, "minmax: error: " + out + "/checkpoint.safetensors: cannot write");
    CHECK_STDERR_HAS(o, "File too large");
    const auto left = entries_of(out);
    CHECK(left.count("checkpoint.safetensors") == 0);
    CHECK(temporary_files_in(out).empty());
  }
  CHECK(read_text(out + "/weights.safetensors") == previous);
}

// ---- divergence -------------------------------------------------------------------------------------------------
TEST_CASE("training that diverges stops with status 1 naming the epoch and keeps the last good weights") {
  // AdamW's decoupled decay multiplies every weight by 1 - lr * weight_decay = 1 - 1e7 per step: the
  // logits overflow within a few epochs and the training loss becomes NaN.
  Scratch dir;
  const std::string out = dir.file("diverged");
  const Outcome o = run_minmax(
      {"train", "--epochs", "30", "--lr", "10", "--weight-decay", "1e6", "--no-plot", "--threads", "1", "--out", out});
  CHECK_EXIT_STATUS(o, 1);
  const std::size_t at = o.err.find("training diverged at epoch ");
  REQUIRE_MESSAGE(at != std::string::npos, o.describe());
  const long epoch = std::stol(o.err.substr(at + std::string("training diverged at epoch ").size()));
  CHECK(epoch >= 2);
  CHECK(epoch <= 30);
  CHECK_STDERR_HAS(o, "last good weights saved to " + out + "/weights.safetensors");

  ReferenceNet net;
  const auto meta = tinyattn::io::load_weights(net, out + "/weights.safetensors");
  CHECK(meta.at("epochs") == std::to_string(epoch - 1));
  const auto parameters = net.parameters();
  CHECK(std::count_if(parameters.begin(), parameters.end(), [](float w) { return !std::isfinite(w); }) == 0);
  const std::string curves = read_text(out + "/curves.csv");
  CHECK(std::count(curves.begin(), curves.end(), '\n') == epoch);  // header + the good epochs
  CHECK(temporary_files_in(out).empty());
}

}  // namespace

namespace {

// ---- eval -------------------------------------------------------------------------------------------------
std::string json_value(const std::string& json, const std::string& key) {
  const std::string quoted = "\"" + key + "\": ";
  const auto at = json.find(quoted);
  REQUIRE_MESSAGE(at != std::string::npos, "no " << key << " in " << json);
  const auto begin = at + quoted.size();
  return json.substr(begin, json.find_first_of(",}", begin) - begin);
}

TEST_CASE("minmax eval prints the peer's numbers for the peer's weights (either naming) — bad use exits 2") {
  for (const char* name : {"minmax_tl_seed3", "minmax_notebook_names_seed3", "library_minmax_tl_seed9"}) {
    INFO(name);
    const Outcome o =
        run_minmax({"eval", "--weights", fixture(std::string("peer_weights/") + name + ".safetensors"), "--json"});
    REQUIRE_EXIT_STATUS(o, 0);
    const std::string peer = read_text(fixture(std::string("peer_weights/") + name + ".eval.json"));
    for (const char* part : {"", "train_", "test_"}) {
      CHECK(json_value(o.out, std::string(part) + "scored") == json_value(peer, std::string(part) + "scored"));
      const double ours = std::stod(json_value(o.out, std::string(part) + "loss"));
      const double theirs = std::stod(json_value(peer, std::string(part) + "loss"));
      CHECK(ours == doctest::Approx(theirs).epsilon(1e-5));
    }
    CHECK(json_value(o.out, "wrong") == json_value(peer, "wrong"));
  }
  const Outcome table = run_minmax({"eval", "--weights", kTorchWeights, "--seed", "0"});
  CHECK_EXIT_STATUS(table, 0);
  CHECK_STDOUT_HAS(table, "split of seed 0");
  CHECK_EXIT_STATUS(run_minmax({"eval"}), 2);
  CHECK_EXIT_STATUS(run_minmax({"eval", "--weights", kTorchWeights, "extra"}), 2);
  const Outcome unknown = run_minmax({"fly", "--help"});
  CHECK_EXIT_STATUS(unknown, 2);
  CHECK_STDERR_HAS(unknown, "unknown command 'fly'");
  const Outcome seed = run_minmax({"train", "--seed", "99999999999999999999"});
  CHECK_EXIT_STATUS(seed, 2);
  CHECK_STDERR_HAS(seed, "--seed must be in [0, 9223372036854775807], found 99999999999999999999");
}

}  // namespace

namespace {

TEST_CASE("minmax analyze: circuits, attribution, ablations and failures that agree with eval and predict") {
  Scratch dir;
  const std::string out = dir.file("analysis");
  const Outcome o = run_minmax({"analyze", "--weights", trained_weights(), "--out", out},
                               {{{"GNUPLOT_IOSTREAM_CMD", std::nullopt}}, {}, {}});
  REQUIRE_EXIT_STATUS(o, 0);
  const std::set<std::string> data_files = {"qk_circuit.npy", "ov_circuit.npy", "attribution.npy", "margins.npy",
                                            "failures.csv",   "ablation.csv",   "report.md"};
  std::set<std::string> with_figures = data_files;
  for (const char* png : {"qk_circuit.png", "ov_circuit.png", "attribution.png", "margins.png"})
    with_figures.insert(png);
  if (gnuplot_on_path()) {
    CHECK_ENTRIES(out, with_figures);
  } else {
    CHECK_ENTRIES(out, data_files);
  }

  // Shapes: (H, 3 key positions, V), (H, 3, V, V), (components without the constant, op, a, b), (op, a, b).
  CHECK(tinyattn::io::read_npy<float>(out + "/qk_circuit.npy").shape == std::vector<std::int64_t>{2, 3, 131});
  CHECK(tinyattn::io::read_npy<float>(out + "/ov_circuit.npy").shape == std::vector<std::int64_t>{2, 3, 131, 131});
  CHECK(tinyattn::io::read_npy<float>(out + "/attribution.npy").shape == std::vector<std::int64_t>{4, 2, 128, 128});
  const auto margins = tinyattn::io::read_npy<float>(out + "/margins.npy");
  REQUIRE(margins.shape == std::vector<std::int64_t>{2, 128, 128});

  // The failures are exactly the inputs eval counts wrong, and each is one predict gets wrong.
  const Outcome eval = run_minmax({"eval", "--weights", trained_weights(), "--json"});
  REQUIRE_EXIT_STATUS(eval, 0);
  const std::string failures = read_text(out + "/failures.csv");
  const long lines = std::count(failures.begin(), failures.end(), '\n');
  CHECK(lines - 1 == std::stol(json_value(eval.out, "wrong")));
  REQUIRE(lines > 1);  // 60 epochs leave many
  std::istringstream rows(failures);
  std::string header, first;
  std::getline(rows, header);
  std::getline(rows, first);
  CHECK(header == "op,a,b,answer,expected,margin,head0_A,head0_op,head0_B,head1_A,head1_op,head1_B");
  std::vector<std::string> cells;
  for (std::istringstream fields(first); std::getline(fields, cells.emplace_back(), ',');) {
  }
  cells.pop_back();
  REQUIRE(cells.size() == 12);
  const Outcome p = run_minmax({"predict", "--weights", trained_weights(), cells[1], cells[0], cells[2]});
  REQUIRE_EXIT_STATUS(p, 0);
  CHECK_STDOUT_HAS(p, cells[3]);
  CHECK_STDOUT_HAS(p, "wrong");
  const int op = cells[0] == "max" ? 0 : 1;
  CHECK(margins.values[(static_cast<std::size_t>(op) * 128 + std::stoul(cells[1])) * 128 + std::stoul(cells[2])] <=
        0.0f);

  // The un-ablated row of the table is the model's accuracy.
  const std::string ablation = read_text(out + "/ablation.csv");
  CHECK(ablation.rfind("ablated,max_accuracy,min_accuracy\nnone,", 0) == 0);
  const std::string report = read_text(out + "/report.md");
  for (const char* part :
       {"# What the min/max model does", "## The heads", "## Ablations", "## Failures", "(qk_circuit.png)",
        "(ov_circuit.png)", "(attribution.png)", "(margins.png)", "| zero head 0 |", "| mean heads 0, 1 |"})
    CHECK_MESSAGE(report.find(part) != std::string::npos, "report.md lacks " << part);
  CHECK(temporary_files_in(out).empty());
}

TEST_CASE("minmax analyze without gnuplot writes the data and the report — bad use exits 2, bad weights 1") {
  Scratch dir;
  const ChildSettings no_gnuplot{{{"GNUPLOT_IOSTREAM_CMD", "/nonexistent/gnuplot"}}, {}, {}};
  const std::string out = dir.file("analysis");
  const Outcome o = run_minmax({"analyze", "--weights", kTorchWeights, "--out", out}, no_gnuplot);
  CHECK_EXIT_STATUS(o, 0);
  CHECK_STDERR_HAS(o, "warning: gnuplot not found");
  CHECK_ENTRIES(out, {"qk_circuit.npy", "ov_circuit.npy", "attribution.npy", "margins.npy", "failures.csv",
                      "ablation.csv", "report.md"});
  CHECK(read_text(out + "/report.md").find("gnuplot was not found") != std::string::npos);

  CHECK_EXIT_STATUS(run_minmax({"analyze"}), 2);
  CHECK_EXIT_STATUS(run_minmax({"analyze", "--weights", kTorchWeights, "extra"}), 2);
  const Outcome other =
      run_minmax({"analyze", "--weights", fixture("golden_d24_h3_seed7.safetensors"), "--out", dir.file("other")});
  CHECK_EXIT_STATUS(other, 1);
  CHECK_STDERR_HAS(other, "golden_d24_h3_seed7.safetensors");
  const std::string under_file = dir.file("plain");
  write_text(under_file, "x");
  const Outcome blocked = run_minmax({"analyze", "--weights", kTorchWeights, "--out", under_file + "/sub"});
  CHECK_EXIT_STATUS(blocked, 1);
  CHECK_STDERR_HAS(blocked, "cannot create output directory");
}

}  // namespace

namespace {

TEST_CASE("train --snapshot-every K: attention over training as .npy, .gif and progress measures") {
  Scratch dir;
  const std::string out = dir.file("run");
  const Outcome o = run_minmax({"train", "--epochs", "20", "--snapshot-every", "10", "--threads", "1", "--out", out},
                               {{{"GNUPLOT_IOSTREAM_CMD", std::nullopt}}, {}, {}});
  REQUIRE_EXIT_STATUS(o, 0);
  CHECK_STDOUT_HAS(o, "snapshots: 3 frames");
  // Frames at epochs 0, 10 and 20: (frames, op, heads, keys, a, b) bytes.
  const auto frames = tinyattn::io::read_npy<std::uint8_t>(out + "/attention_evolution.npy");
  REQUIRE(frames.shape == std::vector<std::int64_t>{3, 2, 2, 3, 128, 128});
  // The last frame is the final model's map that train writes as float: weight * 255, rounded.
  const auto final_max = tinyattn::io::read_npy<float>(out + "/attention_weights_max.npy");
  const auto final_min = tinyattn::io::read_npy<float>(out + "/attention_weights_min.npy");
  const std::size_t per_op = final_max.values.size();
  REQUIRE(per_op == static_cast<std::size_t>(2) * 3 * 128 * 128);
  std::size_t off = 0;
  for (int op = 0; op < 2; ++op) {
    const auto& expected = op == 0 ? final_max.values : final_min.values;
    for (std::size_t i = 0; i < per_op; ++i) {
      const double diff = std::abs(frames.values[(2 * 2 + op) * per_op + i] - 255.0 * expected[i]);
      if (diff > 0.5 + 1e-3) ++off;
    }
  }
  CHECK(off == 0);
  // progress.csv: a row per frame; the first frame's heads are near uniform (entropy ~ ln 4).
  std::istringstream csv(read_text(out + "/progress.csv"));
  std::string header, line;
  std::getline(csv, header);
  CHECK(header.rfind("epoch,entropy_head0,entropy_head1,norm_embed.W_E,", 0) == 0);
  CHECK(header.size() > 64);
  CHECK(header.substr(header.size() - 64) == ",test_loss_max,test_loss_min,test_accuracy_max,test_accuracy_min");
  std::vector<std::string> epochs;
  double first_entropy = 0;
  std::vector<double> last;  // the last row's numbers
  while (std::getline(csv, line)) {
    epochs.push_back(line.substr(0, line.find(',')));
    if (epochs.size() == 1) first_entropy = std::stod(line.substr(line.find(',') + 1));
    last.clear();
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) last.push_back(std::stod(cell));
  }
  CHECK(epochs == std::vector<std::string>{"0", "10", "20"});
  CHECK(first_entropy > 1.3);
  CHECK(first_entropy <= std::log(4.0) + 1e-9);
  // The subsets are the test split's max and min inputs: together, the test set of curves.csv's epoch 20.
  const tinyattn::MinMaxTask task(128, 0);
  double max_in_test = 0;
  for (const tinyattn::index_t i : task.test_indices()) max_in_test += task.sample(i).op == tinyattn::MinMaxOp::max;
  const double share = max_in_test / static_cast<double>(task.test_indices().size());
  REQUIRE(last.size() >= 4);
  const double loss_max = last[last.size() - 4], loss_min = last[last.size() - 3];
  const double accuracy_max = last[last.size() - 2], accuracy_min = last[last.size() - 1];
  std::istringstream curves(read_text(out + "/curves.csv"));
  std::string final_epoch;
  while (std::getline(curves, line)) final_epoch = line;  // epoch,train_loss,train_acc,test_loss,test_acc
  std::vector<double> final_numbers;
  std::istringstream cells(final_epoch);
  for (std::string cell; std::getline(cells, cell, ',');) final_numbers.push_back(std::stod(cell));
  REQUIRE(final_numbers.size() == 5);
  CHECK(share * loss_max + (1 - share) * loss_min == doctest::Approx(final_numbers[3]).epsilon(1e-5));
  CHECK(share * accuracy_max + (1 - share) * accuracy_min == doctest::Approx(final_numbers[4]).epsilon(1e-5));
  if (gnuplot_on_path()) {
    CHECK(tinyattn::plot::gif_frame_count(out + "/attention_evolution.gif") == 3);
    CHECK(is_file(out + "/progress.png"));
    CHECK(is_file(out + "/progress_norms.png"));
  }
  CHECK(temporary_files_in(out).empty());
}

TEST_CASE("--snapshot-every: bad values are usage errors — without gnuplot the data is still written") {
  Scratch dir;
  for (const char* bad : {"0", "-3", "x", "1.5"}) {
    const Outcome o = run_minmax({"train", "--snapshot-every", bad, "--out", dir.file("bad")});
    CHECK_EXIT_STATUS(o, 2);
    CHECK_STDERR_HAS(o, "--snapshot-every");
  }
  CHECK(!fs::exists(dir.file("bad")));
  const ChildSettings no_gnuplot{{{"GNUPLOT_IOSTREAM_CMD", "/nonexistent/gnuplot"}}, {}, {}};
  const std::string out = dir.file("run");
  const Outcome o =
      run_minmax({"train", "--epochs", "4", "--snapshot-every", "2", "--threads", "1", "--out", out}, no_gnuplot);
  CHECK_EXIT_STATUS(o, 0);
  CHECK_STDERR_HAS(o, "warning: gnuplot not found");
  std::set<std::string> expected = kFilesWithoutFigures;
  expected.insert("attention_evolution.npy");
  expected.insert("progress.csv");
  CHECK_ENTRIES(out, expected);
}

}  // namespace
