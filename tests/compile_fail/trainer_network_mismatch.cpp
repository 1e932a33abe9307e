#include <tinyattn/tinyattn.hpp>
int main() {
  using Small = tinyattn::AttentionNetwork<tinyattn::Shape<131, 16, 2, 4>>;
  using Reference = tinyattn::AttentionNetwork<tinyattn::ReferenceShape>;
  Small net;
  tinyattn::MinMaxTask task;
  tinyattn::Trainer<Reference> trainer(net, task.train(), task.test());  // another shape
}
