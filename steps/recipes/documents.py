"""Documents recipe: each artifact's `raw_text.json` tokenized with a `tokenizers` tokenizer.

Settings: `model_input_files: [raw_text.json]`, `use_features: false`,
`encode_data: steps.recipes.documents:encode_data`,
`get_dataset_features: steps.recipes.documents:get_dataset_features`. `recipe_options`:

- `tokenizer` (required): a local `tokenizer.json`, a folder holding one, an `s3://` URI of either
  (read through `steps.io.storage`, so the local runner's storage and moto work too), or a model
  name on the Hugging Face Hub (`Tokenizer.from_pretrained`, which needs the network).
- `text_file` (default `raw_text.json`): the model input file holding the text. Its JSON is a
  string, a list of strings (joined by newlines) or an object whose `text_field` (default `text`)
  is one of those.
- `max_length` (default 512), `truncation` (default true): cut longer token sequences.
- `padding`: `max_length` (default; every row `max_length` long) or `none` (rows keep their length;
  pad in the training collator). Padding to the longest of a batch is not offered: batches depend
  on `num_proc`, and the output must not.
- `pad_token`: the padding token; default the tokenizer's own, else `[PAD]` or `<pad>` if in the vocabulary.

An empty text encodes to None (the artifact is dropped and counted). The tokenizer is loaded
once per worker process (`per_worker`), never per document.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import datasets
from tokenizers import Tokenizer

from steps.recipes import check_options, per_worker

OPTIONS = {"tokenizer", "text_file", "text_field", "max_length", "truncation", "padding", "pad_token"}
PADDINGS = ("max_length", "none")
PAD_CANDIDATES = ("[PAD]", "<pad>")


def _settings(options: Mapping[str, Any]) -> dict[str, Any]:
    check_options(options, OPTIONS, "documents recipe")
    if not options.get("tokenizer"):
        raise ValueError("documents recipe: recipe_options.tokenizer (a path or a model name) is required")
    out = {
        "tokenizer": str(options["tokenizer"]),
        "text_file": options.get("text_file", "raw_text.json"),
        "text_field": options.get("text_field", "text"),
        "max_length": int(options.get("max_length", 512)),
        "truncation": bool(options.get("truncation", True)),
        "padding": options.get("padding", "max_length"),
        "pad_token": options.get("pad_token"),
    }
    if out["padding"] not in PADDINGS:
        raise ValueError(f"documents recipe: padding must be one of {PADDINGS}, got {out['padding']!r}")
    if out["max_length"] < 1:
        raise ValueError("documents recipe: max_length must be at least 1")
    return out


def _from_storage(uri: str) -> Tokenizer:
    """Download, load into memory, and remove the temporary copy (one per worker otherwise)."""
    from steps.io import storage

    if not uri.endswith(".json"):
        uri = storage.join_uri(uri, "tokenizer.json")
    with tempfile.TemporaryDirectory(prefix="wavepipe-tokenizer-") as tmp:
        path = Path(tmp) / "tokenizer.json"
        storage.from_env().download(uri, path)
        return Tokenizer.from_file(str(path))


def load_tokenizer(source: str) -> Tokenizer:
    """A tokenizer from a `tokenizer.json`, a folder holding one (local or `s3://`), or a Hub model name."""
    if source.startswith("s3://"):
        return _from_storage(source)
    path = Path(source)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    if path.suffix == ".json" or source.startswith((".", "/")):
        raise ValueError(f"documents recipe: tokenizer file {path} not found")
    return Tokenizer.from_pretrained(source)


def _pad(tokenizer: Tokenizer, pad_token: str | None) -> tuple[str, int]:
    if pad_token is None and tokenizer.padding:
        return tokenizer.padding["pad_token"], tokenizer.padding["pad_id"]
    for token in (pad_token,) if pad_token else PAD_CANDIDATES:
        pad_id = tokenizer.token_to_id(token)
        if pad_id is not None:
            return token, pad_id
    raise ValueError(f"documents recipe: no padding token {pad_token or PAD_CANDIDATES} in the tokenizer's vocabulary; set recipe_options.pad_token")


@per_worker
def configured_tokenizer(options: Mapping[str, Any]) -> Tokenizer:
    """The tokenizer with truncation and padding set as the options say (built once per worker)."""
    opts = _settings(options)
    tokenizer = load_tokenizer(opts["tokenizer"])
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if opts["truncation"]:
        tokenizer.enable_truncation(max_length=opts["max_length"])
    if opts["padding"] == "max_length":
        token, pad_id = _pad(tokenizer, opts["pad_token"])
        tokenizer.enable_padding(pad_id=pad_id, pad_token=token, length=opts["max_length"])
    return tokenizer


def get_dataset_features(options: Mapping[str, Any]) -> datasets.Features:
    opts = _settings(options)
    configured_tokenizer(options)  # a bad path or vocabulary fails here, before any worker starts
    fixed = opts["max_length"] if opts["padding"] == "max_length" and opts["truncation"] else None
    return datasets.Features(
        {
            "input_ids": datasets.List(datasets.Value("int32"), length=fixed or -1),
            "attention_mask": datasets.List(datasets.Value("int8"), length=fixed or -1),
            "label": datasets.Value("int64"),
        }
    )


def read_text(path: str, text_field: str) -> str:
    """The text of a raw_text.json (see the module docstring for the accepted shapes)."""
    with open(path, encoding="utf-8") as fh:
        value = json.load(fh)
    if isinstance(value, dict):
        value = value.get(text_field, "")
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def encode_data(instance: Mapping[str, Any], options: Mapping[str, Any]) -> dict | None:
    """Token ids, attention mask and label id of one document; None for an empty text."""
    text_file = options.get("text_file", "raw_text.json")
    text = read_text(instance[text_file], options.get("text_field", "text"))
    if not text.strip():
        return None
    encoding = configured_tokenizer(options).encode(text)
    return {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask, "label": instance["label_id"]}
