#!/usr/bin/env bash
# Tests tools/convert_notebook_weights.py: notebook state_dict (torch.save) -> tinyattn safetensors.
#
#   test_convert_notebook_weights.sh CONVERTER [MINMAX_BINARY]
#
# Needs PyTorch and NumPy for /usr/bin/python3 (Debian: python3-torch, python3-numpy; override the
# interpreter with TINYATTN_TORCH_PYTHON). Without them it exits 77, which ctest reports as skipped.
# With MINMAX_BINARY it also proves that the C++ program reads the converted file, and that a file
# tinyattn wrote loads into a notebook-shaped PyTorch module (the recipe of docs/notebook-weights.md)
# and converts back bit for bit.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 CONVERTER [MINMAX_BINARY]" >&2
  exit 2
fi
CONVERTER=$1
DATA_DIR=$(cd "$(dirname "$1")/../tests/data" && pwd)  # the committed fixtures
MINMAX=${2:-}
PY=${TINYATTN_TORCH_PYTHON:-/usr/bin/python3}

if ! "$PY" -c "import torch, numpy" >/dev/null 2>&1; then
  echo "SKIP: $PY cannot import torch and numpy (install python3-torch python3-numpy)"
  exit 77
fi
if [ ! -f "$CONVERTER" ]; then
  echo "FAIL: converter $CONVERTER not found" >&2
  exit 1
fi
if [ -n "$MINMAX" ] && [ ! -x "$MINMAX" ]; then
  echo "FAIL: minmax binary $MINMAX not found (build the minmax target first)" >&2
  exit 1
fi

CONVERTER=$(realpath "$CONVERTER")
if [ -n "$MINMAX" ]; then MINMAX=$(realpath "$MINMAX"); fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tinyattn-convert-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
export OMP_NUM_THREADS=1   # keep the shared CI machine's cores free; torch is single-threaded below too

failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# ---- helper: fixtures, a strict safetensors reader, comparisons --------------------------------------
cat > helper.py <<'EOF'
import collections, json, struct, sys
import numpy as np
import torch

torch.set_num_threads(1)
A = "_transformer_block._attention."
WEIGHTS = ["_token_embedding._weight", "_positional_embedding._positions",
           A + "_query_weight", A + "_key_weight", A + "_value_weight", A + "_output_weight"]
BIASES = [A + "_query_bias", A + "_key_bias", A + "_value_bias", A + "_output_bias"]


def notebook_state_dict(seed=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) / 32 ** 0.5
    return collections.OrderedDict([
        ("_token_embedding._weight", r(131, 32)), ("_positional_embedding._positions", r(4, 32)),
        (A + "_query_weight", r(2, 32, 16)), (A + "_key_weight", r(2, 32, 16)),
        (A + "_value_weight", r(2, 32, 16)), (A + "_output_weight", r(2, 16, 32)),
        (A + "_query_bias", torch.zeros(2, 16)), (A + "_key_bias", torch.zeros(2, 16)),
        (A + "_value_bias", torch.zeros(2, 16)), (A + "_output_bias", torch.zeros(32))])


def make_fixtures():
    sd = notebook_state_dict()
    torch.save(sd, "model_weights.pt")
    changed = lambda **kw: collections.OrderedDict(list(sd.items()) + list(kw.items()))
    bias = sd[A + "_value_bias"].clone(); bias[1, 7] = 1e-3
    torch.save(changed(**{A + "_value_bias": bias}), "nonzero_bias.pt")
    torch.save(changed(**{A + "_key_weight": torch.randn(2, 32, 8)}), "wrong_shape.pt")
    torch.save(changed(**{A + "_query_weight": torch.randn(2, 32, 8), A + "_key_weight": torch.randn(2, 32, 8),
                          A + "_value_weight": torch.randn(2, 32, 8), A + "_output_weight": torch.randn(2, 8, 32),
                          A + "_query_bias": torch.zeros(2, 8), A + "_key_bias": torch.zeros(2, 8),
                          A + "_value_bias": torch.zeros(2, 8)}), "heads_do_not_split.pt")
    torch.save(changed(**{"_layer_norm.weight": torch.ones(32)}), "extra_tensor.pt")
    torch.save(collections.OrderedDict((k, v) for k, v in sd.items() if k != A + "_output_weight"), "missing_weight.pt")
    torch.save(collections.OrderedDict((k, v) for k, v in sd.items() if k not in BIASES), "no_biases.pt")
    torch.save(collections.OrderedDict((k, v.double()) for k, v in sd.items()), "float64.pt")
    torch.save({"model_state_dict": sd, "epoch": 750}, "checkpoint.pt")
    nan = sd["_token_embedding._weight"].clone(); nan[3, 4] = float("nan")
    torch.save(changed(**{"_token_embedding._weight": nan}), "nan.pt")
    torch.save(changed(**{"_token_embedding._weight": torch.ones(131, 32, dtype=torch.int64)}), "int.pt")
    with open("not_torch.pt", "wb") as f:
        f.write(b"this is not a torch.save file\n")


