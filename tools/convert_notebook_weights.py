#!/usr/bin/env python3
"""Convert the PyTorch notebook's weights (torch.save(model.state_dict(), "model_weights.pt"))
into a safetensors file that tinyattn reads (`minmax plot --weights`, `minmax predict --weights`,
tinyattn::io::load_weights).

  convert_notebook_weights.py model_weights.pt weights.safetensors [--force] [--trust-pickle]

Needs PyTorch and NumPy for the interpreter that runs it: on Debian 12 the packages python3-torch and
python3-numpy, i.e. run it as `/usr/bin/python3 tools/convert_notebook_weights.py ...` when the
python3 on PATH is another interpreter.

Input: what torch.load returns for the file, one of
  * the state_dict itself (what the notebook saves);
  * a dict that holds it under "state_dict" or "model_state_dict" (a training checkpoint; its other
    entries, such as the optimizer state, are ignored);
  * a whole pickled model (torch.save(model)): only with --trust-pickle, and only if the model's
    class can be imported here (a class defined in the notebook cannot; save its state_dict instead).
The file is read with torch.load(weights_only=True), which refuses arbitrary pickled objects; on
torch 1.13 that also refuses a checkpoint dict holding plain Python floats. --trust-pickle loads it
with full unpickling instead, which runs code from the file: use it only for files you trust.

Checks (any failure: a message naming the tensor, expected vs found, exit status 1):
  * the six weight tensors are present, floating point, finite, with consistent shapes:
      _token_embedding._weight                      (V, D)
      _positional_embedding._positions              (T, D)     T = context (number of positions)
      _transformer_block._attention._query_weight   (H, D, dh) } the same shape,
      _transformer_block._attention._key_weight     (H, D, dh) } D = H * dh
      _transformer_block._attention._value_weight   (H, D, dh) }
      _transformer_block._attention._output_weight  (H, dh, D)
  * the four biases (_query_bias, _key_bias, _value_bias of shape (H, dh), _output_bias of shape
    (D,)) are absent or all zero: tinyattn's biases are frozen at zero. Absent ones are written as
    zeros, so the output loads back into the notebook with load_state_dict(strict=True).
  * no other tensor: an extra tensor means another architecture (LayerNorm, MLP, ...) that tinyattn
    would silently compute differently, so it is an error, not a warning.
float64, float16 and bfloat16 tensors are converted to float32 (with a note on stderr).

Output: F32 tensors under the same names, little-endian, metadata {"source": "converted from
<input basename>", "format": "tinyattn", "vocab", "d_model", "heads", "context"}. Written atomically
(a temporary file in the output's directory, fsync, rename); an existing output is left untouched
unless --force is given.

Exit status: 0 success, 1 bad input or I/O error, 2 usage error.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

PROG = "convert_notebook_weights.py"

WEIGHTS = [  # (state_dict name, shape in terms of the dimensions)
    ("_token_embedding._weight", ("V", "D")),
    ("_positional_embedding._positions", ("T", "D")),
    ("_transformer_block._attention._query_weight", ("H", "D", "dh")),
    ("_transformer_block._attention._key_weight", ("H", "D", "dh")),
    ("_transformer_block._attention._value_weight", ("H", "D", "dh")),
    ("_transformer_block._attention._output_weight", ("H", "dh", "D")),
]
BIASES = [
    ("_transformer_block._attention._query_bias", ("H", "dh")),
    ("_transformer_block._attention._key_bias", ("H", "dh")),
    ("_transformer_block._attention._value_bias", ("H", "dh")),
    ("_transformer_block._attention._output_bias", ("D",)),
]
DIM_NAMES = {"V": "vocab", "T": "context", "D": "d_model", "H": "heads", "dh": "head_dim"}
REFERENCE = {"V": 131, "T": 4, "D": 32, "H": 2}  # what the minmax program is compiled for


class InputError(Exception):
    """Bad input or I/O failure: reported as 'convert_notebook_weights.py: error: ...', exit 1."""


def fmt_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def note(message):
    print(f"{PROG}: note: {message}", file=sys.stderr)


# ---- loading ---------------------------------------------------------------------------------------
def torch_load(torch, path, trust_pickle):
    import inspect
    try:
        supports_weights_only = "weights_only" in inspect.signature(torch.load).parameters
    except (TypeError, ValueError):
        supports_weights_only = False
    if trust_pickle or not supports_weights_only:
        if not trust_pickle:
            note(f"this torch ({torch.__version__}) has no weights_only loading: {path} is unpickled in full")
        kwargs = {"weights_only": False} if supports_weights_only else {}
        try:
            return torch.load(path, map_location="cpu", **kwargs)
        except AttributeError as e:  # "Can't get attribute 'Model' on <module '__main__'>"
            raise InputError(f"{path}: cannot unpickle it: {e}. It probably holds a whole model whose class is "
                             "defined in the notebook; save model.state_dict() there instead") from None
    import pickle
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split("\n")[0]
        if "Weights only load failed" in first or "weights_only" in first.lower():
            raise InputError(
                f"{path}: torch.load(weights_only=True) refuses it: it holds Python objects other than tensors "
                "(a whole pickled model, or a checkpoint dict with other values). Best: save "
                "model.state_dict() in the notebook. If you trust the file, rerun with --trust-pickle "
                "(full unpickling runs code from the file)") from None
        raise


def require_torch():
    try:
        import importlib
        importlib.import_module("numpy")  # the checks and the writer import it where they need it
        import torch
    except ImportError as e:
        raise InputError(f"{e}: this script needs PyTorch and NumPy (Debian: apt install python3-torch "
                         f"python3-numpy, then run it with /usr/bin/python3); this is {sys.executable}") from None
    return torch


def looks_like_safetensors(path):
    """A safetensors file starts with its JSON header's length (8 bytes, little-endian), then '{'."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= os.path.getsize(path) - 8


def load_state_dict(torch, path, trust_pickle):
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected the file written by torch.save")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable (permission denied)")
    if looks_like_safetensors(path):
        raise InputError(f"{path}: is already a safetensors file, nothing to convert: tinyattn reads it directly "
                         "(e.g. minmax plot --weights FILE)")
    try:
        obj = torch_load(torch, path, trust_pickle)
    except InputError:
        raise
    except Exception as e:  # not a torch file, truncated, ...
        first = str(e).strip().split("\n")[0]
        raise InputError(f"{path}: not a file torch.load can read, not written by torch.save? "
                         f"({type(e).__name__}: {first})") from None
    where = path
    if isinstance(obj, torch.nn.Module):
        note(f"{path} holds a whole model ({type(obj).__name__}); using its state_dict()")
        obj = obj.state_dict()
    elif isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                note(f"{path} is a dict; using its '{key}' entry (ignoring {sorted(k for k in obj if k != key)})")
                obj, where = obj[key], f"{path}['{key}']"
                break
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, expected a state_dict (a dict of tensors), a dict "
                         "with a 'state_dict' or 'model_state_dict' entry, or a model")
    if not obj:
        raise InputError(f"{where}: the state_dict is empty")
    for name, value in obj.items():
        if not isinstance(name, str):
            raise InputError(f"{where}: key {name!r} is a {type(name).__name__}, expected tensor names (str)")
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{where}: entry '{name}' is a {type(value).__name__}, expected a tensor")
    return obj, where


