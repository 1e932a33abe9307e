#include <tinyattn/tinyattn.hpp>
tinyattn::AttentionNetwork<tinyattn::Shape<131, 32, 2, 0>> net;
