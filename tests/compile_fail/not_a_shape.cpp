#include <tinyattn/tinyattn.hpp>
struct MyShape {
  static constexpr int vocab = 131, d_model = 32, heads = 2, context = 4;
};
tinyattn::AttentionNetwork<MyShape> net;
