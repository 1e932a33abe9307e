// tinyattn/model/reference_engine.hpp — the model, top to bottom: forward and backward of every
// architecture as plain per-layer *_forward / *_backward pairs (tinyattn/layers/) over (B, T, ...)
// buffers. This is where the math of the network is read, and where a new layer type is written first;
// the table engine (model/table_engine.hpp) is a faster specialisation of it that tests hold against it.
//
// The model (TransformerLens's, pre-LayerNorm):
//   x = W_E[tokens] + W_pos                                  resid_pre of block 0   (B, T, D)
//   per block:  x = x + attn(ln1(x));  with an MLP:  x = x + mlp(ln2(x))
//   logits = ln_final(x) W_U + b_U    (tied: ln_final(x) W_E^T)                     (B, T, V_out)
//   loss = mean cross-entropy over the scored positions: the last one, or every one with a target
// (without LayerNorm, ln1, ln2 and ln_final are identities). The last block computes its queries, MLP
// and logits only at the positions the loss reads, its last Tq (the last one, or from the first scored
// position on): nothing at an earlier query position of the last block reaches the loss. Without
// LayerNorm, block 0 of a model of several blocks reads q, k, v from per-token and per-position tables
// (layers/embedding_projection.hpp: the same products, summed in another order) where V + T is small.
//
// Batches are cut into chunks of samples (model/device_batch.hpp). A chunk is one task: its forward and
// backward run on one thread (the CPU runs chunks on different cores at once; a GPU takes a whole batch
// as one chunk), writing its parameter gradient into its own buffer; the buffers are then added in chunk
// order. So a run is bit-identical for any thread count. All buffers are allocated at construction:
// gradient(), evaluate() and forward passes allocate nothing.
#pragma once

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/layers/attention.hpp"
#include "tinyattn/layers/cross_entropy.hpp"
#include "tinyattn/layers/embedding.hpp"
#include "tinyattn/layers/embedding_projection.hpp"
#include "tinyattn/layers/layer_norm.hpp"
#include "tinyattn/layers/mlp.hpp"
#include "tinyattn/layers/unembedding.hpp"
#include "tinyattn/model/activation_cache.hpp"
#include "tinyattn/model/device_batch.hpp"
#include "tinyattn/model/interventions.hpp"
#include "tinyattn/model/parameter_layout.hpp"

namespace tinyattn {

// Pointers to one block's tensors inside a flat buffer (parameters or gradients); null for tensors the
// architecture does not have (a frozen-zero bias is null too: it adds nothing).
template <class Scalar>
struct BlockTensors {
  Scalar *ln1_w, *ln1_b, *w_q, *w_k, *w_v, *w_o, *b_q, *b_k, *b_v, *b_o, *ln2_w, *ln2_b, *w_in, *b_in, *w_out, *b_out;
};
template <class Scalar>
struct ModelTensors {
  Scalar *w_e, *w_pos, *ln_final_w, *ln_final_b, *w_u, *b_u;
};

template <class ShapeT, class Arch>
struct TensorPointers {
  using Layout = ParameterLayout<ShapeT, Arch>;
  using Block = typename Layout::Block;
  template <class Scalar>
  static BlockTensors<Scalar> block(Scalar* flat, index_t l) {
    Scalar* b = flat + Layout::block(l);
    const auto at = [&](bool present, std::size_t offset) { return present ? b + offset : nullptr; };
    constexpr bool norm = Layout::kNorm, mlp = Layout::kMlp, bias = Layout::kBiases;
    return {at(norm, Block::ln1_w),
            at(norm, Block::ln1_b),
            b + Block::W_Q,
            b + Block::W_K,
            b + Block::W_V,
            b + Block::W_O,
            at(bias, Block::b_Q),
            at(bias, Block::b_K),
            at(bias, Block::b_V),
            at(bias, Block::b_O),
            at(norm && mlp, Block::ln2_w),
            at(norm && mlp, Block::ln2_b),
            at(mlp, Block::W_in),
            at(mlp && bias, Block::b_in),
            at(mlp, Block::W_out),
            at(mlp && bias, Block::b_out)};
  }
  template <class Scalar>
  static ModelTensors<Scalar> model(Scalar* flat) {
    const auto at = [&](bool present, std::size_t offset) { return present ? flat + offset : nullptr; };
    return {flat + Layout::token_embedding,           flat + Layout::positional_embedding,
            at(Layout::kNorm, Layout::ln_final_w),    at(Layout::kNorm, Layout::ln_final_b),
            at(Layout::kUntied, Layout::unembed_W_U), at(Layout::kUntied && Layout::kBiases, Layout::unembed_b_U)};
  }
};

template <class Scalar>
struct SumChunkGradients {  // out[i] = sum over chunks, in order, of partial[c][i]
  Scalar* out;
  const Scalar* partials;
  index_t chunks;
  std::size_t count;
  TINYATTN_HD void operator()(index_t i) const {
    Scalar acc = 0;
    for (index_t c = 0; c < chunks; ++c)
      acc += partials[static_cast<std::size_t>(c) * count + static_cast<std::size_t>(i)];
    out[i] = acc;
  }
};

// Interventions (model/interventions.hpp) on the backend: a head's z rows, a residual row.
template <class Scalar>
struct SetHeadRows {  // z (B, Tq, H, dh): head `head` of every row r = (b, i), query i at position T - Tq + i
  Scalar* z;
  const Scalar* values;  // null: zero; per_sample 0: mean (T, dh); else patch (N, T, dh)
  index_t per_sample, first, Tq, T, H, dh, head;
  TINYATTN_HD void operator()(index_t r) const {
    const index_t b = r / Tq, t = T - Tq + r % Tq;
    Scalar* out = z + (static_cast<std::ptrdiff_t>(r) * H + head) * dh;
    const Scalar* src =
        values ? values + static_cast<std::ptrdiff_t>(first + b) * per_sample + static_cast<std::ptrdiff_t>(t) * dh
               : nullptr;
    for (index_t e = 0; e < dh; ++e) out[e] = src ? src[e] : Scalar(0);
  }
};
template <class Scalar>
struct SetResidualRow {  // x (B, T, D) at `position` from values (N, D)
  Scalar* x;
  const Scalar* values;
  index_t first, T, D, position;
  TINYATTN_HD void operator()(index_t b, index_t c0, index_t c1) const {
    Scalar* out = x + (static_cast<std::ptrdiff_t>(b) * T + position) * D;
    const Scalar* src = values + static_cast<std::ptrdiff_t>(first + b) * D;
    for (index_t c = c0; c < c1; ++c) out[c] = src[c];
  }
};

template <class ShapeT, class Arch, class Backend, class Scalar>
class ReferenceEngine {
  using P = Primitives<Backend>;
  template <class T>
  using buffer = typename P::template buffer<T>;
  using Layout = ParameterLayout<ShapeT, Arch>;
  using Ptr = TensorPointers<ShapeT, Arch>;
  static constexpr index_t V = Layout::V, V_out = Layout::V_out, D = Layout::D, H = Layout::H, T = Layout::T,
                           dh = Layout::dh, L = Layout::L, M = Layout::M;
  static constexpr bool kNorm = Layout::kNorm, kMlp = Layout::kMlp;

