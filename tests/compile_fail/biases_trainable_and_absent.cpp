#include <tinyattn/tinyattn.hpp>
tinyattn::Transformer<tinyattn::Shape<16, 16, 2, 3>,
                      tinyattn::Architecture<tinyattn::trainable_biases, tinyattn::no_biases>>
    net;
