// examples/common/progress.hpp — training progress: a tqdm-like bar redrawn in place on a terminal,
// plain periodic lines otherwise (logs, CI, pipes).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

#include "tinyattn/train/trainer.hpp"

namespace programs {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  Progress(std::int64_t first_epoch, std::int64_t last_epoch, std::FILE* out = stdout)
      : first_(first_epoch), last_(last_epoch), out_(out), terminal_(isatty(fileno(out)) != 0), start_(Clock::now()) {
    const std::int64_t total = last_ - first_ + 1;
    line_every_ = total <= 20 ? 1 : total / 10;
  }

  void update(const tinyattn::EpochMetrics& m) {
    const double elapsed = seconds();
    const std::int64_t done = m.epoch - first_ + 1, total = last_ - first_ + 1;
    const double rate = elapsed > 0 ? done / elapsed : 0.0;
    if (terminal_) {
      // Redraw at most ~20 times a second, and always at the end.
      if (m.epoch != last_ && elapsed - last_draw_ < 0.05) return;
      last_draw_ = elapsed;
      constexpr int kWidth = 24;
      const int filled = total > 0 ? static_cast<int>(kWidth * done / total) : kWidth;
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.resize(kWidth, '.');
      const double eta = rate > 0 ? (total - done) / rate : 0.0;
      if (m.tested()) last_test_ = m;
      std::fprintf(out_, "\r%3d%% [%s] epoch %lld/%lld | train %6.2f%% loss %.4f | test %s | %.0f ep/s | ETA %s ",
                   total > 0 ? static_cast<int>(100 * done / total) : 100, bar.c_str(), static_cast<long long>(m.epoch),
                   static_cast<long long>(last_), 100 * m.train_accuracy, m.train_loss, test_text(true).c_str(), rate,
                   clock_text(eta).c_str());
      if (m.epoch == last_) std::fputc('\n', out_);
      std::fflush(out_);
    } else {
      if (m.tested()) last_test_ = m;
      if (!(done % line_every_ == 0 || m.epoch == last_ || m.epoch == first_)) return;
      std::fprintf(out_, "epoch %lld/%lld  train acc %.2f%% loss %.4f  test %s  (%.0f epochs/s)\n",
                   static_cast<long long>(m.epoch), static_cast<long long>(last_), 100 * m.train_accuracy, m.train_loss,
                   test_text(false).c_str(), rate);
      std::fflush(out_);
    }
  }

  // Ends a bar left mid-line (an interrupted or failed run).
  void interrupt() {
    if (terminal_) std::fputc('\n', out_);
  }

  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  static std::string clock_text(double seconds) {
    const long s = static_cast<long>(seconds + 0.5);
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%ld:%02ld", s / 60, s % 60);
    return buffer;
  }

  // The latest test evaluation (the test set may be evaluated every k epochs only).
  std::string test_text(bool padded) const {
    if (!last_test_.tested()) return "(not yet evaluated)";
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, padded ? "acc %6.2f%% loss %.4f" : "acc %.2f%% loss %.4f",
                  100 * last_test_.test_accuracy, last_test_.test_loss);
    return buffer;
  }

  std::int64_t first_, last_, line_every_;
  tinyattn::EpochMetrics last_test_;
  std::FILE* out_;
  bool terminal_;
  Clock::time_point start_;
  double last_draw_ = -1.0;
};

}  // namespace programs