def read_safetensors(path):
    """A strict reader: returns (metadata, {name: (dtype, shape, raw bytes)}, names in header order)."""
    with open(path, "rb") as f:
        raw = f.read()
    assert len(raw) >= 8, "shorter than the 8-byte header length"
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), f"header length {n} runs past the end ({len(raw)} bytes)"
    header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", None)
    assert metadata is None or all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()), \
        "__metadata__ must map strings to strings"
    tensors, spans = {}, []
    for name, e in header.items():
        assert set(e) == {"dtype", "shape", "data_offsets"}, f"{name}: keys {sorted(e)}"
        lo, hi = e["data_offsets"]
        size = {"F32": 4, "F64": 8}[e["dtype"]]
        assert hi - lo == size * int(np.prod(e["shape"], dtype=np.int64)), f"{name}: {hi - lo} bytes for {e}"
        tensors[name] = (e["dtype"], tuple(e["shape"]), data[lo:hi])
        spans.append((lo, hi))
    spans.sort()
    assert [s for s, _ in spans] == [0] + [h for _, h in spans[:-1]] and spans[-1][1] == len(data), \
        "data_offsets do not tile the data buffer"
    return metadata, tensors, list(header)


def as_f32_bytes(t):
    return np.ascontiguousarray(t.detach().numpy().astype("<f4")).tobytes()


def compare(pt, st, source):
    """The converted file holds exactly the input's tensors (as float32), bit for bit, plus zero biases."""
    obj = torch.load(pt, map_location="cpu")
    sd = obj.get("model_state_dict", obj)
    metadata, tensors, order = read_safetensors(st)
    problems = []
    if order != WEIGHTS + BIASES:
        problems.append(f"tensor names/order {order}")
    for name in WEIGHTS + BIASES:
        if name not in tensors:
            problems.append(f"{name} missing"); continue
        dtype, shape, raw = tensors[name]
        expected = sd[name] if name in sd else torch.zeros((32,) if name == A + "_output_bias" else (2, 16))
        if dtype != "F32": problems.append(f"{name}: dtype {dtype}, expected F32")
        if shape != tuple(expected.shape): problems.append(f"{name}: shape {shape}, expected {tuple(expected.shape)}")
        if raw != as_f32_bytes(expected): problems.append(f"{name}: values differ")
    want = {"source": "converted from " + source, "format": "tinyattn", "vocab": "131", "d_model": "32",
            "heads": "2", "context": "4"}
    if metadata != want:
        problems.append(f"metadata {metadata}, expected {want}")
    for p in problems: print("  " + p)
    return not problems


