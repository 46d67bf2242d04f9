"""Configurable building blocks of multi-task models: encoders, heads, architectures."""
