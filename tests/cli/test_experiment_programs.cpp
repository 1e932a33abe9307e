// The grokking and induction programs (examples/grokking, examples/induction) as their users meet them:
// the real binaries, judged by exit status (0, 1 run-time error, 2 usage error, 130 interrupted), messages
// and the files they leave. Short runs only (a few epochs, small data) to keep the suite fast.
#include "../support/child_process.hpp"
#include "../support/scratch_directory.hpp"
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tinyattn/io/safetensors.hpp"
#include "tinyattn/plot/gnuplot_runner.hpp"

namespace fs = std::filesystem;

namespace {

using tinyattn::test::Child;
using tinyattn::test::ChildSettings;
using tinyattn::test::Outcome;
using tinyattn::test::read_text;
using tinyattn::test::run_program;
using tinyattn::test::ScratchDirectory;

const std::string kGrokking = TINYATTN_GROKKING_BINARY;
const std::string kInduction = TINYATTN_INDUCTION_BINARY;

std::string data_path(const std::string& name) { return std::string(TINYATTN_TEST_DATA_DIR) + "/" + name; }

std::set<std::string> entries_of(const std::string& directory) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) names.insert(entry.path().filename().string());
  return names;
}

bool is_png(const std::string& path) {
  const std::string bytes = read_text(path);
  return bytes.size() > 24 && bytes.compare(1, 3, "PNG") == 0;
}

nlohmann::json last_json_line(const std::string& text) {
  std::string line, last;
  std::istringstream in(text);
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') last = line;
  REQUIRE_MESSAGE(!last.empty(), "no JSON line in: " << text);
  return nlohmann::json::parse(last);
}

// Loss and accuracy match the peer's --eval JSON of the same file (relative 1e-5; counts exactly).
void check_eval_equals_peer(const nlohmann::json& ours, const nlohmann::json& theirs) {
  for (const char* part : {"", "train_", "test_"}) {
    INFO(part);
    CHECK(ours[std::string(part) + "scored"].get<long long>() == theirs[std::string(part) + "scored"].get<long long>());
    CHECK(ours[std::string(part) + "loss"].get<double>() ==
          doctest::Approx(theirs[std::string(part) + "loss"].get<double>()).epsilon(1e-5));
  }
  CHECK(ours["wrong"].get<long long>() == theirs["wrong"].get<long long>());
}

