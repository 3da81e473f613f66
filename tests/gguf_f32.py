"""The embedded Q4_1 GGUF rewritten with every tensor dequantised to float32.

Why: llama.cpp's Q4_1 kernels quantise the activations to 8 bits before each matrix product,
while transformers (`hf/…`) dequantises the same weights and computes in float32, so the two
runtimes read the quantised file differently (P(heads) up to 30 % apart relative after a few
in-context flips). On this float32 file both compute in float32 from identical weights, and
what is left to compare is the backends themselves: prompts, tokens, whole-answer sums.
Metadata and tokenizer are copied field by field (as gguf's own `gguf_new_metadata` does);
the file is ~540 MB and takes seconds to write.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def write_float32_copy(source: Path, target: Path) -> Path:
    reader = gguf.GGUFReader(str(source))
    writer = gguf.GGUFWriter(str(target), reader.fields["general.architecture"].contents())
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE:
            value = int(gguf.LlamaFileType.ALL_F32)
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    for tensor in reader.tensors:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        writer.add_tensor(tensor.name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
