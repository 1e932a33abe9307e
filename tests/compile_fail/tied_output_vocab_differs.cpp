#include <tinyattn/tinyattn.hpp>
tinyattn::Transformer<tinyattn::Shape<114, 16, 2, 3>, tinyattn::Architecture<tinyattn::output_vocab<113>>>
    net;  // tied: V_out must be V
