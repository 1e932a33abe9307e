// tinyattn/tinyattn.hpp — everything for the CPU backend in one include.
//
//   #include <tinyattn/tinyattn.hpp>
//   using Net = tinyattn::AttentionNetwork<tinyattn::Shape<131, 32, 2, 4>, tinyattn::backend::cpu>;
//
// The Thrust backend (CUDA with nvcc, OpenMP with a host compiler) is one more include:
// <tinyattn/backend/thrust.hpp>. File formats live in <tinyattn/io/...>, plots in <tinyattn/plot/...>.
#pragma once

#include "tinyattn/backend/cpu.hpp"
#include "tinyattn/backend/threads.hpp"
#include "tinyattn/core/architecture.hpp"
#include "tinyattn/core/shape.hpp"
#include "tinyattn/data/induction_task.hpp"
#include "tinyattn/data/minmax_task.hpp"
#include "tinyattn/data/modular_addition_task.hpp"
#include "tinyattn/model/attention_network.hpp"
#include "tinyattn/model/transformer.hpp"
#include "tinyattn/train/ensemble.hpp"
#include "tinyattn/train/trainer.hpp"
