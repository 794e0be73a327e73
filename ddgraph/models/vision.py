"""Vision models as their users build them: torchvision and timm classes with default options,
random weights, small images and a batch-1 example input (the ``vision`` extra).

Each factory returns ``(model, example_inputs)`` with the model in eval mode.
"""
from __future__ import annotations

import torch

from ddgraph.models.architectures import _require


def _image(size: int = 32) -> tuple:
    return (torch.randn(1, 3, size, size),)


def tv_resnet18():
    """torchvision ResNet-18 (max pooling, global average pooling, identity skips, batch norm)."""
    return _require("torchvision.models", extra="vision").resnet18(num_classes=10).eval(), _image()


def tv_mobilenet_v3_small():
    """torchvision MobileNetV3-small (depthwise convolutions, squeeze-excitation, hard-swish)."""
    return _require("torchvision.models", extra="vision").mobilenet_v3_small(num_classes=10).eval(), _image()


def tv_convnext_tiny():
    """torchvision ConvNeXt-tiny (depthwise 7x7 convolutions, LayerNorm, layer scale, stochastic depth)."""
    return _require("torchvision.models", extra="vision").convnext_tiny(num_classes=10).eval(), _image()


def tv_convnext():
    """torchvision's ConvNeXt class with a tiny config (three stages of two blocks, widths 24-96; depthwise 7x7
    convolutions, LayerNorm, layer scale, stochastic depth as in ConvNeXt-tiny)."""
    cn = _require("torchvision.models.convnext", extra="vision")
    stages = [cn.CNBlockConfig(24, 48, 2), cn.CNBlockConfig(48, 96, 2), cn.CNBlockConfig(96, None, 2)]
    return cn.ConvNeXt(stages, stochastic_depth_prob=0.1, num_classes=10).eval(), _image()


def tv_vit_tiny():
    """torchvision's VisionTransformer with a tiny config (class token, nn.MultiheadAttention)."""
    vt = _require("torchvision.models.vision_transformer", extra="vision")
    model = vt.VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
                                 mlp_dim=32, num_classes=4)
    return model.eval(), _image(16)


def timm_resnet18():
    """timm ResNet-18."""
    return _require("timm", extra="vision").create_model("resnet18", num_classes=10).eval(), _image()


def timm_convnext_atto():
    """timm ConvNeXt-atto."""
    return _require("timm", extra="vision").create_model("convnext_atto", num_classes=10).eval(), _image()


def timm_vit_tiny():
    """timm ViT with a tiny config (its blocks' forward takes a defaulted attention mask)."""
    model = _require("timm", extra="vision").create_model(
        "vit_tiny_patch16_224", img_size=16, patch_size=8, depth=1, embed_dim=16, num_heads=2, num_classes=4)
    return model.eval(), _image(16)


def timm_efficientnet_b0():
    """timm EfficientNet-B0 (depthwise convolutions, squeeze-excitation, SiLU)."""
    return _require("timm", extra="vision").create_model("efficientnet_b0", num_classes=10).eval(), _image()


def tv_resnet50_meta():
    """torchvision ResNet-50 at 224x224 on the meta device (no weight memory): prediction at real scale."""
    models = _require("torchvision.models", extra="vision")
    with torch.device("meta"):
        model = models.resnet50().eval()
    return model, (torch.randn(1, 3, 224, 224, device="meta"),)


FACTORIES = {f.__name__: f for f in (tv_resnet18, tv_mobilenet_v3_small, tv_convnext_tiny, tv_convnext, tv_vit_tiny,
                                     timm_resnet18, timm_convnext_atto, timm_vit_tiny, timm_efficientnet_b0)}