 public:
  // Whether block 0 reads q, k, v from projection tables (layers/embedding_projection.hpp): its input
  // must be the embeddings themselves (no ln1), and it must not be the last block (whose queries may be
  // at the last positions only); the tables' V + T rows then replace the rows of every batch, made once
  // per pass (and summed into once per chunk in the backward).
  static constexpr bool kProjectionTables = !kNorm && L >= 2 && V + T <= 512;

  // Samples per chunk: about Primitives<B>::kSampleTile rows of T positions (a GPU's is the whole batch).
  static index_t chunk_samples(index_t capacity) {
    const index_t per_tile = std::max<index_t>(1, P::kSampleTile / T);
    return std::max<index_t>(1, std::min(per_tile, capacity));
  }

  // capacity: the most samples a batch given to this engine holds; gradient_capacity: the most samples of
  // a batch given to gradient() (0: evaluation only).
  explicit ReferenceEngine(index_t capacity, index_t gradient_capacity = 0)
      : capacity_(std::max<index_t>(1, std::max(capacity, gradient_capacity))),
        chunk_(chunk_samples(capacity_)),
        workers_(std::max<index_t>(1, std::min<index_t>(P::max_workers(), (capacity_ + chunk_ - 1) / chunk_))) {
    acts_.resize(static_cast<std::size_t>(workers_));
    for (auto& a : acts_) a.allocate(chunk_);
    P::allocate(packed_, static_cast<std::size_t>(L) * 3 * D * H * dh);
    if (kProjectionTables) P::allocate(tables_, static_cast<std::size_t>(3) * (V + T) * H * dh);
    P::allocate(loss_, static_cast<std::size_t>(capacity_) * T);
    P::allocate(correct_, static_cast<std::size_t>(capacity_) * T);
    if (gradient_capacity > 0) {
      const index_t chunks = (gradient_capacity + chunk_ - 1) / chunk_;
      P::allocate(partials_, static_cast<std::size_t>(chunks) * Layout::count);
    }
  }

  // Interventions for the forward passes that follow (inspect, evaluate, last_logits) on batches of
  // `samples` samples, until clear_interventions(). Checked: layers, heads, positions, value counts.
  void set_interventions(const Interventions<Scalar>& iv, index_t samples) {
    clear_interventions();
    for (const auto& h : iv.heads) {
      require(h.layer >= 0 && h.layer < L, "Interventions: layer ", h.layer, " outside [0, ", L, ")");
      require(h.head >= 0 && h.head < H, "Interventions: head ", h.head, " outside [0, ", H, ")");
      using Change = typename Interventions<Scalar>::HeadChange;
      const std::size_t expected = h.change == Change::zero   ? 0
                                   : h.change == Change::mean ? static_cast<std::size_t>(T) * dh
                                                              : static_cast<std::size_t>(samples) * T * dh;
      require(h.values.size() == expected, "Interventions: head ", h.head, " of layer ", h.layer, " has ",
              h.values.size(), " values, expected ", expected,
              h.change == Change::patch ? " (the source batch must have as many samples as this one)" : "");
      DeviceIntervention d{h.layer, h.head, h.change == Change::zero ? 0 : h.change == Change::mean ? 1 : 2, {}};
      if (!h.values.empty()) upload(d.values, h.values);
      interventions_.push_back(std::move(d));
    }
    for (const auto& r : iv.residuals) {
      require(r.layer >= 0 && r.layer < L, "Interventions: layer ", r.layer, " outside [0, ", L, ")");
      require(r.position >= 0 && r.position < T, "Interventions: position ", r.position, " outside [0, ", T, ")");
      require(r.values.size() == static_cast<std::size_t>(samples) * D, "Interventions: residual patch of layer ",
              r.layer, " has ", r.values.size(), " values, expected ", static_cast<std::size_t>(samples) * D,
              " (the source batch must have as many samples as this one)");
      DeviceIntervention d{r.layer, r.position, 3, {}};
      upload(d.values, r.values);
      interventions_.push_back(std::move(d));
    }
  }
  void clear_interventions() { interventions_.clear(); }

