// Tests of tinyattn/io/atomic_file.hpp: the new content appears completely or not at all.
#include "../support/scratch_directory.hpp"
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "tinyattn/io/atomic_file.hpp"

namespace fs = std::filesystem;
using tinyattn::io::ByteSink;
using tinyattn::io::IoError;
using tinyattn::io::write_file_atomically;

namespace {

struct Scratch : tinyattn::test::ScratchDirectory {
  Scratch() : ScratchDirectory("tinyattn-atomic") {}
};

// A fresh directory per test (ctest may run test cases in parallel), removed afterwards.

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text_plainly(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Names of the entries in `directory` (to spot left-over temporary files).
std::vector<std::string> entries_of(const fs::path& directory) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) names.push_back(entry.path().filename());
  return names;
}

std::string io_error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const IoError& error) {
    return error.what();
  }
  FAIL("expected tinyattn::io::IoError");
  return {};
}

// Runs `child` in a forked process and returns its exit status (or 100 + signal when it was killed).
// Each child reports a distinct exit code per failed check, so a failure says which one.
int run_in_child(const std::function<int()>& child) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 99;
    try {
      code = child();
    } catch (...) {
      code = 98;
    }
    ::_exit(code);  // no doctest teardown, no atexit handlers in the child
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) return 100 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("write_file_atomically creates and replaces files with exactly the given bytes") {
  Scratch scratch;
  const std::string path = scratch.file("out.bin");

  write_file_atomically(path, std::string("first version"));
  CHECK(read_text(path) == "first version");

  const std::vector<unsigned char> binary{0, 1, 2, 255, 0};
  write_file_atomically(path, binary);
  CHECK(read_text(path) == std::string("\0\1\2\xff\0", 5));

  write_file_atomically(path, "");  // empty files are files too
  CHECK(fs::exists(path));
  CHECK(fs::file_size(path) == 0);

  CHECK(entries_of(scratch.path) == std::vector<std::string>{"out.bin"});
}

TEST_CASE("write_file_atomically streams many appends through the sink") {
  Scratch scratch;
  const std::string path = scratch.file("streamed.txt");
  std::string expected;
  const std::string big_block(200'000, 'x');  // larger than the sink's buffer: written through
  write_file_atomically(path, [&](ByteSink& sink) {
    for (int i = 0; i < 10'000; ++i) {
      const std::string line = std::to_string(i) + "\n";
      sink.append(line);
      expected += line;
    }
    sink.append(big_block);
    expected += big_block;
    sink.append(nullptr, 0);
    CHECK(sink.size() == expected.size());
  });
  CHECK(read_text(path) == expected);
}

TEST_CASE("write_file_atomically into a missing directory throws IoError naming the path") {
  Scratch scratch;
  const std::string path = scratch.file("no-such-directory/out.bin");
  const std::string message = io_error_message([&] { write_file_atomically(path, "data"); });
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("create temporary file") != std::string::npos);
  CHECK(message.find("No such file or directory") != std::string::npos);
  CHECK(entries_of(scratch.path).empty());
}

TEST_CASE("write_file_atomically below a regular file throws IoError") {
  Scratch scratch;
  write_text_plainly(scratch.file("plain"), "not a directory");
  const std::string path = scratch.file("plain/out.bin");
  const std::string message = io_error_message([&] { write_file_atomically(path, "data"); });
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("Not a directory") != std::string::npos);
  CHECK(read_text(scratch.file("plain")) == "not a directory");
}

TEST_CASE("write_file_atomically onto a directory fails at the rename and leaves nothing behind") {
  Scratch scratch;
  fs::create_directory(scratch.file("occupied"));
  const std::string path = scratch.file("occupied");
  const std::string message = io_error_message([&] { write_file_atomically(path, "data"); });
  CHECK(message.find("rename") != std::string::npos);
  CHECK(fs::is_directory(path));
  CHECK(entries_of(scratch.path) == std::vector<std::string>{"occupied"});
}

