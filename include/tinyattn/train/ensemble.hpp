// tinyattn/train/ensemble.hpp — many independent models of one compiled configuration, trained together.
//
//   std::vector<tinyattn::EnsembleMember> members;
//   for (std::uint64_t seed = 0; seed < 64; ++seed) {
//     const tinyattn::MinMaxTask task(128, seed);
//     tinyattn::EnsembleMember m;
//     m.init_seed = seed;                         // Net(seed)
//     m.train = task.train(), m.test = task.test();
//     m.options.adamw = tinyattn::MinMaxTask::adamw();
//     m.epochs = 750;
//     members.push_back(std::move(m));
//   }
//   tinyattn::Ensemble<Net> ensemble(std::move(members));   // or Ensemble<Net>(count, make_member(i))
//   const auto results = ensemble.run([](const tinyattn::MemberResult<>& r, const Net& net) { /* write a row */ });
//   results[i].epoch_reached    // the first epoch with test accuracy >= 0.99, or -1
//
// Every member trains exactly as a Trainer<Net> of its own would — Net(init_seed), Trainer(net, train,
// test, options), `epochs` epochs — so its weights and metrics are bit-identical to training it alone.
// On a CPU the members are handed to `workers` threads as the threads free up; each member runs on
// one thread (the primitives it calls see a thread count of 1, and every primitive gives the same bits
// for any thread count), with no synchronisation between members. On a backend without CPU tasks (Thrust)
// the members train one after another, each with the whole device.
//
// A member that diverges (DivergenceError) is recorded as diverged with its last good weights; the
// others go on. Any other error stops the ensemble after the members in flight finish and is rethrown.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tinyattn/train/trainer.hpp"

namespace tinyattn {

struct EnsembleMember {
  std::uint64_t init_seed = 0;  // the network's initialisation: Net(init_seed)
  TokenBatch train, test;       // its data (the test set may be empty)
  TrainerOptions options;       // its optimizer, batch size, evaluation interval
  std::int64_t epochs = 0;      // epochs to train
};

struct EnsembleOptions {
  double accuracy_threshold = 0.99;  // MemberResult::epoch_reached: test accuracy >= this
  bool keep_history = true;          // MemberResult::history: every epoch's metrics
  bool keep_weights = false;         // MemberResult::weights: the final flat parameter vector
  index_t workers = 0;               // members in flight at once; 0: every core (Primitives::max_workers)
};

template <class Scalar = float>
struct MemberResult {
  index_t member = 0;                 // its index in the ensemble
  std::vector<EpochMetrics> history;  // every epoch (when kept)
  EpochMetrics last;                  // the last epoch trained
  EpochMetrics last_tested;           // the last epoch whose test set was evaluated (epoch 0: none)
  std::int64_t epoch_reached = -1;    // first epoch with test accuracy >= the threshold; -1: never
  bool diverged = false;              // training stopped: a loss or gradient not finite
  std::string divergence;             // the DivergenceError's message
  std::vector<Scalar> weights;        // parameters at the end (last good ones when diverged), if kept
};

template <class Network>
class Ensemble {
 public:
  using P = Primitives<typename Network::backend_type>;
  using Result = MemberResult<typename Network::scalar_type>;

  // requires: every member valid for a Trainer<Network> (checked when it starts), epochs >= 0,
  // 0 <= accuracy_threshold <= 1, workers >= 0.
  explicit Ensemble(std::vector<EnsembleMember> members, EnsembleOptions options = {})
      : Ensemble(Listed{}, std::make_shared<const std::vector<EnsembleMember>>(std::move(members)), options) {}
  // Members made on demand, make(i) for i in [0, size) when a worker takes member i: a sweep of
  // thousands holds only the members in flight, not every member's data at once. make is called
  // from the worker threads, several at once: it must not change shared state without a lock.
  Ensemble(index_t size, std::function<EnsembleMember(index_t)> make, EnsembleOptions options = {})
      : size_(size), make_(std::move(make)), options_(options) {
    require(size_ >= 0, "Ensemble: size must be >= 0, found ", size_);
    require(options_.workers >= 0, "Ensemble: workers must be >= 0 (0: every core), found ", options_.workers);
    require(options_.accuracy_threshold >= 0 && options_.accuracy_threshold <= 1,
            "Ensemble: accuracy_threshold must be in [0, 1], found ", options_.accuracy_threshold);
  }