# ---- checking --------------------------------------------------------------------------------------
def to_float32(torch, where, name, tensor, converted):
    """The tensor as a C-contiguous little-endian float32 numpy array, checked finite. Records in
    `converted` (dtype -> names) what was not float32 already."""
    import numpy as np
    if tensor.is_complex() or not tensor.is_floating_point():
        raise InputError(f"{where}: tensor '{name}' has dtype {tensor.dtype}, expected a floating-point tensor "
                         "(float32; float64/float16/bfloat16 are converted)")
    if tensor.dtype != torch.float32:
        converted.setdefault(str(tensor.dtype).replace("torch.", ""), []).append(name)
    arr = np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy(), dtype="<f4")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        what = " after conversion to float32" if tensor.dtype != torch.float32 else ""
        raise InputError(f"{where}: tensor '{name}' has {plural(int(bad.sum()), 'non-finite value')}{what} "
                         f"(first at index {first}: {arr[first]}), expected finite weights")
    return arr


def plural(count, noun):
    return f"{count} {noun}" + ("" if count == 1 else "s")


def check(torch, sd, where):
    """Returns (dims, arrays in output order, names of biases that were absent, converted dtypes)."""
    names = [n for n, _ in WEIGHTS] + [n for n, _ in BIASES]
    extra = [n for n in sd if n not in names]
    missing = [n for n, _ in WEIGHTS if n not in sd]
    if extra:
        raise InputError(f"{where}: unexpected tensors {extra}" + (f" (and missing {missing})" if missing else "") +
                         f": expected exactly the notebook's {len(WEIGHTS)} weights and {len(BIASES)} (optional) "
                         "biases; another architecture cannot be converted")
    if missing:
        raise InputError(f"{where}: missing weight tensors {missing} (found {list(sd)})")

    # Derive the dimensions from the weights, first come first served, then check every shape.
    dims, origin = {}, {}
    for name, pattern in WEIGHTS + [b for b in BIASES if b[0] in sd]:
        shape = tuple(sd[name].shape)
        if len(shape) != len(pattern):
            raise InputError(f"{where}: tensor '{name}' has shape {fmt_shape(shape)}, expected {len(pattern)} "
                             f"dimensions {fmt_shape(pattern)}")
        for letter, size in zip(pattern, shape):
            if letter not in dims:
                if size < 1:
                    raise InputError(f"{where}: tensor '{name}' has shape {fmt_shape(shape)}: "
                                     f"{DIM_NAMES[letter]} {letter} = {size}, expected >= 1")
                dims[letter], origin[letter] = size, name
            elif dims[letter] != size:
                expected = tuple(dims.get(p, p) for p in pattern)
                raise InputError(
                    f"{where}: tensor '{name}' has shape {fmt_shape(shape)}, expected {fmt_shape(expected)}: "
                    f"its {DIM_NAMES[letter]} {letter} is {size} but '{origin[letter]}' says {dims[letter]}")
        if name == WEIGHTS[-1][0] and dims["D"] != dims["H"] * dims["dh"]:
            raise InputError(
                f"{where}: d_model {dims['D']} != heads {dims['H']} * head_dim {dims['dh']} "
                f"(from '{WEIGHTS[2][0]}' of shape {fmt_shape(tuple(sd[WEIGHTS[2][0]].shape))}): "
                "expected the heads to split d_model")

    arrays, created, converted = {}, [], {}
    for name, _ in WEIGHTS:
        arrays[name] = to_float32(torch, where, name, sd[name], converted)
    import numpy as np
    for name, pattern in BIASES:
        shape = tuple(dims[p] for p in pattern)
        if name not in sd:
            created.append(name)
        else:
            arr = to_float32(torch, where, name, sd[name], converted)
            nonzero = np.argwhere(arr != 0)
            if len(nonzero):
                first = tuple(int(i) for i in nonzero[0])
                raise InputError(f"{where}: tensor '{name}' has {plural(len(nonzero), 'nonzero element')} (at index "
                                 f"{first}: {float(arr[first])!r}), expected all zero: tinyattn's biases are frozen "
                                 "at zero")
        arrays[name] = np.zeros(shape, dtype="<f4")  # +0.0 also where the input had -0.0
    return dims, arrays, created, converted


