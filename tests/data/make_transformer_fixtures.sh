#!/usr/bin/env bash
# Regenerates tests/data/transformer/*/ and tests/data/peer_weights/ with the PyTorch peer (needs
# ../shared/peers and tools/install_deps.sh --peer). Tests never run this; they read the committed files.
set -euo pipefail
cd "$(dirname "$0")"
peer=${PEER:-../../../shared/peers/torch_transformer.py}
py=/usr/bin/python3
golden() {  # name, peer options...
  local name=$1; shift
  rm -rf "transformer/$name"
  "$py" "$peer" "$@" --golden "transformer/$name"
  echo "$name gradcheck: $("$py" "$peer" "$@" --gradcheck 4 | "$py" -c 'import json,sys; r=json.load(sys.stdin); print(r["passed"], r["worst_rel_error"])')"
}
golden grokking --preset grokking
# 8.8 MB: keep every float32 tensor, the float64 probe, losses and weights after 5 steps; drop the float64
# gradients and weights after 1 step (finite differences check double gradients on odd shapes)
./trim_safetensors.py transformer/grokking/golden.safetensors f64.grad. f64.step1.
golden induction_small --preset induction --d-vocab 16 --n-ctx 8 --samples 512 --test-samples 128
golden all_options --task induction --d-vocab 16 --n-ctx 8 --samples 256 --test-samples 64 --layers 2 --heads 3 \
  --d-model 24 --d-mlp 40 --act gelu --norm ln --biases on --unembed untied --mask causal --loss all --seed 3
golden minmax_tl --task minmax --seed 5
golden odd_head_dim --task modadd --p 23 --d-model 20 --heads 3 --d-head 8 --d-mlp 24 --norm ln --biases on \
  --unembed untied --seed 4
golden modadd_tied --task modadd --p 17 --unembed tied --d-model 16 --heads 2 --d-mlp 32 --act gelu --seed 6

# Trained weights and the peer's own --eval of them.
mkdir -p peer_weights
weights() {  # name, peer options...
  local name=$1; shift
  "$py" "$peer" "$@" --no-eval --save "peer_weights/$name.safetensors" --json > /dev/null
  "$py" "$peer" "$@" --eval "peer_weights/$name.safetensors" > "peer_weights/$name.eval.json"
}
weights grokking_seed1 --preset grokking --epochs 200 --seed 1
weights induction_seed2 --preset induction --epochs 20 --seed 2
weights minmax_tl_seed3 --task minmax --epochs 100 --seed 3
weights minmax_notebook_names_seed3 --task minmax --epochs 100 --seed 3 --names seed
