"""The all-MiniLM-L6-v2 encoder as an int8 ONNX Runtime model, built from the bundled weights on
first use and cached on disk (`int8_encoder_path`), and run with mean pooling (`Int8Encoder`).

How the model is made from the float32 weights (nothing is downloaded):

1. export the BERT encoder to ONNX (torch's TorchScript exporter, eager attention, traced with a
   padded batch so that the attention mask stays in the graph);
2. smooth each Linear layer's input (SmoothQuant, alpha 0.7): per input channel, divide the
   activation by s and multiply the weight's row by s, with s = max|x|^0.7 / max|w|^0.3 measured on
   the texts of `text_calibration.txt`. The float32 result is unchanged (cosine 1.0); BERT's few
   outlier channels stop setting the int8 step of every other channel;
3. quantise the Linear layers' weights to int8 per output channel, activations dynamically per
   batch (`onnxruntime.quantization.quantize_dynamic`), which VNNI multiplies natively;
4. check: every calibration text's int8 vector against the float32 export's, cosine >= 0.99.

Without step 2 the worst of the benchmark's 2,682 texts (jobs/bench/bench_text.py) had a cosine of
0.915 (per-tensor weights) or 0.983 (per-channel); with it, 0.9939 (alpha 0.65: 0.9907, 0.75:
0.9931). The calibration texts include one- and two-word ones: the worst texts are the shortest
("unknown": 0.9927 before they were added).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path

import numpy as np

# Changing any of these changes the cache key, so a new recipe never reads an old model.
RECIPE_VERSION = 2   # 2: calibration batches of their own (1 used the inference batches, so changing those changed the model)
SMOOTHING_ALPHA = 0.7
OPSET = 17
MIN_COSINE = 0.99
# Texts are sorted by token count and batched up to this many padded tokens (short titles go in
# large batches, long descriptions in small ones), at most MAX_BATCH_TEXTS a batch. Small batches
# stay in the cache: on an Intel Xeon with AMX, 1,024 tokens embedded the benchmark's texts 10%
# faster than 4,096 on 2 threads and 20% faster on one (as a Spark task runs it); 512 was slower.
BATCH_TOKENS = 1024
MAX_BATCH_TEXTS = 128
CALIBRATION_BATCH_TOKENS, CALIBRATION_BATCH_TEXTS = 4096, 256
# Read as package data: the project archive shipped to a cluster's executors holds it too.
CALIBRATION_FILE = "text_calibration.txt"
MODEL_FILE = "encoder-int8.onnx"


def default_cache_dir() -> Path:
    """`VREC_TEXT_MODEL_CACHE`, else `$XDG_CACHE_HOME/video-recs/text-model` (~/.cache by default)."""
    if os.environ.get("VREC_TEXT_MODEL_CACHE"):
        return Path(os.environ["VREC_TEXT_MODEL_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "video-recs" / "text-model"


def calibration_texts() -> list[str]:
    """The texts the smoothing is measured on: blocks of `text_calibration.txt` separated by a blank line."""
    blocks = _calibration_bytes().decode("utf-8").split("\n\n")
    return [b.strip() for b in blocks if b.strip() and not b.lstrip().startswith("#")]


def _calibration_bytes() -> bytes:
    return files("features").joinpath(CALIBRATION_FILE).read_bytes()


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """A file's digest, computed once per process for each (path, size, modification time): every
    embedder built in a process asks for the 90 MB weights' digest."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(model_dir: Path) -> str:
    """What the int8 model is made from: the weights, config and tokenizer, the calibration texts,
    the recipe and the versions of the tools that build and run it."""
    import onnx
    import onnxruntime
    import torch
    import transformers

    parts = [f"recipe {RECIPE_VERSION} alpha {SMOOTHING_ALPHA} opset {OPSET}",
             f"onnxruntime {onnxruntime.__version__} onnx {onnx.__version__} torch {torch.__version__} "
             f"transformers {transformers.__version__}",
             hashlib.sha256(_calibration_bytes()).hexdigest()]
    parts += [f"{name} {_sha256(model_dir / name)}" for name in ("model.safetensors", "config.json", "tokenizer.json")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def int8_encoder_path(model_dir: Path, cache_dir: Path | None = None) -> Path:
    """The cached int8 encoder for `model_dir`, built first when missing (about 15 s on 2 cores).
    Several processes may build it at once: each builds in its own temporary folder and renames it
    into place; the first rename wins and the others drop theirs."""
    cache_dir = Path(cache_dir or default_cache_dir())
    final = cache_dir / f"all-MiniLM-L6-v2-{cache_key(model_dir)}"
    if (final / MODEL_FILE).is_file():
        return final / MODEL_FILE
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    work.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of a shared cache
    try:
        build_int8_encoder(model_dir, work)
        try:
            os.rename(work, final)
        except OSError:  # another process renamed its build first
            if not (final / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final / MODEL_FILE


def build_int8_encoder(model_dir: Path, out_dir: Path) -> dict:
    """Export, smooth, quantise and check (module docstring) into `out_dir/MODEL_FILE`; returns
    what `out_dir/build.json` records."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    float32_path, smoothed_path = out_dir / "encoder-float32.onnx", out_dir / "encoder-smoothed.onnx"
    export_encoder(model_dir, float32_path)
    tokenizer = load_tokenizer(model_dir)
    texts = calibration_texts()
    # Batches of their own, so the model does not depend on how inference batches. The padding
    # positions count in the activations' maxima: measured on each text alone (no padding) the
    # worst benchmark cosine fell from 0.9954 to 0.9897.
    feeds = [feed for _, feed in _batches(tokenizer, texts, CALIBRATION_BATCH_TOKENS, CALIBRATION_BATCH_TEXTS)]
    smooth_linear_inputs(float32_path, smoothed_path, feeds)
    quantize_dynamic(smoothed_path, out_dir / MODEL_FILE, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])
    smoothed_path.unlink()

    reference = Int8Encoder(float32_path, model_dir, threads=None).embed(texts)
    vectors = Int8Encoder(out_dir / MODEL_FILE, model_dir, threads=None).embed(texts)
    worst = float(np.sum(reference * vectors, axis=1).min())
    float32_path.unlink()
    if worst < MIN_COSINE:
        raise RuntimeError(f"int8 text encoder built from {model_dir}: a calibration text's cosine with float32 is "
                           f"{worst:.4f}, under {MIN_COSINE}; use text precision float32 or bfloat16")
    record = {"model_dir": str(model_dir), "calibration_cosine_min": round(worst, 5),
              "build_seconds": round(time.perf_counter() - started, 1)}
    (out_dir / "build.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def export_encoder(model_dir: Path, path: Path) -> None:
    """The BERT encoder (token ids and mask in, last hidden state out) as float32 ONNX."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # A padded row, so that tracing keeps the mask: transformers skips it when no token is padding.
    input_ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    dynamic = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on branches that the padded example settles
        torch.onnx.export(Encoder(), (input_ids, (input_ids != 0).long()), str(path), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"], opset_version=OPSET,
                          dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "hidden": dynamic})


def smooth_linear_inputs(src: Path, dst: Path, feeds: list[dict], alpha: float = SMOOTHING_ALPHA) -> None:
    """SmoothQuant on an ONNX graph: for each activation that feeds MatMuls with constant weights,
    insert `x / s` before them and scale the weights' input rows by s (see the module docstring)."""
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    weights = {w.name: w for w in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            consumers.setdefault(node.input[0], []).append(node)

    probe = onnx.load(str(src))
    probe.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in consumers)
    session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    activation_max = {name: np.zeros(1, np.float32) for name in consumers}
    for feed in feeds:
        for name, value in zip(consumers, session.run(list(consumers), feed)):
            activation_max[name] = np.maximum(activation_max[name], np.abs(value).reshape(-1, value.shape[-1]).max(0))

    smoothed = {}
    for name, nodes in consumers.items():
        matrices = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]  # (in, out)
        weight_max = np.max([np.abs(m).max(1) for m in matrices], axis=0)
        s = (np.maximum(activation_max[name], 1e-5) ** alpha / np.maximum(weight_max, 1e-5) ** (1 - alpha))
        for node, matrix in zip(nodes, matrices):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array((matrix * s[:, None]).astype(np.float32),
                                                                    node.input[1]))
            node.input[0] = f"{name}/smoothed"
        model.graph.initializer.append(numpy_helper.from_array((1 / s).astype(np.float32), f"{name}/inverse_scale"))
        smoothed[f"{name}/smoothed"] = helper.make_node("Mul", [name, f"{name}/inverse_scale"], [f"{name}/smoothed"])

    nodes = []
    for node in model.graph.node:  # each Mul just before its first consumer keeps the graph sorted
        if node.input and node.input[0] in smoothed:
            nodes.append(smoothed.pop(node.input[0]))
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(dst))