  index_t chunk() const { return chunk_; }
  index_t capacity() const { return capacity_; }
  // A DeviceBatch that this engine can read: chunks of this engine's size.
  DeviceBatch<Backend> make_batch(index_t capacity) const {
    require(capacity <= capacity_, "ReferenceEngine: a batch of ", capacity, " samples, the engine holds ", capacity_);
    return DeviceBatch<Backend>(capacity, T, Arch::loss == LossPositions::every, V, chunk_);
  }

  // The projection weights of every block as (D, H dh) matrices (layers/attention.hpp, heads_to_columns):
  // made from the parameters at the start of every pass.
  void pack_projections(const Scalar* params) {
    for (index_t l = 0; l < L; ++l) {
      const BlockTensors<const Scalar> w = Ptr::block(params, l);
      layers::heads_to_columns<Backend>(packed(l, 0), w.w_q, H, D, dh);
      layers::heads_to_columns<Backend>(packed(l, 1), w.w_k, H, D, dh);
      layers::heads_to_columns<Backend>(packed(l, 2), w.w_v, H, D, dh);
    }
    if constexpr (kProjectionTables) {
      const ModelTensors<const Scalar> m = Ptr::model(params);
      for (index_t p = 0; p < 3; ++p)
        layers::projection_tables<Backend>(token_table(p), position_table(p), m.w_e, m.w_pos, packed(0, p), V, T, D,
                                           H * dh);
    }
  }

  // Loss and accuracy over the batch's scored positions and the gradient of their mean loss (grads,
  // Layout::count values, written). requires: batch made by make_batch, samples <= gradient_capacity.
  BatchTotals gradient(const Scalar* params, const DeviceBatch<Backend>& batch, Scalar* grads) {
    const index_t chunks = batch.chunks();
    require(interventions_.empty(), "ReferenceEngine::gradient: interventions apply to forward passes only");
    require(static_cast<std::size_t>(chunks) * Layout::count <= partials_.size(),
            "ReferenceEngine::gradient: batch of ", batch.samples(), " samples exceeds the gradient capacity");
    const Scalar grad_scale = batch.scored() > 0 ? static_cast<Scalar>(1.0 / static_cast<double>(batch.scored())) : 0;
    const index_t Tq = batch.target_positions();  // the last block's queries: where the loss reads
    pack_projections(params);
    P::for_each_task(chunks, workers_, [&](index_t c, index_t worker) {
      Activations& a = acts_[static_cast<std::size_t>(worker)];
      Scalar* g = P::data(partials_) + static_cast<std::ptrdiff_t>(c) * Layout::count;
      P::fill(g, Layout::count, Scalar(0));
      const index_t B = batch.chunk_size(c);
      forward(params, batch.tokens(c), B, Tq, a, false, batch.first_sample(c));
      const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(batch.first_sample(c)) * Tq;
      layers::cross_entropy_forward_backward<Backend>(P::data(a.logits), batch.targets(c), P::data(loss_) + rows,
                                                      P::data(correct_) + rows, B * Tq, V_out, grad_scale,
                                                      /*gradient=*/true);
      backward(params, batch.token_begin(c), batch.token_row(c), B, Tq, a, g);
    });
    P::for_each(static_cast<index_t>(Layout::count),
                SumChunkGradients<Scalar>{grads, P::data(partials_), chunks, Layout::count});
    BatchTotals totals = P::sum_metrics(P::data(loss_), P::data(correct_), batch.samples() * Tq, grads, Layout::count);
    totals.scored = batch.scored();
    return totals;
  }

  // Loss and accuracy over the batch's scored positions, forward only.
  BatchTotals evaluate(const Scalar* params, const DeviceBatch<Backend>& batch) {
    const index_t Tq = batch.target_positions();
    pack_projections(params);
    P::for_each_task(batch.chunks(), workers_, [&](index_t c, index_t worker) {
      Activations& a = acts_[static_cast<std::size_t>(worker)];
      const index_t B = batch.chunk_size(c);
      forward(params, batch.tokens(c), B, Tq, a, false, batch.first_sample(c));
      const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(batch.first_sample(c)) * Tq;
      layers::cross_entropy_forward_backward<Backend>(P::data(a.logits), batch.targets(c), P::data(loss_) + rows,
                                                      P::data(correct_) + rows, B * Tq, V_out, Scalar(0),
                                                      /*gradient=*/false);
    });
    BatchTotals totals = P::sum_metrics(P::data(loss_), P::data(correct_), batch.samples() * Tq);
    totals.scored = batch.scored();
    return totals;
  }

  // The logits at the last position, (N, V_out) on the host.
  std::vector<Scalar> last_logits(const Scalar* params, const DeviceBatch<Backend>& batch) {
    std::vector<Scalar> out(static_cast<std::size_t>(batch.samples()) * V_out);
    pack_projections(params);
    P::for_each_task(batch.chunks(), workers_, [&](index_t c, index_t worker) {
      Activations& a = acts_[static_cast<std::size_t>(worker)];
      forward(params, batch.tokens(c), batch.chunk_size(c), 1, a, false, batch.first_sample(c));
      P::copy_to_host(P::data(a.logits), out.data() + static_cast<std::ptrdiff_t>(batch.first_sample(c)) * V_out,
                      static_cast<std::size_t>(batch.chunk_size(c)) * V_out);
    });
    return out;
  }

