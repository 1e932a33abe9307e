#include <tinyattn/tinyattn.hpp>
tinyattn::AttentionNetwork<tinyattn::Shape<0, 32, 2, 4>> net;
