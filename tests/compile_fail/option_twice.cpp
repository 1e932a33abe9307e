#include <tinyattn/tinyattn.hpp>
tinyattn::Transformer<tinyattn::Shape<16, 16, 2, 3>,
                      tinyattn::Architecture<tinyattn::causal_mask, tinyattn::causal_mask>>
    net;
