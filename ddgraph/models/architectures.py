"""Real architectures from their own libraries, random init: factories returning ``(model, example_inputs)``.

Each factory builds the model with the library's own classes (transformers, torchvision, timm), so
parameter names are the library's (``transformer.h.0.attn.c_attn.weight``). No weights are
downloaded: configs are written here, weights are the library's random init. ``*_small`` configs
(1-2 layers, width 16-32) are for probing; the real configs are built on the meta device (no
memory, no compute) and are for prediction only::

    ddgraph predict ddgraph.models.architectures:gpt2_small
    ddgraph predict ddgraph.models.architectures:llama2_7b

transformers models take keyword arguments and return output objects; the probe feeds positional
tensors and reads a tensor. :func:`positional` re-classes the model in place so that ``forward(x)``
calls the library's forward with the right keyword and returns the logits (or last hidden state):
the parameters, their names and the module tree stay the model's own.
"""
from __future__ import annotations

import contextlib
import importlib

import torch
from torch import nn

from ddgraph.errors import TargetError


def _require(module: str, extra: str = "arch"):
    """Import a model library, or raise a TargetError saying what to install."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install (torchvision's nms op on a torch mismatch)
        pip = {"transformers": "transformers", "torchvision": "torchvision", "timm": "timm"}[module.split(".")[0]]
        raise TargetError(
            f"{module} is needed for this architecture but cannot be imported "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}). "
            f"Install it (pip install '{pip}', or pip install -e '.[{extra}]') with a build that matches "
            f"torch {torch.__version__}.") from None


def positional(model: nn.Module, keyword: str, read: str = "logits", **fixed) -> nn.Module:
    """Make ``model(x)`` call ``model.forward(**{keyword: x}, **fixed)`` and return ``output[read]``.

    The model object is re-classed in place (its parameters and names do not change); the new class
    keeps the library class's name, so reports say ``GPT2LMHeadModel``.
    """
    base = type(model)

    def forward(self, x):
        out = base.forward(self, **{keyword: x}, **fixed)
        return out[read] if isinstance(out, dict) or hasattr(out, "keys") else out[0]

    model.__class__ = type(base.__name__, (base,), {"forward": forward, "__module__": base.__module__,
                                                    "__qualname__": base.__qualname__})
    return model


@contextlib.contextmanager
def _device(meta: bool):
    if meta:
        with torch.device("meta"):
            yield
    else:
        yield


def _ids(vocab: int, batch: int = 2, tokens: int = 6, meta: bool = False) -> tuple:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, tokens), generator=g)
    return (ids.to("meta") if meta else ids,)


def _no_dropout(cfg, *names):
    for n in names:
        if hasattr(cfg, n):
            setattr(cfg, n, 0.0)
    return cfg


# ------------------------------------------------------------------------------------------------
# GPT-2: Conv1D (addmm, weight stored transposed), fused qkv c_attn, pre-LN, GELU-tanh written out,
# tied wte / lm_head, learned position embeddings.


def _gpt2(meta: bool, **kw):
    tf = _require("transformers")
    cfg = tf.GPT2Config(**kw)
    _no_dropout(cfg, "resid_pdrop", "embd_pdrop", "attn_pdrop")
    cfg._attn_implementation = "sdpa"
    with _device(meta):
        model = tf.GPT2LMHeadModel(cfg).eval()
    return positional(model, "input_ids", use_cache=False), _ids(cfg.vocab_size, meta=meta)


def gpt2_small(layers: int = 1, width: int = 16, heads: int = 2, vocab: int = 32):
    """GPT-2 (transformers ``GPT2LMHeadModel``), ``layers`` blocks of width ``width``: for probing."""
    torch.manual_seed(0)
    return _gpt2(False, n_layer=layers, n_embd=width, n_head=heads, vocab_size=vocab, n_positions=16,
                 bos_token_id=0, eos_token_id=0)


def gpt2():
    """GPT-2 small (124M) configuration, on the meta device."""
    return _gpt2(True)


def gpt2_xl():
    """GPT-2 XL (1.5B): 48 layers, width 1600, 25 heads, on the meta device."""
    return _gpt2(True, n_layer=48, n_embd=1600, n_head=25)


# ------------------------------------------------------------------------------------------------
# LLaMA: hand-written RMSNorm, rotary embeddings (slice-neg-cat-mul with cos/sin), grouped-query
# attention (repeat_kv), SwiGLU, untied unembedding.


def _llama(meta: bool, **kw):
    tf = _require("transformers")
    cfg = tf.LlamaConfig(**kw)
    _no_dropout(cfg, "attention_dropout")
    cfg._attn_implementation = "sdpa"
    with _device(meta):
        model = tf.LlamaForCausalLM(cfg).eval()
    return positional(model, "input_ids", use_cache=False), _ids(cfg.vocab_size, meta=meta)


def llama_small(layers: int = 1, width: int = 32, heads: int = 4, kv_heads: int = 2, hidden: int = 48,
                vocab: int = 64):
    """LLaMA (transformers ``LlamaForCausalLM``) with grouped-query attention: for probing."""
    torch.manual_seed(0)
    return _llama(False, num_hidden_layers=layers, hidden_size=width, num_attention_heads=heads,
                  num_key_value_heads=kv_heads, intermediate_size=hidden, vocab_size=vocab,
                  max_position_embeddings=16, bos_token_id=0, eos_token_id=0, pad_token_id=None)


def llama2_7b():
    """LLaMA-2-7B configuration (32 layers, width 4096, 32 heads, MLP 11008), on the meta device."""
    return _llama(True, num_hidden_layers=32, hidden_size=4096, num_attention_heads=32,
                  num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                  max_position_embeddings=4096, rms_norm_eps=1e-5)


def llama2_70b():
    """LLaMA-2-70B configuration (80 layers, width 8192, 64 heads, 8 KV heads, MLP 28672), meta device."""
    return _llama(True, num_hidden_layers=80, hidden_size=8192, num_attention_heads=64,
                  num_key_value_heads=8, intermediate_size=28672, vocab_size=32000,
                  max_position_embeddings=4096, rms_norm_eps=1e-5)


# ------------------------------------------------------------------------------------------------
# BERT: post-norm residual blocks (LayerNorm(x + f(x))), learned position and token-type embeddings,
# an MLM head (dense - GELU - LN - tied decoder).


def _bert(meta: bool, **kw):
    tf = _require("transformers")
    cfg = tf.BertConfig(**kw)
    _no_dropout(cfg, "hidden_dropout_prob", "attention_probs_dropout_prob")
    cfg._attn_implementation = "sdpa"
    with _device(meta):
        model = tf.BertForMaskedLM(cfg).eval()
    return positional(model, "input_ids"), _ids(cfg.vocab_size, meta=meta)


def bert_small(layers: int = 1, width: int = 16, heads: int = 2, hidden: int = 32, vocab: int = 32):
    """BERT (transformers ``BertForMaskedLM``), post-norm: for probing."""
    torch.manual_seed(0)
    return _bert(False, num_hidden_layers=layers, hidden_size=width, num_attention_heads=heads,
                 intermediate_size=hidden, vocab_size=vocab, max_position_embeddings=16, pad_token_id=0)


def bert_base():
    """BERT-base configuration (12 layers, width 768), on the meta device."""
    return _bert(True)


# ------------------------------------------------------------------------------------------------
# ViT: a patch-embedding convolution (kernel = stride = patch), a class token, position embeddings,
# pre-LN blocks, exact GELU.


def _vit(meta: bool, image: int, channels: int = 3, **kw):
    tf = _require("transformers")
    cfg = tf.ViTConfig(image_size=image, num_channels=channels, **kw)
    _no_dropout(cfg, "hidden_dropout_prob", "attention_probs_dropout_prob")
    cfg._attn_implementation = "sdpa"
    with _device(meta):
        model = tf.ViTForImageClassification(cfg).eval()
    x = torch.randn(2, channels, image, image, generator=torch.Generator().manual_seed(0))
    return positional(model, "pixel_values"), (x.to("meta") if meta else x,)


def vit_small(layers: int = 1, width: int = 16, heads: int = 2, hidden: int = 32, image: int = 8,
              patch: int = 4, labels: int = 4):
    """ViT (transformers ``ViTForImageClassification``) on 8x8 images, 4x4 patches: for probing."""
    torch.manual_seed(0)
    return _vit(False, image, 3, num_hidden_layers=layers, hidden_size=width, num_attention_heads=heads,
                intermediate_size=hidden, patch_size=patch, num_labels=labels)


def vit_base():
    """ViT-B/16 configuration on 224x224 images, on the meta device."""
    return _vit(True, 224, 3, num_labels=1000)


# ------------------------------------------------------------------------------------------------
# torchvision ResNet-18 and a timm ConvNeXt (both need a torchvision that imports beside torch).


def _resnet(meta: bool, image: int, **kw):
    tvm = _require("torchvision.models")
    with _device(meta):
        model = tvm.resnet18(**kw)
    x = torch.randn(2, 3, image, image, generator=torch.Generator().manual_seed(0))
    return model.eval(), (x.to("meta") if meta else x,)


def resnet18_small():
    """torchvision ResNet-18 (the real architecture; 10 classes) on 32x32 images: for probing."""
    torch.manual_seed(0)
    return _resnet(False, 32, num_classes=10)


def resnet18():
    """torchvision ResNet-18 on 224x224 images, on the meta device."""
    return _resnet(True, 224)


def _convnext(meta: bool, image: int, **kw):
    timm = _require("timm", extra="arch")
    with _device(meta):
        model = timm.create_model("convnext_atto", pretrained=False, **kw)
    x = torch.randn(2, 3, image, image, generator=torch.Generator().manual_seed(0))
    return model.eval(), (x.to("meta") if meta else x,)


def timm_convnext_small():
    """timm ConvNeXt-atto with 10 classes on 32x32 images: for probing."""
    torch.manual_seed(0)
    return _convnext(False, 32, num_classes=10)


def timm_convnext():
    """timm ConvNeXt-atto on 224x224 images, on the meta device."""
    return _convnext(True, 224)