# ---- writing ---------------------------------------------------------------------------------------
def safetensors_bytes(arrays, metadata):
    header, offset = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}, 0
    for name, arr in arrays.items():
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so the data starts 8-byte aligned
    return [struct.pack("<Q", len(text)), text] + [arr.tobytes() for arr in arrays.values()]


def write_atomically(path, chunks, force):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"{path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected a file name")
    if not force and os.path.lexists(path):
        raise InputError(f"{path}: exists; pass --force to replace it")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    except OSError as e:
        raise InputError(f"{path}: cannot create a temporary file in {directory}: {e.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it 0600; give it a new file's usual mode
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:  # link fails if the output appeared meanwhile: never clobber without --force
                os.link(tmp, path)
                os.unlink(tmp)
            except FileExistsError:
                raise InputError(f"{path}: exists; pass --force to replace it") from None
            except OSError:  # no hard links on this file system
                if os.path.lexists(path):
                    raise InputError(f"{path}: exists; pass --force to replace it") from None
                os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"{path}: cannot write it: {e.strerror or e}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ---- main ------------------------------------------------------------------------------------------
def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See docs/notebook-weights.md.")
    parser.add_argument("input", help="the notebook's torch.save file, e.g. model_weights.pt")
    parser.add_argument("output", help="the safetensors file to write, e.g. weights.safetensors")
    parser.add_argument("--force", action="store_true", help="replace the output if it exists")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="load with full unpickling (a whole pickled model, or a checkpoint that "
                             "weights_only loading refuses); this runs code from the file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    try:
        if os.path.exists(args.output) and os.path.exists(args.input) and os.path.samefile(args.input, args.output):
            raise InputError(f"{args.output}: is the input file; choose another output name")
        torch = require_torch()
        sd, where = load_state_dict(torch, args.input, args.trust_pickle)
        dims, arrays, created, converted = check(torch, sd, where)
        metadata = {"source": "converted from " + os.path.basename(args.input), "format": "tinyattn",
                    "vocab": dims["V"], "d_model": dims["D"], "heads": dims["H"], "context": dims["T"]}
        write_atomically(args.output, safetensors_bytes(arrays, metadata), args.force)
    except InputError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    for dtype, names in converted.items():
        note(f"converted {plural(len(names), dtype + ' tensor')} to float32" +
             (" (rounded to float32 precision)" if dtype == "float64" else "") + f": {names}")
    if created:
        note(f"absent biases written as zeros: {created}")
    if any(dims[k] != v for k, v in REFERENCE.items()):
        note("the minmax program reads only vocab 131, d_model 32, heads 2, context 4; load this file with "
             f"tinyattn::io::load_weights into a network of tinyattn::Shape<{dims['V']}, {dims['D']}, {dims['H']}, "
             f"{dims['T']}>")
    print(f"wrote {args.output}: vocab {dims['V']}, d_model {dims['D']}, heads {dims['H']} (head_dim {dims['dh']}), "
          f"context {dims['T']}; {len(arrays)} float32 tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