  // Every activation of the full forward (queries at every position), under TransformerLens's names
  // (model/activation_cache.hpp); `wanted` empty: all of them.
  void inspect(const Scalar* params, const DeviceBatch<Backend>& batch, const std::vector<std::string>& wanted,
               ActivationCache<Scalar>& cache) {
    const index_t N = batch.samples();
    const std::set<std::string> want(wanted.begin(), wanted.end());
    const auto keep = [&](const std::string& name) { return want.empty() || want.count(name) != 0; };
    cache.samples = N, cache.context = T, cache.heads = H, cache.layers = L, cache.d_model = D, cache.vocab_out = V_out;
    // Host copies of the parameters for hook_embed, hook_pos_embed and hook_result.
    std::vector<Scalar> host(Layout::count);
    P::copy_to_host(params, host.data(), Layout::count);
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> plan;
    const auto add = [&](const std::string& name, std::vector<std::int64_t> shape) {
      if (keep(name)) plan.emplace_back(name, std::move(shape));
    };
    add("hook_embed", {N, T, D});
    add("hook_pos_embed", {N, T, D});
    for (index_t l = 0; l < L; ++l) {
      const std::string b = ActivationCache<Scalar>::block(l);
      add(b + "hook_resid_pre", {N, T, D});
      if (kNorm) {
        add(b + "ln1.hook_scale", {N, T, 1});
        add(b + "ln1.hook_normalized", {N, T, D});
      }
      for (const char* part : {"attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z"})
        add(b + part, {N, T, H, dh});
      for (const char* part : {"attn.hook_attn_scores", "attn.scores", "attn.hook_pattern"})
        add(b + part, {N, H, T, T});
      add(b + "attn.hook_result", {N, T, H, D});
      add(b + "hook_attn_out", {N, T, D});
      if (kMlp) {
        add(b + "hook_resid_mid", {N, T, D});
        if (kNorm) {
          add(b + "ln2.hook_scale", {N, T, 1});
          add(b + "ln2.hook_normalized", {N, T, D});
        }
        add(b + "mlp.hook_pre", {N, T, M});
        add(b + "mlp.hook_post", {N, T, M});
        add(b + "hook_mlp_out", {N, T, D});
      }
      add(b + "hook_resid_post", {N, T, D});
    }
    if (kNorm) {
      add("ln_final.hook_scale", {N, T, 1});
      add("ln_final.hook_normalized", {N, T, D});
    }
    add("logits", {N, T, V_out});
    for (auto& [name, shape] : plan) cache.insert(name, shape);
    pack_projections(params);

    const ModelTensors<const Scalar> m = Ptr::model(static_cast<const Scalar*>(host.data()));
    P::for_each_task(batch.chunks(), workers_, [&](index_t c, index_t worker) {
      Activations& a = acts_[static_cast<std::size_t>(worker)];
      const index_t B = batch.chunk_size(c), first = batch.first_sample(c);
      forward(params, batch.tokens(c), B, T, a, /*keep_scores=*/true, first);
      // Rows of (B, T, width) activations go to sample `first` onwards in the cache.
      const auto fetch = [&](const std::string& name, const buffer<Scalar>& from, std::size_t offset,
                             std::size_t per_sample) {
        if (CachedTensor<Scalar>* t = cache.find(name))
          P::copy_to_host(P::data(from) + offset, t->values.data() + static_cast<std::size_t>(first) * per_sample,
                          static_cast<std::size_t>(B) * per_sample);
      };
      const std::size_t btd = static_cast<std::size_t>(chunk_) * T * D;
      const std::size_t heads = static_cast<std::size_t>(chunk_) * T * H * dh,
                        att = static_cast<std::size_t>(chunk_) * H * T * T;
      const std::size_t rows = static_cast<std::size_t>(chunk_) * T, mlp = static_cast<std::size_t>(chunk_) * T * M;
      const index_t* tokens = batch.host_tokens().data() + static_cast<std::ptrdiff_t>(first) * T;
      for (index_t s = 0; s < B; ++s)
        for (index_t t = 0; t < T; ++t) {
          const std::size_t at = (static_cast<std::size_t>(first + s) * T + t) * D;
          if (CachedTensor<Scalar>* e = cache.find("hook_embed"))
            std::copy_n(m.w_e + static_cast<std::ptrdiff_t>(tokens[s * T + t]) * D, D, e->values.data() + at);
          if (CachedTensor<Scalar>* p = cache.find("hook_pos_embed"))
            std::copy_n(m.w_pos + static_cast<std::ptrdiff_t>(t) * D, D, p->values.data() + at);
        }
      for (index_t l = 0; l < L; ++l) {
        const std::string b = ActivationCache<Scalar>::block(l);
        fetch(b + "hook_resid_pre", a.resid, l * btd, T * D);
        if (kNorm) {
          fetch(b + "ln1.hook_scale", a.ln1_scale, l * rows, T);
          fetch(b + "ln1.hook_normalized", a.ln1, l * btd, T * D);
        }
        fetch(b + "attn.hook_q", a.q, l * heads, T * H * dh);
        fetch(b + "attn.hook_k", a.k, l * heads, T * H * dh);
        fetch(b + "attn.hook_v", a.v, l * heads, T * H * dh);
        fetch(b + "attn.hook_z", a.z, l * heads, T * H * dh);
        fetch(b + "attn.scores", a.scores, l * att, H * T * T);
        fetch(b + "attn.hook_pattern", a.pattern, l * att, H * T * T);
        fetch(b + "hook_attn_out", a.attn_out, l * btd, T * D);
        if (kMlp) {
          fetch(b + "hook_resid_mid", a.resid_mid, l * btd, T * D);
          if (kNorm) {
            fetch(b + "ln2.hook_scale", a.ln2_scale, l * rows, T);
            fetch(b + "ln2.hook_normalized", a.ln2, l * btd, T * D);
          }
          fetch(b + "mlp.hook_pre", a.pre, l * mlp, T * M);
          fetch(b + "mlp.hook_post", a.post, l * mlp, T * M);
          fetch(b + "hook_mlp_out", a.mlp_out, l * btd, T * D);
        }
        fetch(b + "hook_resid_post", a.resid, (l + 1) * btd, T * D);
      }
      if (kNorm) {
        fetch("ln_final.hook_scale", a.lnf_scale, 0, T);
        fetch("ln_final.hook_normalized", a.lnf, 0, T * D);
      }
      fetch("logits", a.logits, 0, static_cast<std::size_t>(T) * V_out);
    });
    // Derived on the host: TransformerLens's scaled and masked scores, and each head's output.
    const Scalar sqrt_dh = static_cast<Scalar>(std::sqrt(static_cast<double>(dh)));
    for (index_t l = 0; l < L; ++l) {
      const std::string b = ActivationCache<Scalar>::block(l);
      if (CachedTensor<Scalar>* scaled = cache.find(b + "attn.hook_attn_scores")) {
        // the raw scores are needed: run again keeping them if they were not asked for
        const ActivationCache<Scalar>* raw = &cache;
        ActivationCache<Scalar> extra;
        if (!cache.contains(b + "attn.scores")) {
          inspect(params, batch, {b + "attn.scores"}, extra);
          raw = &extra;
        }
        const auto& s = (*raw)[b + "attn.scores"].values;
        for (std::size_t i = 0; i < s.size(); ++i) {
          const index_t q = static_cast<index_t>((i / T) % T), k = static_cast<index_t>(i % T);
          scaled->values[i] = Arch::causal && k > q ? -std::numeric_limits<Scalar>::infinity() : s[i] / sqrt_dh;
        }
      }
      if (CachedTensor<Scalar>* result = cache.find(b + "attn.hook_result")) {
        const ActivationCache<Scalar>* zs = &cache;
        ActivationCache<Scalar> extra;
        if (!cache.contains(b + "attn.hook_z")) {
          inspect(params, batch, {b + "attn.hook_z"}, extra);
          zs = &extra;
        }
        const auto& z = (*zs)[b + "attn.hook_z"].values;
        const Scalar* w_o = host.data() + Layout::block(l) + Layout::Block::W_O;  // (H, dh, D)
        for (std::size_t row = 0; row < static_cast<std::size_t>(N) * T; ++row)
          for (index_t h = 0; h < H; ++h) {
            Scalar* out = result->values.data() + (row * H + h) * D;
            const Scalar* zh = z.data() + (row * H + h) * dh;
            for (index_t e = 0; e < dh; ++e)
              for (index_t d = 0; d < D; ++d) out[d] += zh[e] * w_o[(static_cast<std::size_t>(h) * dh + e) * D + d];
          }
      }
    }
  }

