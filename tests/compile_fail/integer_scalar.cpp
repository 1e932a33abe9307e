#include <tinyattn/tinyattn.hpp>
tinyattn::AttentionNetwork<tinyattn::ReferenceShape, tinyattn::backend::cpu, int> net;
