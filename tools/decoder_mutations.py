"""Shows that each must-fail vector added for issues 25 and 28 catches a decoder that lacks its check:
for each, tools/decode.py is copied with that one check removed (or moved), run over both vector
files, and the vectors it then gets wrong are printed. Every line must name its own vector.

    target/python-decoder-venv/bin/python tools/decoder_mutations.py

Not part of CI: a demonstration that the vectors can fail, kept beside the decoder it mutates.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOADS = "json.loads(text, object_pairs_hook=unique, parse_int=unsigned)"
UINT = "return type(x) is int and 0 <= x < 1 << bits"
STRIP = '        text = text.strip(WHITESPACE)\n        if text.startswith("ssk1.")'
SIZE = '    if declared > limit:\n        raise Rejected("too_large", f"declares {declared} bytes, limit {limit}")\n'
DICT_ID = '    if params.dict_id:\n        raise Rejected("malformed", "zstd frame names a dictionary")\n'

# vector -> (text of decode.py, what replaces it)
MUTATIONS = {
    "ring_integer_minus_zero": (LOADS, "json.loads(text, object_pairs_hook=unique)"),
    "ring_repeated_field": (LOADS, "json.loads(text, parse_int=unsigned)"),
    "ring_integer_with_fraction": (UINT, UINT.replace("type(x) is int", "isinstance(x, (int, float))")),
    "ring_time_2_64": (UINT, "return type(x) is int and 0 <= x"),
    "ring_version_2_32": (UINT, "return type(x) is int and 0 <= x"),
    "ring_byte_order_mark": ("    try:\n        doc = json.loads(",
                             '    text = text.lstrip("\\ufeff")\n    try:\n        doc = json.loads('),
    "ring_trailing_text": ("doc = " + LOADS,
                           "doc = json.JSONDecoder(object_pairs_hook=unique, "
                           "parse_int=unsigned).raw_decode(text)[0]"),
    "ring_env_unit_separator": (STRIP, STRIP.replace("strip(WHITESPACE)", "strip()")),
    "ring_env_byte_order_mark": (STRIP, STRIP.replace("strip(WHITESPACE)", 'strip(WHITESPACE + "\\ufeff")')),
    "zstd_dictionary_id_declaring_65537": (SIZE + DICT_ID, DICT_ID + SIZE),
    # A decoder that ignores the configured purpose opens a token sealed without one.
    "purpose_missing_on_token": ('    purpose = cfg.get("purpose")', "    purpose = None"),
}


def main():
    source = open(os.path.join(HERE, "decode.py")).read()
    mutant = os.path.join(HERE, "_mutant_decode.py")
    vectors = [os.path.join(ROOT, "test_vectors", f) for f in ("v1.json", "v1-extra.json")]
    missed = []
    try:
        for name, (check, without) in MUTATIONS.items():
            assert check in source, f"{name}: decode.py changed; update this script"
            with open(mutant, "w") as out:
                out.write(source.replace(check, without, 1))
            run = subprocess.run([sys.executable, mutant, "vectors", *vectors],
                                 capture_output=True, text=True)
            failing = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("FAIL")]
            print(f"{name}: without its check, decode.py fails {failing}")
            if name not in failing:
                missed.append(name)
    finally:
        os.remove(mutant)
    if missed:
        sys.exit(f"vectors that no longer catch their mutation: {missed}")


if __name__ == "__main__":
    main()
