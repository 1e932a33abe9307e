#include <tinyattn/tinyattn.hpp>
tinyattn::AttentionNetwork<tinyattn::Shape<131, 30, 4, 4>> net;  // 30 is not a multiple of 4 heads