 private:
  // The activations of one chunk of up to C samples (one set per worker). Per-block buffers hold L
  // blocks one after another; the last block's rows are (B, Tq) when its queries are at the last
  // position only.
  struct Activations {
    index_t C = 0;
    buffer<Scalar> resid;                     // (L + 1, C, T, D): resid_pre of each block, then the output
    buffer<Scalar> ln1, ln1_mean, ln1_scale;  // (L, C, T, D), (L, C, T)        [layer_norm]
    buffer<Scalar> q, k, v, z;                // (L, C, T, H, dh)
    buffer<Scalar> pattern, scores;           // (L, C, H, T, T)
    buffer<Scalar> attn_out;                  // (L, C, T, D)
    buffer<Scalar> resid_mid, ln2, ln2_mean, ln2_scale, mlp_out;  // (L, C, T, D), (L, C, T)   [mlp]
    buffer<Scalar> pre, post;                                     // (L, C, T, M)                   [mlp]
    buffer<Scalar> x_last, h_last;            // (C, T, D): the last block's input rows at its query positions
    buffer<Scalar> lnf, lnf_mean, lnf_scale;  // (C, T, D), (C, T)              [layer_norm]
    buffer<Scalar> logits;                    // (C, T, V_out); d logits in the backward
    // backward
    buffer<Scalar> dresid, dresid_last, dnorm;  // (C, T, D): the stream's gradient, a block input's, LN's
    buffer<Scalar> dq, dk, dv, dz;              // (C, T, H, dh)
    buffer<Scalar> dmlp;                        // (C, T, M)
    buffer<Scalar> dh_last;                     // (C, T, D)
    buffer<Scalar> dw_cols;                     // (3, D, H dh)
    buffer<Scalar> table_sums;                  // (V + T, H dh): S_tok, S_pos   [projection tables]

