"""transformers models as their users build them: the library's own classes, default options (the
KV cache on, output objects, the default attention), random init, tiny configs, batch-1 inputs.

Each factory returns ``(model, example_inputs)`` with the model in eval mode, for example::

    ddgraph predict ddgraph.models.hf:mistral
    ddgraph diff ddgraph.models.hf:t5

Configs set only sizes (width 32, 2 layers, 4 heads, vocabulary 64), and what a tiny size needs to
stay consistent (a sliding window shorter than the input, so it is exercised); every other option is
the library's default.
"""
from __future__ import annotations

import torch

from ddgraph.models.architectures import _require

WIDTH, LAYERS, HEADS, HIDDEN, VOCAB, TOKENS = 32, 2, 4, 64, 64, 8
SIZES = dict(hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=HIDDEN,
             vocab_size=VOCAB, max_position_embeddings=32)


def _ids(tokens: int = TOKENS) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, tokens), generator=torch.Generator().manual_seed(0))


def _image(size: int = 16) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def _build(model_class: str, config_class: str, inputs, **config):
    tf = _require("transformers")
    torch.manual_seed(0)
    model = getattr(tf, model_class)(getattr(tf, config_class)(**config)).eval()
    return model, inputs


def gpt2():
    """GPT-2 (``GPT2LMHeadModel``): Conv1D with fused qkv, learned positions, tied unembedding."""
    return _build("GPT2LMHeadModel", "GPT2Config", (_ids(),), n_layer=LAYERS, n_embd=WIDTH, n_head=HEADS,
                  vocab_size=VOCAB, n_positions=32, bos_token_id=0, eos_token_id=0)


def gpt_neox():
    """GPT-NeoX (``GPTNeoXForCausalLM``): parallel residual, partial rotary, fused qkv per head."""
    return _build("GPTNeoXForCausalLM", "GPTNeoXConfig", (_ids(),), **SIZES)


def opt():
    """OPT (``OPTForCausalLM``): learned positions with an offset, ReLU MLP, scaled queries."""
    return _build("OPTForCausalLM", "OPTConfig", (_ids(),), hidden_size=WIDTH, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, ffn_dim=HIDDEN, vocab_size=VOCAB, max_position_embeddings=32,
                  word_embed_proj_dim=WIDTH)


def llama():
    """LLaMA (``LlamaForCausalLM``): RMSNorm, rotary, grouped-query attention, SwiGLU."""
    return _build("LlamaForCausalLM", "LlamaConfig", (_ids(),), num_key_value_heads=2, **SIZES)


def mistral():
    """Mistral (``MistralForCausalLM``): LLaMA's block with a sliding attention window (4 < 8 tokens)."""
    return _build("MistralForCausalLM", "MistralConfig", (_ids(),), num_key_value_heads=2, sliding_window=4,
                  **SIZES)


def qwen2():
    """Qwen2 (``Qwen2ForCausalLM``): LLaMA's block with q/k/v biases."""
    return _build("Qwen2ForCausalLM", "Qwen2Config", (_ids(),), num_key_value_heads=2, **SIZES)


def phi():
    """Phi (``PhiForCausalLM``): parallel attention and MLP off one LayerNorm, partial rotary, GELU."""
    return _build("PhiForCausalLM", "PhiConfig", (_ids(),), **SIZES)


def gemma():
    """Gemma (``GemmaForCausalLM``): RMSNorm gain ``1 + w``, scaled embeddings, GeGLU, tied unembedding."""
    return _build("GemmaForCausalLM", "GemmaConfig", (_ids(),), num_key_value_heads=2, head_dim=8, **SIZES)


def gemma2():
    """Gemma2 (``Gemma2ForCausalLM``): Gemma with pre- and post-norms around each sublayer, logit
    soft-capping and alternating sliding-window layers."""
    return _build("Gemma2ForCausalLM", "Gemma2Config", (_ids(),), num_key_value_heads=2, head_dim=8,
                  sliding_window=4, **SIZES)


def falcon():
    """Falcon (``FalconForCausalLM``): multi-query attention split from one fused projection by
    advanced indexing, parallel attention and MLP."""
    return _build("FalconForCausalLM", "FalconConfig", (_ids(),), hidden_size=WIDTH, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, vocab_size=VOCAB)


def bert():
    """BERT (``BertForMaskedLM``): post-norm blocks, token-type embeddings, MLM head."""
    return _build("BertForMaskedLM", "BertConfig", (_ids(),), **SIZES)


def roberta():
    """RoBERTa (``RobertaForMaskedLM``): BERT with position ids computed from the padding mask."""
    return _build("RobertaForMaskedLM", "RobertaConfig", (_ids(),), pad_token_id=1,
                  **{**SIZES, "max_position_embeddings": 40})


def distilbert():
    """DistilBERT (``DistilBertForMaskedLM``): BERT without token types, 6-layer-style naming."""
    return _build("DistilBertForMaskedLM", "DistilBertConfig", (_ids(),), dim=WIDTH, n_layers=LAYERS,
                  n_heads=HEADS, hidden_dim=HIDDEN, vocab_size=VOCAB, max_position_embeddings=32)


T5_SIZES = dict(d_model=WIDTH, d_kv=8, d_ff=HIDDEN, num_layers=LAYERS, num_heads=HEADS, vocab_size=VOCAB)


def t5_encoder():
    """T5's encoder (``T5EncoderModel``): RMSNorm without mean, relative position bias, ReLU MLP."""
    return _build("T5EncoderModel", "T5Config", (_ids(),), **T5_SIZES)


def t5():
    """T5 encoder-decoder (``T5ForConditionalGeneration``): causal self-attention, cross-attention,
    relative position bias, tied unembedding scaled by ``d_model ** -0.5``."""
    return _build("T5ForConditionalGeneration", "T5Config",
                  {"input_ids": _ids(), "decoder_input_ids": _ids(4)}, decoder_start_token_id=0, **T5_SIZES)


def vit():
    """ViT (``ViTForImageClassification``): patch convolution, class token, pre-LN blocks."""
    return _build("ViTForImageClassification", "ViTConfig", (_image(),), image_size=16, patch_size=8,
                  hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  intermediate_size=HIDDEN, num_labels=4)


def clip_vision():
    """CLIP's vision tower (``CLIPVisionModel``): bias-free patch convolution, class embedding,
    pre-LayerNorm before the encoder, quick-GELU, pooled class token."""
    return _build("CLIPVisionModel", "CLIPVisionConfig", (_image(),), image_size=16, patch_size=8,
                  hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  intermediate_size=HIDDEN)


FACTORIES = {f.__name__: f for f in (gpt2, gpt_neox, opt, llama, mistral, qwen2, phi, gemma, gemma2, falcon,
                                     bert, roberta, distilbert, t5_encoder, t5, vit, clip_vision)}