// Every tensor of file a is in file b with the same bytes.
void check_same_tensors(const std::string& a_path, const std::string& b_path) {
  const auto a = tinyattn::io::SafetensorsFile::load(a_path);
  const auto b = tinyattn::io::SafetensorsFile::load(b_path);
  for (const auto& t : a.tensors()) {
    INFO(t.name);
    REQUIRE(b.contains(t.name));
    CHECK(std::memcmp(t.data, b.tensor(t.name).data, t.bytes) == 0);
  }
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return last_json_line(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

TEST_CASE("grokking and induction: --help, and usage errors exit 2 before any work") {
  for (const std::string& binary : {kGrokking, kInduction}) {
    const std::string name = fs::path(binary).filename().string();
    INFO(name);
    const Outcome help = run_program(binary, {"--help"});
    CHECK_EXIT_STATUS(help, 0);
    for (const char* word : {" train", " eval", " plot", " predict", "--eval-every", "--resume"})
      CHECK_STDOUT_HAS(help, word);
    CHECK_EXIT_STATUS(run_program(binary, {}), 2);
    const Outcome unknown = run_program(binary, {"fly", "--help"});
    CHECK_EXIT_STATUS(unknown, 2);
    CHECK_STDERR_HAS(unknown, "unknown command 'fly'");
    const Outcome flag = run_program(binary, {"train", "--epoch", "3"});
    CHECK_EXIT_STATUS(flag, 2);
    CHECK_STDERR_HAS(flag, "unknown option '--epoch'");
    const Outcome range = run_program(binary, {"train", "--seed", "99999999999999999999"});
    CHECK_EXIT_STATUS(range, 2);
    CHECK_STDERR_HAS(range, "--seed must be in [0, 9223372036854775807], found 99999999999999999999");
    const Outcome eval_every = run_program(binary, {"train", "--eval-every", "0"});
    CHECK_EXIT_STATUS(eval_every, 2);
    CHECK_STDERR_HAS(eval_every, "--eval-every must be in [1, 100000000], found 0");
    CHECK_EXIT_STATUS(run_program(binary, {"eval"}), 2);  // no --weights
  }
  const Outcome fraction = run_program(kGrokking, {"train", "--train-fraction", "1.5"});
  CHECK_EXIT_STATUS(fraction, 2);
  CHECK_STDERR_HAS(fraction, "--train-fraction must be > 0 and <= 1, found 1.5");
  const Outcome predict = run_program(
      kGrokking, {"predict", "--weights", data_path("peer_weights/grokking_seed1.safetensors"), "17", "-", "99"});
  CHECK_EXIT_STATUS(predict, 2);
  CHECK_STDERR_HAS(predict, "predict needs A + B");
  const Outcome tokens = run_program(
      kInduction, {"predict", "--weights", data_path("peer_weights/induction_seed2.safetensors"), "1", "2"});
  CHECK_EXIT_STATUS(tokens, 2);
  CHECK_STDERR_HAS(tokens, "predict needs 16 tokens");
}

TEST_CASE("eval of the peer's trained weights prints the peer's own numbers") {
  const Outcome g =
      run_program(kGrokking, {"eval", "--weights", data_path("peer_weights/grokking_seed1.safetensors"), "--json"});
  REQUIRE_EXIT_STATUS(g, 0);
  check_eval_equals_peer(last_json_line(g.out), read_json(data_path("peer_weights/grokking_seed1.eval.json")));
  const Outcome i =
      run_program(kInduction, {"eval", "--weights", data_path("peer_weights/induction_seed2.safetensors"), "--json"});
  REQUIRE_EXIT_STATUS(i, 0);
  check_eval_equals_peer(last_json_line(i.out), read_json(data_path("peer_weights/induction_seed2.eval.json")));
  const Outcome table =
      run_program(kGrokking, {"eval", "--weights", data_path("peer_weights/grokking_seed1.safetensors")});
  REQUIRE_EXIT_STATUS(table, 0);
  CHECK_STDOUT_HAS(table, "test");
}

TEST_CASE("bad weights: missing, another configuration, damaged -> exit status 1 naming the file") {
  ScratchDirectory dir("tinyattn-programs");
  const Outcome missing = run_program(kGrokking, {"eval", "--weights", dir.file("absent.safetensors")});
  CHECK_EXIT_STATUS(missing, 1);
  CHECK_STDERR_HAS(missing, "absent.safetensors");
  const Outcome other =
      run_program(kGrokking, {"eval", "--weights", data_path("peer_weights/induction_seed2.safetensors")});
  CHECK_EXIT_STATUS(other, 1);
  CHECK_STDERR_HAS(other, "the file's configuration has d_vocab = 64, this model has 114");
  const std::string damaged = dir.file("damaged.safetensors");
  const std::string bytes = read_text(data_path("peer_weights/induction_seed2.safetensors"));
  std::ofstream(damaged, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  const Outcome cut = run_program(kInduction, {"plot", "--weights", damaged, "--out", dir.file("figures")});
  CHECK_EXIT_STATUS(cut, 1);
  CHECK_STDERR_HAS(cut, "damaged.safetensors");
}

// A short grokking run: every file, valid figures when gnuplot is there, eval of its own weights
// equals the library's evaluation printed at the end of training.
TEST_CASE("grokking train: files, figures, predict, and a resumed run bit-identical to an uninterrupted one") {
  ScratchDirectory dir("tinyattn-programs");
  const std::string out = dir.file("run");
  const std::vector<std::string> common{"--epochs", "12", "--eval-every", "4", "--threads", "1", "--out"};
  std::vector<std::string> args{"train"};
  args.insert(args.end(), common.begin(), common.end());
  args.push_back(out);
  const Outcome o = run_program(kGrokking, args);
  REQUIRE_EXIT_STATUS(o, 0);
  CHECK_STDOUT_HAS(o, "done: 12 epochs");
  std::set<std::string> expected{"weights.safetensors", "curves.csv", "fourier.csv", "attention.npy", "neurons.npy"};
  if (tinyattn::plot::gnuplot_available())
    for (const char* png : {"curves.png", "fourier.png", "attention.png", "neurons.png"}) expected.insert(png);
  CHECK(entries_of(out) == expected);
  for (const std::string& name : expected)
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".png") == 0) CHECK_MESSAGE(is_png(out + "/" + name), name);
  // curves.csv: 12 epochs, the test columns every 4th epoch and at the last
  const std::string curves = read_text(out + "/curves.csv");
  CHECK(curves.find("epoch,train_loss,train_acc,test_loss,test_acc\n") == 0);
  CHECK(curves.find("\n1,") != std::string::npos);
  CHECK(curves.find(",nan,nan\n") != std::string::npos);
  CHECK(curves.find("\n13,") == std::string::npos);
  const auto weights = tinyattn::io::SafetensorsFile::load(out + "/weights.safetensors");
  CHECK(weights.contains("blocks.0.mlp.W_in"));
  CHECK(weights.metadata().at("d_mlp") == "512");
  CHECK(weights.metadata().at("data_seed") == "598");
  const Outcome predict =
      run_program(kGrokking, {"predict", "--weights", out + "/weights.safetensors", "17", "+", "99"});
  CHECK_EXIT_STATUS(predict, 0);
  CHECK_STDOUT_HAS(predict, "expected 3");

  // 6 epochs with a checkpoint, then --resume to 12: the same weights, bit for bit.
  const std::string first = dir.file("first");
  std::vector<std::string> half{"train",     "--epochs",           "6", "--eval-every", "4",  "--threads", "1",
                                "--no-plot", "--checkpoint-every", "6", "--out",        first};
  REQUIRE_EXIT_STATUS(run_program(kGrokking, half), 0);
  const Outcome resumed = run_program(kGrokking, {"train", "--resume", first, "--epochs", "12", "--no-plot"});
  REQUIRE_EXIT_STATUS(resumed, 0);
  CHECK_STDOUT_HAS(resumed, "resuming from");
  check_same_tensors(out + "/weights.safetensors", first + "/weights.safetensors");
  CHECK(read_text(first + "/curves.csv") == curves);
  const Outcome disagree = run_program(kGrokking, {"train", "--resume", first, "--epochs", "14", "--lr", "0.5"});
  CHECK_EXIT_STATUS(disagree, 2);
  CHECK_STDERR_HAS(disagree, "--lr differs from the checkpoint's lr");
}

// A short grokking sweep: every row is `grokking train` of its settings (the same weights, bit for bit,
// and the same numbers), the mechanism columns are the Fourier summary, --resume ends with the same
// sweep.csv; the sweep's bad specifications are usage errors, and induction has no sweep.
TEST_CASE("grokking sweep: each row equals a grokking train run of its settings, --resume, usage errors") {
  ScratchDirectory dir("tinyattn-programs");
  const std::string sweep = dir.file("sweep");
  const Outcome o = run_program(
      kGrokking, {"sweep", "--seeds", "0-1", "--weight-decay", "0.5,1", "--train-fraction", "0.2", "--epochs", "4",
                  "--eval-every", "2", "--keep-weights", "--threads", "1", "--no-plot", "--out", sweep});
  REQUIRE_EXIT_STATUS(o, 0);
  CHECK_STDOUT_HAS(o, "4/4 runs");
  const std::string csv = read_text(sweep + "/sweep.csv");
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(csv);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> cells;
    std::istringstream fields(line);
    for (std::string cell; std::getline(fields, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  REQUIRE(rows.size() == 5);
  const std::vector<std::string> header{"run",
                                        "seed",
                                        "lr",
                                        "weight_decay",
                                        "train_fraction",
                                        "status",
                                        "epochs",
                                        "train_loss",
                                        "train_acc",
                                        "test_loss",
                                        "test_acc",
                                        "epoch_to_99pct",
                                        "fourier_top5_share",
                                        "key_frequency_1",
                                        "key_frequency_2",
                                        "key_frequency_3"};
  CHECK(rows[0] == header);
  for (std::size_t r = 1; r < rows.size(); ++r) {
    REQUIRE(rows[r].size() == header.size());
    const double share = std::stod(rows[r][12]);
    CHECK(share > 0);
    CHECK(share <= 1);
    for (std::size_t k = 13; k < 16; ++k) {
      CHECK(std::stoi(rows[r][k]) >= 1);
      CHECK(std::stoi(rows[r][k]) <= 56);
    }
  }
  // Run 3 (seed 1, weight decay 1) against `grokking train` of the same settings.
  CHECK(rows[4][1] == "1");
  CHECK(rows[4][3] == "1");
  const std::string single = dir.file("single");
  REQUIRE_EXIT_STATUS(
      run_program(kGrokking, {"train", "--seed", "1", "--weight-decay", "1", "--train-fraction", "0.2", "--epochs", "4",
                              "--eval-every", "2", "--threads", "1", "--no-plot", "--out", single}),
      0);
  check_same_tensors(single + "/weights.safetensors", sweep + "/weights/run-000003.safetensors");
  const std::string curves = read_text(single + "/curves.csv");  // epoch,train_loss,train_acc,test_loss,test_acc
  const auto row_of = [&](const std::string& epoch) {
    const auto at = curves.find("\n" + epoch + ",");
    REQUIRE(at != std::string::npos);
    return curves.substr(at + 1, curves.find('\n', at + 1) - at - 1);
  };
  CHECK(row_of("4") == "4," + rows[4][7] + "," + rows[4][8] + "," + rows[4][9] + "," + rows[4][10]);
  REQUIRE_EXIT_STATUS(run_program(kGrokking, {"eval", "--weights", sweep + "/weights/run-000003.safetensors"}), 0);

  // A lost row and sweep.csv: --resume runs that run again and writes the same sweep.csv.
  fs::remove(sweep + "/runs/run-000002.csv");
  fs::remove(sweep + "/sweep.csv");
  const Outcome resumed = run_program(kGrokking, {"sweep", "--resume", sweep, "--threads", "1", "--no-plot"});
  REQUIRE_EXIT_STATUS(resumed, 0);
  CHECK_STDOUT_HAS(resumed, "3 finished before");
  CHECK(read_text(sweep + "/sweep.csv") == csv);

  const Outcome fraction = run_program(kGrokking, {"sweep", "--train-fraction", "0.3,1", "--out", dir.file("bad")});
  CHECK_EXIT_STATUS(fraction, 2);
  CHECK_STDERR_HAS(fraction, "--train-fraction values must be > 0 and < 1, found 1");
  const Outcome axes = run_program(kGrokking, {"sweep", "--axes", "lr,depth", "--out", dir.file("bad")});
  CHECK_EXIT_STATUS(axes, 2);
  CHECK_STDERR_HAS(axes, "unknown axis 'depth'");
  const Outcome last_epoch = run_program(kGrokking, {"sweep", "--epochs", "250", "--out", dir.file("bad")});
  CHECK_EXIT_STATUS(last_epoch, 2);
  CHECK_STDERR_HAS(last_epoch,
                   "--epochs 250 is not a multiple of --eval-every 100: the last epoch would not be evaluated");
  CHECK(!fs::exists(dir.file("bad")));
  CHECK_STDOUT_HAS(run_program(kGrokking, {"--help"}), " sweep");
  const Outcome none = run_program(kInduction, {"sweep"});
  CHECK_EXIT_STATUS(none, 2);
  CHECK_STDERR_HAS(none, "unknown command 'sweep'; expected train, eval, plot or predict");
}

TEST_CASE(
    "induction train with minibatches: files, head scores, predict — without gnuplot it warns and still writes data") {
  ScratchDirectory dir("tinyattn-programs");
  const std::string out = dir.file("run");
  ChildSettings no_gnuplot;
  no_gnuplot.environment["GNUPLOT_IOSTREAM_CMD"] = std::string("gnuplot-that-does-not-exist");
  const Outcome o = run_program(kInduction,
                                {"train", "--epochs", "3", "--samples", "256", "--test-samples", "64", "--batch-size",
                                 "100", "--threads", "1", "--out", out},
                                no_gnuplot);
  REQUIRE_EXIT_STATUS(o, 0);
  CHECK_STDERR_HAS(o, "warning: gnuplot not found");
  CHECK_STDOUT_HAS(o, "minibatches of 100");
  CHECK_STDOUT_HAS(o, "prefix-matching");
  CHECK(entries_of(out) == std::set<std::string>{"weights.safetensors", "curves.csv", "loss_per_position.csv",
                                                 "attention.npy", "heads.csv", "heads.md"});
  const std::string heads = read_text(out + "/heads.csv");
  CHECK(heads.find("layer,head,previous_token,prefix_matching,copying,role\n") == 0);
  CHECK(std::count(heads.begin(), heads.end(), '\n') == 1 + 2 * 4);
  const std::string loss = read_text(out + "/loss_per_position.csv");
  CHECK(loss.find("\n15,nan,0\n") != std::string::npos);  // the first half is not scored
  CHECK(loss.find("\n16,") != std::string::npos);
  const Outcome eval = run_program(kInduction, {"eval", "--weights", out + "/weights.safetensors", "--json"});
  REQUIRE_EXIT_STATUS(eval, 0);
  const auto json = last_json_line(eval.out);
  CHECK(json["train_scored"].get<long long>() == 256 * 15);  // the saved data settings are used
  CHECK(json["test_scored"].get<long long>() == 64 * 15);
  std::vector<std::string> predict{"predict", "--weights", out + "/weights.safetensors"};
  for (int t = 0; t < 16; ++t) predict.push_back(std::to_string((7 * t) % 64));
  const Outcome p = run_program(kInduction, predict);
  CHECK_EXIT_STATUS(p, 0);
  CHECK_STDOUT_HAS(p, "repeated half:");
}

}  // namespace
