"""Models to run ddgraph on: the project's zoo of small architectures and real architectures
(transformers, torchvision, timm) built from configs with random weights."""