    void allocate(index_t chunk) {
      C = chunk;
      const std::size_t c = static_cast<std::size_t>(chunk), rows = c * T, btd = rows * D, heads = rows * H * dh;
      P::allocate(resid, (L + 1) * btd);
      if (kNorm) {
        P::allocate(ln1, L * btd);
        P::allocate(ln1_mean, L * rows);
        P::allocate(ln1_scale, L * rows);
        P::allocate(lnf, btd);
        P::allocate(lnf_mean, rows);
        P::allocate(lnf_scale, rows);
      }
      for (auto* b : {&q, &k, &v, &z}) P::allocate(*b, L * heads);
      P::allocate(pattern, L * c * H * T * T);
      P::allocate(scores, L * c * H * T * T);
      P::allocate(attn_out, L * btd);
      if (kMlp) {
        P::allocate(resid_mid, L * btd);
        P::allocate(mlp_out, L * btd);
        P::allocate(pre, L * rows * M);
        P::allocate(post, L * rows * M);
        P::allocate(dmlp, rows * M);
        if (kNorm) {
          P::allocate(ln2, L * btd);
          P::allocate(ln2_mean, L * rows);
          P::allocate(ln2_scale, L * rows);
        }
      }
      P::allocate(x_last, btd);
      P::allocate(h_last, btd);
      P::allocate(dh_last, btd);
      P::allocate(dw_cols, 3 * static_cast<std::size_t>(D) * H * dh);
      if (kProjectionTables) P::allocate(table_sums, static_cast<std::size_t>(V + T) * H * dh);
      P::allocate(logits, rows * V_out);
      for (auto* b : {&dresid, &dresid_last, &dnorm}) P::allocate(*b, btd);
      for (auto* b : {&dq, &dk, &dv, &dz}) P::allocate(*b, heads);
    }
    // Block l's part of a per-block buffer of `per_row` values per (sample, position).
    Scalar* at(buffer<Scalar>& b, index_t l, std::size_t per_row) {
      return P::data(b) + static_cast<std::ptrdiff_t>(l) * C * T * static_cast<std::ptrdiff_t>(per_row);
    }
  };

  // Forward of one chunk of B samples (tokens (B, T)); the last block's queries at its last Tq_last
  // positions (T: all). ensures: a.logits holds (B, Tq_last, V_out).
  void forward(const Scalar* params, const index_t* tokens, index_t B, index_t Tq_last, Activations& a,
               bool keep_scores, index_t first_sample) const {
    const ModelTensors<const Scalar> m = Ptr::model(params);
    layers::embedding_forward<Backend>(a.at(a.resid, 0, D), tokens, m.w_e, m.w_pos, B, T, D);  // (B, T, D)
    for (index_t l = 0; l < L; ++l) {
      const BlockTensors<const Scalar> w = Ptr::block(params, l);
      const index_t Tq = l == L - 1 ? Tq_last : T;
      const layers::AttentionDims dims{B, T, Tq, H, dh, Arch::causal};
      Scalar* x = a.at(a.resid, l, D);                     // (B, T, D)
      for (const DeviceIntervention& iv : interventions_)  // residual patches of this block's input
        if (iv.kind == 3 && iv.layer == l)
          P::for_each_row(B, D, SetResidualRow<Scalar>{x, P::data(iv.values), first_sample, T, D, iv.index});
      Scalar* h = x;  // ln1(x)
      if (kNorm) {
        h = a.at(a.ln1, l, D);
        layers::layer_norm_forward<Backend>(h, a.at(a.ln1_mean, l, 1), a.at(a.ln1_scale, l, 1), x, w.ln1_w, w.ln1_b,
                                            B * T, D);
      }
      // The query rows: every position, or the last Tq copied out (B, Tq, D).
      const Scalar* x_query = x;
      const Scalar* h_query = h;
      if (Tq < T) {
        layers::last_positions_forward<Backend>(P::data(a.x_last), x, B, T, Tq, D);
        layers::last_positions_forward<Backend>(P::data(a.h_last), h, B, T, Tq, D);
        x_query = P::data(a.x_last), h_query = P::data(a.h_last);
      }
      Scalar *q = a.at(a.q, l, H * dh), *k = a.at(a.k, l, H * dh), *v = a.at(a.v, l, H * dh), *z = a.at(a.z, l, H * dh);
      if (tables_at(l)) {  // block 0: q, k, v from the tables made in pack_projections (Tq = T here)
        layers::projection_from_tables_forward<Backend>(q, token_table(0), position_table(0), w.b_q, tokens, B, T,
                                                        H * dh);
        layers::projection_from_tables_forward<Backend>(k, token_table(1), position_table(1), w.b_k, tokens, B, T,
                                                        H * dh);
        layers::projection_from_tables_forward<Backend>(v, token_table(2), position_table(2), w.b_v, tokens, B, T,
                                                        H * dh);
      } else {
        layers::qkv_forward<Backend>(q, k, v, h, h_query, packed(l, 0), packed(l, 1), packed(l, 2), w.b_q, w.b_k, w.b_v,
                                     dims, D);
      }
      layers::attention_forward<Backend, T, dh>(z, a.at(a.pattern, l, H * T),
                                                keep_scores ? a.at(a.scores, l, H * T) : nullptr, q, k, v,
                                                dims);     // z (B, Tq, H, dh), pattern (B, H, Tq, T)
      for (const DeviceIntervention& iv : interventions_)  // head ablations and patches, at hook_z
        if (iv.kind < 3 && iv.layer == l)
          P::for_each(B * Tq, SetHeadRows<Scalar>{z, iv.kind == 0 ? nullptr : P::data(iv.values),
                                                  iv.kind == 2 ? T * dh : 0, first_sample, Tq, T, H, dh, iv.index});
      Scalar* attn_out = a.at(a.attn_out, l, D);
      layers::attention_output_forward<Backend>(attn_out, z, w.w_o, w.b_o, B * Tq, H, dh, D);  // (B, Tq, D)
      Scalar* out = a.at(a.resid, l + 1, D);                                                   // (B, Tq, D)
      Scalar* mid = kMlp ? a.at(a.resid_mid, l, D) : out;
      layers::residual_forward<Backend>(mid, x_query, attn_out, B * Tq, D);
      if constexpr (kMlp) {
        Scalar* h2 = mid;  // ln2(mid)
        if (kNorm) {
          h2 = a.at(a.ln2, l, D);
          layers::layer_norm_forward<Backend>(h2, a.at(a.ln2_mean, l, 1), a.at(a.ln2_scale, l, 1), mid, w.ln2_w,
                                              w.ln2_b, B * Tq, D);
        }
        Scalar* mlp_out = a.at(a.mlp_out, l, D);
        layers::mlp_forward<Backend>(mlp_out, a.at(a.pre, l, M), a.at(a.post, l, M), h2, w.w_in, w.b_in, w.w_out,
                                     w.b_out, Arch::activation, B * Tq, D, M);
        layers::residual_forward<Backend>(out, mid, mlp_out, B * Tq, D);
      }
    }
    const Scalar* x = a.at(a.resid, L, D);  // (B, Tq, D)
    const Scalar* h = x;                    // ln_final(x)
    if (kNorm) {
      layers::layer_norm_forward<Backend>(P::data(a.lnf), P::data(a.lnf_mean), P::data(a.lnf_scale), x, m.ln_final_w,
                                          m.ln_final_b, B * Tq_last, D);
      h = P::data(a.lnf);
    }
    layers::unembedding_forward<Backend>(P::data(a.logits), h, m.w_e, m.w_u, m.b_u, Arch::tied, B * Tq_last, D, V_out);
  }

