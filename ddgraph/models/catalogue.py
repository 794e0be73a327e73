"""The third-party zoo: every model a practitioner is likely to point ddgraph at, built plainly by its
own library (random init, tiny config, default options, batch-1 inputs), and the real-scale configs
predicted on the meta device. ``ddgraph architectures`` runs it and writes docs/ARCHITECTURES.md."""
from __future__ import annotations

import importlib
import inspect

import attrs


@attrs.frozen
class Entry:
    """One zoo model: its display name, library and factory (``module:function``)."""

    name: str
    library: str
    factory: str

    def build(self):
        """``(model, example_inputs)``; a missing library raises :class:`~ddgraph.errors.TargetError`."""
        module, fn = self.factory.split(":")
        return getattr(importlib.import_module(module), fn)()

    @property
    def adds(self) -> str:
        """What the model brings, from its factory's docstring."""
        module, fn = self.factory.split(":")
        doc = inspect.getdoc(getattr(importlib.import_module(module), fn)) or ""
        return " ".join(doc.split())


def _entries(library: str, module: str, names: dict[str, str]) -> tuple[Entry, ...]:
    return tuple(Entry(name, library, f"ddgraph.models.{module}:{fn}") for fn, name in names.items())


ZOO = (
    _entries("transformers", "hf", {
        "gpt2": "GPT-2", "gpt_neox": "GPT-NeoX", "opt": "OPT", "llama": "LLaMA", "mistral": "Mistral",
        "qwen2": "Qwen2", "phi": "Phi", "gemma": "Gemma", "gemma2": "Gemma2", "falcon": "Falcon", "bert": "BERT",
        "roberta": "RoBERTa", "distilbert": "DistilBERT", "t5_encoder": "T5 encoder", "t5": "T5",
        "vit": "ViT", "clip_vision": "CLIP vision"})
    + _entries("torch.nn", "torch_nn", {"transformer_encoder": "nn.TransformerEncoder",
                                        "multihead_attention": "nn.MultiheadAttention"})
    + _entries("torchvision", "vision", {"tv_resnet18": "ResNet-18", "tv_mobilenet_v3_small": "MobileNetV3-small",
                                         "tv_vit_tiny": "VisionTransformer", "tv_convnext": "ConvNeXt"})
    + _entries("timm", "vision", {"timm_resnet18": "ResNet-18 (timm)", "timm_convnext_atto": "ConvNeXt-atto (timm)",
                                  "timm_vit_tiny": "ViT (timm)", "timm_efficientnet_b0": "EfficientNet-B0 (timm)"})
)

#: Real-scale configurations, predicted on the meta device (no weight memory).
REAL_SCALE = (
    Entry("GPT-2 XL", "transformers", "ddgraph.models.architectures:gpt2_xl"),
    Entry("LLaMA-2-7B", "transformers", "ddgraph.models.architectures:llama2_7b"),
    Entry("LLaMA-2-70B", "transformers", "ddgraph.models.architectures:llama2_70b"),
    Entry("ResNet-50 (224x224)", "torchvision", "ddgraph.models.vision:tv_resnet50_meta"),
)


def find(names) -> tuple[Entry, ...]:
    """The entries named (by display name or factory function), in zoo order."""
    wanted = set(names)
    return tuple(e for e in ZOO if e.name in wanted or e.factory.split(":")[1] in wanted)
