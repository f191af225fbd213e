"""Offline preview: run the real Pulumi program in-process under mocks, with no cloud and no Pulumi CLI."""