  // Backward of one chunk after forward(..., Tq_last, ...) and the cross-entropy's gradient in a.logits;
  // adds every parameter's gradient into `grads` (zeroed by the caller).
  void backward(const Scalar* params, const index_t* token_begin, const index_t* token_row, index_t B, index_t Tq_last,
                Activations& a, Scalar* grads) const {
    const ModelTensors<const Scalar> m = Ptr::model(params);
    const ModelTensors<Scalar> dm = Ptr::model(grads);
    // d resid of the last block's output, (B, Tq, D)
    Scalar* dres = Tq_last == T ? P::data(a.dresid) : P::data(a.dresid_last);
    {
      const Scalar* x = a.at(a.resid, L, D);
      Scalar* dlnf = kNorm ? P::data(a.dnorm) : dres;  // d ln_final(x)
      layers::unembedding_backward<Backend>(dlnf, dm.w_e, dm.w_u, dm.b_u, P::data(a.logits), kNorm ? P::data(a.lnf) : x,
                                            m.w_e, m.w_u, Arch::tied, B * Tq_last, D, V_out);
      if (kNorm) {
        P::fill(dres, static_cast<std::size_t>(B) * Tq_last * D, Scalar(0));
        layers::layer_norm_backward<Backend>(dres, dm.ln_final_w, dm.ln_final_b, dlnf, x, P::data(a.lnf_mean),
                                             P::data(a.lnf_scale), m.ln_final_w, B * Tq_last, D);
      }
    }
    for (index_t l = L - 1; l >= 0; --l) {
      const BlockTensors<const Scalar> w = Ptr::block(params, l);
      const BlockTensors<Scalar> dw = Ptr::block(grads, l);
      const index_t Tq = l == L - 1 ? Tq_last : T;
      const layers::AttentionDims dims{B, T, Tq, H, dh, Arch::causal};
      // dres: d out (B, Tq, D) of this block. out = mid + mlp(ln2(mid)), mid = x_query + attn_out.
      if constexpr (kMlp) {
        Scalar* mid = a.at(a.resid_mid, l, D);
        Scalar* h2 = kNorm ? a.at(a.ln2, l, D) : mid;
        Scalar* d_mlp_in = P::data(a.dnorm);  // d ln2(mid)
        P::fill(d_mlp_in, static_cast<std::size_t>(B) * Tq * D, Scalar(0));
        layers::mlp_backward<Backend>(d_mlp_in, dw.w_in, dw.b_in, dw.w_out, dw.b_out, P::data(a.dmlp), dres, h2,
                                      a.at(a.pre, l, M), a.at(a.post, l, M), w.w_in, w.w_out, Arch::activation, B * Tq,
                                      D, M);
        if (kNorm)
          layers::layer_norm_backward<Backend>(dres, dw.ln2_w, dw.ln2_b, d_mlp_in, mid, a.at(a.ln2_mean, l, 1),
                                               a.at(a.ln2_scale, l, 1), w.ln2_w, B * Tq, D);
        else
          layers::residual_forward<Backend>(dres, dres, d_mlp_in, B * Tq,
                                            D);  // d mid = d out + the MLP's input gradient
      }
      // dres is now d mid = d attn_out = d x_query (the skip path).
      Scalar* dz = P::data(a.dz);
      layers::attention_output_backward<Backend>(dz, dw.w_o, dw.b_o, dres, a.at(a.z, l, H * dh), w.w_o, B * Tq, H, dh,
                                                 D);
      layers::attention_backward<Backend, T, dh>(P::data(a.dq), P::data(a.dk), P::data(a.dv), dz,
                                                 a.at(a.pattern, l, H * T), a.at(a.q, l, H * dh), a.at(a.k, l, H * dh),
                                                 a.at(a.v, l, H * dh), dims);
      // d x (B, T, D) of the block's input: the skip path, plus q, k, v's input gradients (through ln1).
      Scalar* dx = P::data(a.dresid);
      if (Tq < T) {
        P::fill(dx, static_cast<std::size_t>(B) * T * D, Scalar(0));
        layers::last_positions_backward<Backend>(dx, dres, B, T, Tq, D);
      }
      Scalar* x = a.at(a.resid, l, D);
      Scalar* h = kNorm ? a.at(a.ln1, l, D) : x;
      Scalar* d_attn_in = dx;  // d ln1(x): the input gradient itself without LayerNorm
      if (kNorm) {
        d_attn_in = P::data(a.dnorm);
        P::fill(d_attn_in, static_cast<std::size_t>(B) * T * D, Scalar(0));
      }
      Scalar* d_attn_in_query = d_attn_in;
      const Scalar* h_query = h;
      if (Tq < T) {
        d_attn_in_query = P::data(a.dh_last);
        P::fill(d_attn_in_query, static_cast<std::size_t>(B) * Tq * D, Scalar(0));
        h_query = P::data(a.h_last);
      }
      const std::size_t cols = static_cast<std::size_t>(D) * H * dh;
      Scalar* dw_cols = P::data(a.dw_cols);  // (3, D, H dh): this chunk's dW_Q, dW_K, dW_V as columns
      P::fill(dw_cols, 3 * cols, Scalar(0));
      if (tables_at(l)) {
        // Block 0 from tables: the input gradient through q, k, v goes to W_E and W_pos directly; dx keeps
        // the skip path, which embedding_backward adds below.
        const Scalar* d[3] = {P::data(a.dq), P::data(a.dk), P::data(a.dv)};
        Scalar* db[3] = {dw.b_q, dw.b_k, dw.b_v};
        Scalar* sums = P::data(a.table_sums);
        for (index_t p = 0; p < 3; ++p)
          layers::projection_from_tables_backward<Backend>(
              dm.w_e, dm.w_pos, dw_cols + p * cols, db[p], sums, sums + static_cast<std::ptrdiff_t>(V) * H * dh, d[p],
              m.w_e, m.w_pos, packed(0, p), token_begin, token_row, B, T, V, D, H * dh);
      } else {
        layers::qkv_backward<Backend>(d_attn_in, d_attn_in_query, dw_cols, dw_cols + cols, dw_cols + 2 * cols, dw.b_q,
                                      dw.b_k, dw.b_v, P::data(a.dq), P::data(a.dk), P::data(a.dv), h, h_query,
                                      packed(l, 0), packed(l, 1), packed(l, 2), dims, D);
      }
      layers::add_columns_to_heads<Backend>(dw.w_q, dw_cols, H, D, dh);
      layers::add_columns_to_heads<Backend>(dw.w_k, dw_cols + cols, H, D, dh);
      layers::add_columns_to_heads<Backend>(dw.w_v, dw_cols + 2 * cols, H, D, dh);
      if (Tq < T) layers::last_positions_backward<Backend>(d_attn_in, d_attn_in_query, B, T, Tq, D);
      if (kNorm)
        layers::layer_norm_backward<Backend>(dx, dw.ln1_w, dw.ln1_b, d_attn_in, x, a.at(a.ln1_mean, l, 1),
                                             a.at(a.ln1_scale, l, 1), w.ln1_w, B * T, D);
      dres = dx;
    }
    layers::embedding_backward<Backend>(dm.w_e, dm.w_pos, dres, token_begin, token_row, B, T, V, D);
  }

