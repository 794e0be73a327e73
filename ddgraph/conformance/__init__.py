"""Conformance: every graph-level claim of the paper, predicted and measured."""
