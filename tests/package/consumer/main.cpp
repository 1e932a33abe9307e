// A user's program: a custom shape, a few epochs, one weights file. Returns 0 when it all works.
#include <cstdio>

#include <tinyattn/io/weights.hpp>
#include <tinyattn/tinyattn.hpp>

int main() {
  using Net = tinyattn::AttentionNetwork<tinyattn::Shape<13, 8, 2, 4>>;
  const tinyattn::MinMaxTask task(/*max_n=*/10, /*seed=*/1);
  Net net(1);
  tinyattn::TrainerOptions options;
  options.adamw = tinyattn::MinMaxTask::adamw();
  tinyattn::Trainer<Net> trainer(net, task.train(), task.test(), options);
  const tinyattn::EpochMetrics m = trainer.run(20);
  tinyattn::io::save_weights(net, "consumer-weights.safetensors");
  Net copy;
  tinyattn::io::load_weights(copy, "consumer-weights.safetensors");
  std::printf("consumer: epoch %lld, train loss %.4f, reload %s\n", static_cast<long long>(m.epoch), m.train_loss,
              copy.parameters() == net.parameters() ? "identical" : "DIFFERENT");
  return m.train_loss > 0 && copy.parameters() == net.parameters() ? 0 : 1;
}
