"""Residency: resources, replicas, keys and providers stay in the stack's allowed regions."""
