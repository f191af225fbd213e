"""vLLM and TGI workloads on Kubernetes with failover, and the gateway across tiers."""
