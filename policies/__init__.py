"""The CrossGuard policy pack: data residency and the security baseline."""
