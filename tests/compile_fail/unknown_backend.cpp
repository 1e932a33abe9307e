#include <tinyattn/tinyattn.hpp>
struct tpu {};
tinyattn::AttentionNetwork<tinyattn::ReferenceShape, tpu> net;
