"""The gateway across tiers lives in two modules:

* serving/gateway_config.py - what any runtime runs: routes, consumers and the rendered LiteLLM proxy config (with
  the request guard and the consumer authentication shipped beside it).
* serving/gateway_k8s.py - the Kubernetes runtime: `Gateway` / `GatewayArgs`, the proxy as a Deployment.
"""