def load_tokenizer(model_dir: Path):
    """The model's fast tokenizer, truncating at its max_seq_length, as sentence-transformers does."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    max_tokens = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
    tokenizer.enable_truncation(max_tokens)
    tokenizer.no_padding()
    return tokenizer


def _batches(tokenizer, texts: list[str], batch_tokens: int = BATCH_TOKENS, max_texts: int = MAX_BATCH_TEXTS):
    """(rows, feed) per batch: texts sorted by token count, batched up to `batch_tokens` padded
    tokens and `max_texts` texts.

    Activations are quantised with one scale per batch, so a text's vector depends a little on
    the texts batched with it: ties in length are broken by the tokens themselves, so that the
    same texts give the same vectors in any order (a Spark partition's rows come in no fixed order).
    """
    ids = [e.ids for e in tokenizer.encode_batch(texts)]
    order = sorted(range(len(texts)), key=lambda i: (len(ids[i]), ids[i]))
    start = 0
    while start < len(order):
        stop = start + 1
        while (stop < len(order) and stop - start < max_texts
               and len(ids[order[stop]]) * (stop - start + 1) <= batch_tokens):
            stop += 1
        rows = order[start:stop]
        longest = len(ids[rows[-1]])
        input_ids = np.zeros((len(rows), longest), np.int64)
        for r, i in enumerate(rows):
            input_ids[r, :len(ids[i])] = ids[i]
        yield rows, {"input_ids": input_ids, "attention_mask": (input_ids != 0).astype(np.int64)}
        start = stop


class Int8Encoder:
    """An ONNX encoder of all-MiniLM-L6-v2 run by ONNX Runtime on the CPU, with the model's mean
    pooling; `embed` gives unit vectors in input order. `threads`: how many batches run at once
    (None: one per core).

    Each batch runs on one thread, and `threads` batches run side by side on one session (ONNX
    Runtime's `run` is thread-safe and releases the GIL). Once the int8 products are fast, layer
    norms, GELU and softmax are most of the time, and splitting each of them across threads costs
    a fork and join apiece: on 2 cores of an Intel Xeon with AMX two single-threaded batches at once
    embedded the benchmark's texts 14% faster than one batch on 2 intra-op threads. A batch's
    vectors do not depend on the thread that ran it."""

    def __init__(self, onnx_path: Path, model_dir: Path, threads: int | None) -> None:
        import onnxruntime

        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{model_dir}: the int8 encoder implements mean pooling only, the model has {pooling}")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = load_tokenizer(model_dir)
        self.threads = threads or os.cpu_count() or 1

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.session.get_outputs()[0].shape[-1]), np.float32)

        def embed_batch(batch: tuple[list[int], dict]) -> None:
            rows, feed = batch
            hidden = self.session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            mean = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out[rows] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)

        batches = _batches(self.tokenizer, texts)
        if self.threads == 1:
            for batch in batches:
                embed_batch(batch)
        else:
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(embed_batch, batches))  # list: raise the first batch's error here
        return out
