"""Baseline: least privilege, hardened node metadata, no plain-text secrets, protected stateful resources."""