class Notebook(torch.nn.Module):
    """Only the notebook's parameter names and shapes (the state_dict load_state_dict checks)."""
    def __init__(self, V=131, T=4, D=32, H=2):
        super().__init__()
        P = lambda *shape: torch.nn.Parameter(torch.full(shape, 7.0))
        self._token_embedding = torch.nn.Module(); self._token_embedding._weight = P(V, D)
        self._positional_embedding = torch.nn.Module(); self._positional_embedding._positions = P(T, D)
        att = torch.nn.Module()
        for n in ("_query", "_key", "_value"):
            setattr(att, n + "_weight", P(H, D, D // H)); setattr(att, n + "_bias", P(H, D // H))
        att._output_weight = P(H, D // H, D); att._output_bias = P(D)
        self._transformer_block = torch.nn.Module(); self._transformer_block._attention = att


def docs_recipe(tinyattn_file, out_pt):
    """tinyattn -> notebook, as docs/notebook-weights.md shows it; then save as the notebook does."""
    # --- the reader of docs/notebook-weights.md, verbatim: stdlib + numpy ---
    def load_safetensors(path):
        """name -> numpy array, for F32/F64 files such as tinyattn's weights.safetensors."""
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            data = f.read()
        dtypes = {"F32": "<f4", "F64": "<f8"}
        out = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            lo, hi = e["data_offsets"]
            out[name] = np.frombuffer(data[lo:hi], dtypes[e["dtype"]]).reshape(e["shape"])
        return out

    model = Notebook()
    state = {name: torch.from_numpy(a.copy()) for name, a in load_safetensors(tinyattn_file).items()}
    model.load_state_dict(state)  # strict: exactly the notebook's names and shapes
    for name, p in model.state_dict().items():
        assert as_f32_bytes(p) == as_f32_bytes(state[name]), name
    torch.save(model.state_dict(), out_pt)


def same_weights(a, b):
    """Two safetensors files hold the same tensors bit for bit (metadata aside)."""
    _, ta, _ = read_safetensors(a)
    _, tb, _ = read_safetensors(b)
    ok = ta == tb
    if not ok:
        print("  differ in", sorted(n for n in set(ta) | set(tb) if ta.get(n) != tb.get(n)))
    return ok


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fixtures": make_fixtures()
    elif cmd == "compare": sys.exit(0 if compare(*args) else 1)
    elif cmd == "docs-recipe": docs_recipe(*args)
    elif cmd == "same-weights": sys.exit(0 if same_weights(*args) else 1)
    elif cmd == "metadata": print(json.dumps(read_safetensors(args[0])[0], sort_keys=True))
    else: sys.exit(f"unknown helper command {cmd}")
EOF

convert() { "$PY" "$CONVERTER" "$@" > out.txt 2> err.txt; }

# expect_failure STATUS PATTERN OUTPUT -- converter arguments: the exit status, a text its stderr must
# contain, and the output file that must not exist afterwards (nor any temporary file beside it).
expect_failure() {
  local status=$1 pattern=$2 output=$3 what=$4
  shift 5
  convert "$@"
  local rc=$?
  if [ $rc -ne "$status" ]; then
    fail "$what: exit status $rc, expected $status; stderr: $(cat err.txt)"
  elif ! grep -qF -- "$pattern" err.txt; then
    fail "$what: stderr lacks '$pattern': $(cat err.txt)"
  elif [ -n "$output" ] && [ -e "$output" ]; then
    fail "$what: $output was written anyway"
  elif compgen -G '.*.tmp' > /dev/null; then
    fail "$what: a temporary file was left behind: $(compgen -G '.*.tmp')"
  else
    pass "$what -> exit $status: $(head -c 300 err.txt | head -n 1)"
  fi
}

# ---- fixtures -----------------------------------------------------------------------------------------
if ! "$PY" helper.py fixtures; then
  echo "FAIL: could not build the fixtures"
  exit 1
fi

# ---- the command line ---------------------------------------------------------------------------------
if [ "$(head -n 1 "$CONVERTER")" = "#!/usr/bin/env python3" ]; then pass "shebang"; else fail "shebang: $(head -n 1 "$CONVERTER")"; fi
if convert --help && grep -q -- "--force" out.txt; then pass "--help -> exit 0"; else fail "--help: $(cat err.txt)"; fi
expect_failure 2 "usage:" "" "no arguments" --
expect_failure 2 "unrecognized arguments" "" "unknown option" -- model_weights.pt x.safetensors --frobnicate

# ---- the good case --------------------------------------------------------------------------------------
if convert model_weights.pt weights.safetensors && [ -f weights.safetensors ]; then
  pass "convert model_weights.pt: $(cat out.txt)"
  if "$PY" helper.py compare model_weights.pt weights.safetensors model_weights.pt; then
    pass "output parses; names, shapes, F32 and values bit for bit; metadata $("$PY" helper.py metadata weights.safetensors)"
  else
    fail "output differs from the input (above)"
  fi
  mode=$(stat -c %a weights.safetensors)
  if [ "$mode" = "$(printf '%o' $((0666 & ~$(umask))))" ]; then pass "mode $mode (umask)"; else fail "mode $mode"; fi
else
  fail "convert model_weights.pt: exit status $?; stderr: $(cat err.txt)"
fi

if [ -n "$MINMAX" ]; then
  if "$MINMAX" predict --weights weights.safetensors 3 max 5 > predict.txt 2>&1 && grep -q "^max(3, 5) = " predict.txt; then
    pass "minmax predict --weights weights.safetensors 3 max 5: $(head -n 1 predict.txt)"
  else
    fail "minmax predict: $(cat predict.txt)"
  fi
else
  echo "note: no minmax binary given: the C++ checks are skipped"
fi

# ---- accepted variants ------------------------------------------------------------------------------------
for variant in no_biases float64 checkpoint; do
  if convert "$variant.pt" "$variant.safetensors" && "$PY" helper.py compare "$variant.pt" "$variant.safetensors" "$variant.pt"; then
    pass "$variant.pt converted: $(tr '\n' ' ' < err.txt | head -c 160)"
    if [ "$variant" = float64 ] && ! grep -q "float64" err.txt; then fail "no note for the float64 input"; fi
  else
    fail "$variant.pt: $(cat err.txt)"
  fi
done

# ---- failures ---------------------------------------------------------------------------------------------
expect_failure 1 "_transformer_block._attention._value_bias" out.safetensors "nonzero bias" -- nonzero_bias.pt out.safetensors
expect_failure 1 "_transformer_block._attention._key_weight" out.safetensors "wrong shape" -- wrong_shape.pt out.safetensors
expect_failure 1 "d_model 32 != heads 2 * head_dim 8" out.safetensors "heads do not split d_model" -- heads_do_not_split.pt out.safetensors
expect_failure 1 "_layer_norm.weight" out.safetensors "unexpected tensor" -- extra_tensor.pt out.safetensors
expect_failure 1 "_transformer_block._attention._output_weight" out.safetensors "missing weight" -- missing_weight.pt out.safetensors
expect_failure 1 "non-finite" out.safetensors "NaN weight" -- nan.pt out.safetensors
expect_failure 1 "torch.int64" out.safetensors "integer tensor" -- int.pt out.safetensors
expect_failure 1 "not_torch.pt" out.safetensors "not a torch file" -- not_torch.pt out.safetensors
expect_failure 1 "no_such_file.pt: no such file" out.safetensors "missing input file" -- no_such_file.pt out.safetensors
expect_failure 1 "is already a safetensors file" out.safetensors "a safetensors input" -- "$DATA_DIR/torch_weights_seed0.safetensors" out.safetensors
expect_failure 1 "does not exist" "" "missing output directory" -- model_weights.pt no_such_dir/out.safetensors

# An existing output is left untouched without --force, and replaced with it.
printf 'precious' > existing.safetensors
cp existing.safetensors existing.orig
expect_failure 1 "--force" "" "existing output without --force" -- model_weights.pt existing.safetensors
if cmp -s existing.safetensors existing.orig; then pass "existing output untouched"; else fail "existing output was changed"; fi
if convert model_weights.pt existing.safetensors --force && "$PY" helper.py compare model_weights.pt existing.safetensors model_weights.pt; then
  pass "--force replaces the existing output"
else
  fail "--force: $(cat err.txt)"
fi

# ---- tinyattn -> notebook -> tinyattn: the docs' load_state_dict recipe, then the converter -------------
if [ -n "$MINMAX" ]; then
  if "$MINMAX" train --epochs 3 --no-plot --threads 1 --out trained > train.txt 2>&1; then
    if "$PY" helper.py docs-recipe trained/weights.safetensors from_tinyattn.pt &&
       convert from_tinyattn.pt back.safetensors &&
       "$PY" helper.py same-weights trained/weights.safetensors back.safetensors; then
      pass "tinyattn weights load into a notebook-shaped module (load_state_dict strict) and convert back bit for bit"
      "$MINMAX" predict --weights trained/weights.safetensors 17 min 99 > p1.txt 2>&1
      "$MINMAX" predict --weights back.safetensors 17 min 99 > p2.txt 2>&1
      if cmp -s p1.txt p2.txt; then pass "minmax predict: same answer and attention from both files"; else fail "predictions differ"; fi
    else
      fail "round trip through the notebook's state_dict: $(cat err.txt)"
    fi
  else
    fail "minmax train: $(cat train.txt)"
  fi
fi

echo
if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
exit 0
