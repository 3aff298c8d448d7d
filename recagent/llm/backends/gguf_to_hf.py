"""Convert a GGUF model file to a float32 Hugging Face folder that vLLM can load.

Usage: python gguf_to_hf.py MODEL.gguf OUT_DIR

Run by the vLLM environment's python (it needs torch, transformers, gguf, accelerate)
from recagent/vllm_model.py; it imports nothing from recagent. transformers dequantises
the GGUF blocks on load; the loaded model still carries a GGUF quantization config
(vLLM would then look for GGUF weights), so a fresh model is built from the config
without it and given the dequantised weights. The tokenizer, with the chat template
from the GGUF metadata, is saved alongside.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    options: dict[str, object] = {"gguf_file": name, "dtype": torch.float32}
    try:
        from transformers import GgufConfig  # transformers >= 5: dequantising is opt-in
    except ImportError:
        pass
    else:
        options["quantization_config"] = GgufConfig(gguf_file=str(gguf), dequantize=True)
    loaded = AutoModelForCausalLM.from_pretrained(folder, **options)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    convert(Path(argv[0]).resolve(), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
