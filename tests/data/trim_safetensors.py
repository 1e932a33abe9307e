#!/usr/bin/python3
"""Deletes whole tensors from a safetensors file, in place; never alters a value.

  tests/data/trim_safetensors.py FILE PREFIX [PREFIX ...]    deletes every tensor whose name starts with a PREFIX

Used by make_transformer_fixtures.sh to keep the committed fixtures small (see tests/data/README.md).
"""
import json, struct, sys

def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, prefixes = sys.argv[1], tuple(sys.argv[2:])
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    kept, blobs, offset, dropped = {}, [], 0, 0
    if "__metadata__" in header:
        kept["__metadata__"] = header["__metadata__"]
    for name, entry in sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                              key=lambda item: item[1]["data_offsets"][0]):
        if name.startswith(prefixes):
            dropped += 1
            continue
        lo, hi = entry["data_offsets"]
        blobs.append(data[lo:hi])
        kept[name] = {"dtype": entry["dtype"], "shape": entry["shape"], "data_offsets": [offset, offset + hi - lo]}
        offset += hi - lo
    text = json.dumps(kept, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    print(f"{path}: deleted {dropped} tensors starting with {', '.join(prefixes)}")

if __name__ == "__main__":
    main()
