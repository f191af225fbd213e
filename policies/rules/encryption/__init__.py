"""Encryption: customer-managed keys on everything that stores data, with rotation and a deletion window."""
