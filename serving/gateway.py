"""The gateway across tiers: one runtime-neutral module and one module per runtime.

* serving/gateway_config.py - what any runtime runs: routes, consumers, the rendered LiteLLM proxy config (with the
  request guard and the consumer authentication shipped beside it), and the bootstrap that unpacks those files where
  there is no config volume.
* serving/gateway_k8s.py - Kubernetes (self-hosted tiers and hybrids on them): `Gateway`, the proxy as a Deployment.
* serving/gateway_ecs.py - ECS on Fargate (AWS API and SageMaker tiers, hybrids on SageMaker): `GatewayEcs`.
* serving/gateway_cloud_run.py - Cloud Run (GCP API and Vertex AI tiers, hybrids on Vertex AI): `GatewayCloudRun`.
"""
