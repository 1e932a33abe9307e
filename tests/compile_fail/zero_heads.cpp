#include <tinyattn/tinyattn.hpp>
tinyattn::AttentionNetwork<tinyattn::Shape<131, 32, 0, 4>> net;