  index_t size() const { return size_; }

  // Trains every member; results in member order. on_finished(const Result&, const Network&)
  // runs as each member finishes, on the thread that trained it, one call at a time (a mutex), so it
  // may write files or print without locking; keep it short, the other members wait for it.
  template <class OnFinished>
  std::vector<Result> run(OnFinished&& on_finished) {
    std::vector<Result> results(static_cast<std::size_t>(size_));
    const index_t n = size_;
    const index_t workers = std::min(n, options_.workers > 0 ? options_.workers : P::max_workers());
    std::atomic<index_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex finished;
    // One task per worker pulls members until none is left: members of unequal cost (data sizes,
    // epochs) keep every worker busy, and a member's result does not depend on which worker ran it.
    P::for_each_task(std::max<index_t>(workers, 1), workers, [&](index_t, index_t) {
      for (index_t i; !failed.load() && (i = next.fetch_add(1)) < n;) {
        try {
          const EnsembleMember member = make_(i);
          Network net(member.init_seed);
          results[static_cast<std::size_t>(i)] = train(i, member, net);
          const std::lock_guard<std::mutex> lock(finished);
          on_finished(static_cast<const Result&>(results[static_cast<std::size_t>(i)]),
                      static_cast<const Network&>(net));
        } catch (...) {
          const std::lock_guard<std::mutex> lock(finished);
          if (!failed.exchange(true)) error = std::current_exception();
        }
      }
    });
    if (error) std::rethrow_exception(error);
    return results;
  }
  std::vector<Result> run() {
    return run([](const Result&, const Network&) {});
  }

 private:
  struct Listed {};
  Ensemble(Listed, std::shared_ptr<const std::vector<EnsembleMember>> list, EnsembleOptions options)
      : Ensemble(static_cast<index_t>(list->size()), from_list(list), options) {}

  static std::function<EnsembleMember(index_t)> from_list(std::shared_ptr<const std::vector<EnsembleMember>> list) {
    for (std::size_t i = 0; i < list->size(); ++i)
      require((*list)[i].epochs >= 0, "Ensemble: member ", i, " has epochs ", (*list)[i].epochs, ", expected >= 0");
    return [list](index_t i) { return (*list)[static_cast<std::size_t>(i)]; };
  }

  Result train(index_t i, const EnsembleMember& m, Network& net) const {
    require(m.epochs >= 0, "Ensemble: member ", i, " has epochs ", m.epochs, ", expected >= 0");
    Result r;
    r.member = i;
    Trainer<Network> trainer(net, m.train, m.test, m.options);
    if (options_.keep_history) r.history.reserve(static_cast<std::size_t>(m.epochs));
    try {
      trainer.run(m.epochs, [&](const EpochMetrics& e) {
        r.last = e;
        if (options_.keep_history) r.history.push_back(e);
        if (e.tested()) {
          r.last_tested = e;
          if (r.epoch_reached < 0 && e.test_accuracy >= options_.accuracy_threshold) r.epoch_reached = e.epoch;
        }
        return true;
      });
    } catch (const DivergenceError& e) {
      r.diverged = true;
      r.divergence = e.what();
    }
    if (options_.keep_weights) r.weights = net.parameters();
    return r;
  }

  index_t size_;
  std::function<EnsembleMember(index_t)> make_;
  EnsembleOptions options_;
};

}  // namespace tinyattn