TEST_CASE("write_file_atomically into an unwritable directory throws IoError and creates nothing") {
  Scratch scratch;
  const fs::path locked = scratch.path / "locked";
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                              fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(scratch.path, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
  const std::string path = (locked / "out.bin").string();

  // root ignores permission bits, so the write runs as an unprivileged user when we are root.
  const int status = run_in_child([&] {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 10;
    try {
      write_file_atomically(path, "data");
    } catch (const IoError& error) {
      const std::string message = error.what();
      if (message.find(path) == std::string::npos) return 11;
      if (message.find("Permission denied") == std::string::npos) return 12;
      return 0;
    }
    return 13;  // no exception
  });
  CHECK(status == 0);
  CHECK(entries_of(locked).empty());
}

TEST_CASE("an exception thrown by the writer leaves the old file untouched and no temporary") {
  Scratch scratch;
  const std::string path = scratch.file("model.bin");
  write_text_plainly(path, "old content");
  CHECK_THROWS_WITH_AS(write_file_atomically(path,
                                             [](ByteSink& sink) {
                                               sink.append(std::string(100'000, 'n'));
                                               throw std::runtime_error("writer gave up");
                                             }),
                       "writer gave up", std::runtime_error);
  CHECK(read_text(path) == "old content");
  CHECK(entries_of(scratch.path) == std::vector<std::string>{"model.bin"});
}

TEST_CASE("a full disk (EFBIG from RLIMIT_FSIZE) leaves the old file untouched and no temporary") {
  Scratch scratch;
  const std::string path = scratch.file("checkpoint.bin");
  write_text_plainly(path, "old content");

  // The limit and the ignored SIGXFSZ stay inside the child; the write then fails with EFBIG after
  // a short write, exactly like a disk that fills up in the middle of a file.
  const int status = run_in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{4096, 4096};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 20;
    try {
      write_file_atomically(path, std::string(1 << 20, 'n'));
      return 21;  // no exception
    } catch (const IoError& error) {
      const std::string message = error.what();
      if (message.find(path) == std::string::npos) return 22;
      if (message.find("write") == std::string::npos) return 23;
      if (message.find("File too large") == std::string::npos) return 24;
    }
    if (read_text(path) != "old content") return 25;
    if (entries_of(scratch.path) != std::vector<std::string>{"checkpoint.bin"}) return 26;
    // The same limit with the callback overload and many small appends.
    try {
      write_file_atomically(path, [](ByteSink& sink) {
        for (int i = 0; i < 100'000; ++i) sink.append("0123456789");
      });
      return 27;
    } catch (const IoError&) {
    }
    if (read_text(path) != "old content") return 28;
    if (entries_of(scratch.path) != std::vector<std::string>{"checkpoint.bin"}) return 29;
    return 0;
  });
  CHECK(status == 0);
  CHECK(read_text(path) == "old content");
}

TEST_CASE("read_file_bytes reads whole files and reports missing ones") {
  Scratch scratch;
  const std::string path = scratch.file("data.bin");
  write_file_atomically(path, std::string(100'000, 'z'));
  CHECK(tinyattn::io::read_file_bytes(path) == std::vector<unsigned char>(100'000, 'z'));

  const std::string missing = scratch.file("missing.bin");
  const std::string message = io_error_message([&] { tinyattn::io::read_file_bytes(missing); });
  CHECK(message.find(missing) != std::string::npos);
  CHECK(message.find("open for reading") != std::string::npos);
  CHECK(io_error_message([&] { tinyattn::io::read_file_bytes(scratch.path.string()); }).find("Is a directory") !=
        std::string::npos);
}

TEST_CASE("write_file_atomically rejects an empty path") {
  CHECK_THROWS_AS(write_file_atomically("", "data"), IoError);
}

namespace {

TEST_CASE("remove_stale_temporary_files removes what killed writers left, and nothing else") {
  Scratch dir;
  // A child that exits at once: its pid then names no process (pids are not reused that fast).
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  const std::string dead = std::to_string(child), alive = std::to_string(getpid());
  for (const std::string& name : std::vector<std::string>{
           "weights.safetensors.tmp." + dead + ".0", "curves.csv.tmp." + dead + ".12",
           "weights.safetensors.tmp." + alive + ".3", "notes.tmp.txt", "a.tmp." + dead, "weights.safetensors"})
    write_text_plainly(dir.file(name), "x");
  std::vector<std::string> removed = tinyattn::io::remove_stale_temporary_files(dir.path.string());
  std::sort(removed.begin(), removed.end());
  CHECK(removed ==
        std::vector<std::string>{"curves.csv.tmp." + dead + ".12", "weights.safetensors.tmp." + dead + ".0"});
  for (const std::string& kept : std::vector<std::string>{"weights.safetensors.tmp." + alive + ".3", "notes.tmp.txt",
                                                          "a.tmp." + dead, "weights.safetensors"})
    CHECK_MESSAGE(fs::exists(dir.file(kept)), kept);
  CHECK(tinyattn::io::remove_stale_temporary_files(dir.file("no-such-directory")).empty());
}

}  // namespace
