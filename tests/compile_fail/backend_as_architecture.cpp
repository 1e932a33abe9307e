#include <tinyattn/tinyattn.hpp>
tinyattn::Transformer<tinyattn::Shape<16, 16, 2, 3>, tinyattn::backend::cpu> net;  // the architecture comes second
