"""The CrossGuard policy pack: data residency, the security baseline, and the links between a stack's parts.

A real Pulumi policy pack (PulumiPolicy.yaml, Python runtime) run with
`pulumi preview --policy-pack policies --policy-pack-config stacks/<stack>.policy-config.json`, and the same
policy objects applied in-process by `llmhost preview` to the offline inventory.

- rules/<area>/<rule>.py: one rule per file (residency, boundary, airgap, encryption, baseline, links), each a
  `Rule` (metadata a reviewer reads) plus its check, built into a pulumi-policy policy by rulekit.py.
- placement.py: where pods can run (node pools with the labels and taints the cloud adds, requests against node
  sizes, spread over zones), shared by the link rules.
- strict_input.py: the one place input files are read (UTF-8, size, nesting, aliases, repeated keys), shared with
  the planner's loaders (the pack's own virtualenv ships only this folder).
- config.py: each policy's config schema, the stack facts -> policy config mapping, and its validation (pure).
- exceptions.py / exceptions.yaml: the exceptions register (one policy, one stack, one resource, a reason,
  an approver and an expiry date).
- engine.py: runs the policies on recorded resources (`evaluate`, `evaluate_preview`, `check_preview`).
- catalogue.py: the catalogue behind `llmhost policies` and docs/policies.md.
- __main__.py: builds the PolicyPack and nothing else (constructing it starts the analyzer server).

This file imports nothing, so importing `policies.config` never pulls in the Pulumi SDK.
"""
