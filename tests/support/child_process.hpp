// tests/support/child_process.hpp — running a program as its users do: fork/exec with its own
// environment, stdout and stderr captured in files, judged by exit status and messages.
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "scratch_directory.hpp"

extern char** environ;

namespace tinyattn::test {

using namespace std::chrono_literals;

inline std::string joined(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
  return text;
}

struct ChildSettings {
  std::map<std::string, std::optional<std::string>> environment;  // set (or, nullopt, unset) in the child
  std::optional<rlim_t> file_size_limit;                          // RLIMIT_FSIZE in bytes; SIGXFSZ ignored
  std::string working_directory;                                  // empty: the test's
};

struct Outcome {
  std::string command;
  bool exited = false;
  int exit_status = -1;  // when exited
  int signal = 0;        // when killed by a signal
  std::string out, err;

  bool exited_with(int status) const { return exited && exit_status == status; }
  std::string describe() const {
    std::ostringstream text;
    text << command << "\n  -> "
         << (exited ? "exit status " + std::to_string(exit_status) : "killed by signal " + std::to_string(signal))
         << "\n--- stdout ---\n"
         << out << "--- stderr ---\n"
         << err << "---";
    return text.str();
  }
};

#define CHECK_EXIT_STATUS(outcome, status) CHECK_MESSAGE((outcome).exited_with(status), (outcome).describe())
#define REQUIRE_EXIT_STATUS(outcome, status) REQUIRE_MESSAGE((outcome).exited_with(status), (outcome).describe())
#define CHECK_STDERR_HAS(outcome, text)                                                              \
  CHECK_MESSAGE((outcome).err.find(text) != std::string::npos, "stderr lacks \"" << (text) << "\"\n" \
                                                                                 << (outcome).describe())
#define CHECK_STDOUT_HAS(outcome, text)                                                              \
  CHECK_MESSAGE((outcome).out.find(text) != std::string::npos, "stdout lacks \"" << (text) << "\"\n" \
                                                                                 << (outcome).describe())

// A running program; stdout and stderr go to files, stdin is /dev/null.
class Child {
 public:
  Child(const std::string& binary, const std::vector<std::string>& arguments, const ChildSettings& settings = {})
      : command_(std::filesystem::path(binary).filename().string() + " " + joined(arguments)),
        capture_("tinyattn-child") {
    // Everything the child needs is built before fork: between fork and exec it only makes
    // async-signal-safe calls.
    std::vector<std::string> args{binary};
    args.insert(args.end(), arguments.begin(), arguments.end());
    std::vector<std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string text = *entry;
      if (!settings.environment.count(text.substr(0, text.find('=')))) env.push_back(text);
    }
    for (const auto& [name, value] : settings.environment)
      if (value) env.push_back(name + "=" + *value);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    out_path_ = capture_.file("stdout");
    err_path_ = capture_.file("stderr");

    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) exec_child(argv.data(), envp.data(), settings);
  }
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void send(int signal) const { REQUIRE(::kill(pid_, signal) == 0); }

  // False once the process has ended (it is then reaped).
  bool running() {
    if (reaped_) return false;
    int status = 0;
    const pid_t got = ::waitpid(pid_, &status, WNOHANG);
    REQUIRE(got >= 0);
    if (got == pid_) record(status);
    return !reaped_;
  }

  // Stops the process (SIGSTOP) and waits until it is stopped: true, or false when it ended first.
  bool stop() {
    if (reaped_) return false;
    send(SIGSTOP);
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, WUNTRACED) == pid_);
    if (WIFSTOPPED(status)) return true;
    record(status);
    return false;
  }
  void resume() const { send(SIGCONT); }

  std::string stdout_so_far() const { return read_text(out_path_); }

  // Waits for the end (killing the process after `limit`, a failure), then returns what it did. The
  // limit only catches a hung child, and stays below ctest's TIMEOUT for these tests (120 s,
  // tests/cli/CMakeLists.txt): the test then fails with the child's output instead of being killed.
  Outcome wait(std::chrono::seconds limit = 100s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) {
        FAIL_CHECK(command_ << ": still running after " << limit.count() << " s; killed");
        ::kill(pid_, SIGKILL);
      }
      std::this_thread::sleep_for(2ms);
    }
    Outcome outcome;
    outcome.command = command_;
    outcome.exited = WIFEXITED(status_);
    outcome.exit_status = outcome.exited ? WEXITSTATUS(status_) : -1;
    outcome.signal = WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
    outcome.out = read_text(out_path_);
    outcome.err = read_text(err_path_);
    return outcome;
  }

 private:
  [[noreturn]] void exec_child(char** argv, char** envp, const ChildSettings& settings) const {
    if (!settings.working_directory.empty() && ::chdir(settings.working_directory.c_str()) != 0) die("chdir");
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) die("open");
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) die("dup2");
    // A clean signal state whatever the test runner left (a background job ignores SIGINT).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction action {};
    sigemptyset(&action.sa_mask);
    action.sa_handler = SIG_DFL;
    for (int s : {SIGINT, SIGTERM, SIGPIPE, SIGXFSZ}) ::sigaction(s, &action, nullptr);
    if (settings.file_size_limit) {
      // Over the limit, write() fails with EFBIG instead of the process being killed by SIGXFSZ.
      action.sa_handler = SIG_IGN;
      ::sigaction(SIGXFSZ, &action, nullptr);
      const struct rlimit limit { *settings.file_size_limit, *settings.file_size_limit };
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) die("setrlimit");
    }
    ::execve(argv[0], argv, envp);
    die("execve");
  }

  // Reports a failed step of the child's setup on its stderr and ends it with status 127.
  [[noreturn]] static void die(const char* what) {
    const char* reason = std::strerror(errno);
    (void)!::write(2, what, std::strlen(what));
    (void)!::write(2, ": ", 2);
    (void)!::write(2, reason, std::strlen(reason));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
  }

  void record(int status) {
    status_ = status;
    reaped_ = true;
  }

  std::string command_;
  ScratchDirectory capture_;
  std::string out_path_, err_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Runs `binary` with `arguments` to its end.
inline Outcome run_program(const std::string& binary, const std::vector<std::string>& arguments,
                           const ChildSettings& settings = {}) {
  return Child(binary, arguments, settings).wait();
}

// Waits until the child's stdout contains `text` (false if it ended first or 30 s passed).
inline bool wait_for_stdout(Child& child, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (child.running() && std::chrono::steady_clock::now() < deadline) {
    if (child.stdout_so_far().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

}  // namespace tinyattn::test