  static void upload(buffer<Scalar>& to, const std::vector<Scalar>& from) {
    P::allocate(to, from.size());
    P::copy_from_host(from.data(), P::data(to), from.size());
  }

  // Whether block l computes q, k, v from the projection tables: block 0, unless a residual patch
  // changes its input (interventions apply to forward passes only).
  bool tables_at(index_t l) const {
    if constexpr (kProjectionTables) {
      if (l != 0) return false;
      for (const DeviceIntervention& iv : interventions_)
        if (iv.kind == 3 && iv.layer == 0) return false;
      return true;
    } else {
      static_cast<void>(l);
      return false;
    }
  }
  // Projection p's (0 q, 1 k, 2 v) tables: (V, H dh) by token, then (T, H dh) by position.
  Scalar* token_table(index_t p) { return P::data(tables_) + static_cast<std::ptrdiff_t>(p) * (V + T) * H * dh; }
  const Scalar* token_table(index_t p) const {
    return P::data(tables_) + static_cast<std::ptrdiff_t>(p) * (V + T) * H * dh;
  }
  Scalar* position_table(index_t p) { return token_table(p) + static_cast<std::ptrdiff_t>(V) * H * dh; }
  const Scalar* position_table(index_t p) const { return token_table(p) + static_cast<std::ptrdiff_t>(V) * H * dh; }

  Scalar* packed(index_t l, index_t m) {
    return P::data(packed_) + (static_cast<std::ptrdiff_t>(l) * 3 + m) * D * H * dh;
  }
  const Scalar* packed(index_t l, index_t m) const {
    return P::data(packed_) + (static_cast<std::ptrdiff_t>(l) * 3 + m) * D * H * dh;
  }

  struct DeviceIntervention {
    index_t layer, index;  // index: the head, or the position of a residual patch
    int kind;              // 0 zero, 1 mean, 2 patch a head's z; 3 patch a residual row
    buffer<Scalar> values;
  };

  index_t capacity_, chunk_, workers_;
  std::vector<Activations> acts_;
  std::vector<DeviceIntervention> interventions_;
  buffer<Scalar> packed_;  // (L, 3, D, H dh): W_Q, W_K, W_V of each block as columns
  buffer<Scalar> tables_;  // (3, V + T, H dh): block 0's projection tables        [projection tables]
  buffer<Scalar> loss_, partials_;
  buffer<index_t> correct_;
};

}  // namespace tinyattn
