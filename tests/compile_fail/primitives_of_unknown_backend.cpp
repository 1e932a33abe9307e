#include <tinyattn/tinyattn.hpp>
struct tpu {};
int main() {
  tinyattn::Primitives<tpu>::for_each(1, [](int) {});
}
