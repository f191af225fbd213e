"""The stack's monthly Cloud Billing budget at the planned cloud cost, scoped to the stack's project and label.

The amount is the plan's `spend.cloudMonthlyUsd`, on the Cloud Billing account the plan names (`spend.billingAccount`).
The budget counts only costs in the stack's project that carry the stack's label (`llm-hosting-stack`,
components/contract.py gcp_labels), so two stacks sharing a project each hold their own plan. GKE workloads are counted
through the cluster's resource labels, which GKE puts on its nodes and disks (GkeCluster also turns on GKE cost
allocation for the per-namespace breakdown).

Alerts: Cloud Billing evaluates threshold rules at 80 %, 100 % and 120 % of actual spend
(planner/stack_config.py BUDGET_ALERT_PERCENTS) and 100 % of the month's forecast, and publishes the budget's status
to the stack's alert topic (GcpAlertChannel) several times a day; each message carries `alertThresholdExceeded` once a
rule has fired, which is what on-call tooling keys on. Billing account administrators and users also get the e-mails
Cloud Billing sends by default.

What the caller needs (Cloud Billing Budget API, billingbudgets.googleapis.com):
- Billing Account Costs Manager (or Administrator) on the billing account, to create the budget;
- pubsub.topics.setIamPolicy on the topic: Cloud Billing checks it when a budget names a topic;
- with user credentials (gcloud auth application-default login) a quota project with the Budget API enabled, named
  with `GOOGLE_BILLING_PROJECT=<project>` and `USER_PROJECT_OVERRIDE=true` in the environment (or the provider's
  `gcp:billingProject` / `gcp:userProjectOverride`), or the API answers 403. A service account's own project is its
  quota project.
The amount is in USD, the plan's currency; Cloud Billing refuses a budget whose currency is not the billing account's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from planner.stack_config import BUDGET_ALERT_PERCENTS

from .contract import STACK_TAG_PREFIX

STACK_LABEL_KEY = f"{STACK_TAG_PREFIX}-stack"  # the key gcp_labels writes; what the budget filters on
FORECAST_PERCENT = 100  # warn before the month ends over plan, not only after
SCHEMA_VERSION = "1.0"  # the only notification schema Cloud Billing publishes


def display_name(stack: str) -> str:
    return f"llm-hosting-{stack}-monthly"[:60]  # the API's limit


def money(amount_usd: float) -> tuple[str, int]:
    """USD as google.type.Money: whole units (a string) and nanos, to the cent."""
    cents = Decimal(str(amount_usd)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    units = int(cents)
    return str(units), int((cents - units) * 1_000_000_000)


@dataclass(frozen=True)
class GcpBudgetArgs:
    stack: str
    billing_account: str  # the plan's spend.billingAccount: XXXXXX-XXXXXX-XXXXXX
    amount_usd: float  # the plan's spend.cloudMonthlyUsd
    topic_id: pulumi.Input[str]  # projects/<project>/topics/<topic>: the stack's alert topic
    project: Optional[str]  # None = the provider's gcp:project
    labels: dict[str, str]  # the stack's labels (gcp_labels): the budget counts resources carrying its stack label
    alert_percents: tuple[int, ...] = BUDGET_ALERT_PERCENTS  # of actual spend
    forecast_percent: Optional[int] = FORECAST_PERCENT  # of forecasted spend; None = no forecast rule
    wait_for: list = field(default_factory=list)  # the topic's publisher grant for Cloud Billing
    protect: bool = True

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: the stack name is required")
        if not self.billing_account:
            raise ValueError("billing_account: the Cloud Billing account id (spend.billingAccount) is required")
        if not self.amount_usd > 0:
            raise ValueError(f"amount_usd: a budget needs a positive monthly amount (the plan's spend.cloudMonthlyUsd), "
                             f"got {self.amount_usd!r}")
        if STACK_LABEL_KEY not in self.labels:
            raise ValueError(f"labels: the stack's labels must carry {STACK_LABEL_KEY} (components/contract.py gcp_labels), "
                             "which the budget filters on")
        if not self.alert_percents or any(p <= 0 for p in self.alert_percents):
            raise ValueError(f"alert_percents: positive percentages of the budget, got {self.alert_percents!r}")


class GcpBudget(pulumi.ComponentResource):
    budget_name: str  # the display name; the API's own id (billingAccounts/<id>/budgets/<id>) is `budget_id`
    budget_id: pulumi.Output[str]

    def __init__(self, name: str, args: GcpBudgetArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpBudget", name, None, opts)
        # The filter names projects by number (projects/<number>); an id would read back as a change on every refresh.
        project = gcp.organizations.get_project_output(project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self))
        units, nanos = money(args.amount_usd)
        rules = [gcp.billing.BudgetThresholdRuleArgs(threshold_percent=p / 100, spend_basis="CURRENT_SPEND")
                 for p in args.alert_percents]
        if args.forecast_percent is not None:
            rules.append(gcp.billing.BudgetThresholdRuleArgs(threshold_percent=args.forecast_percent / 100,
                                                             spend_basis="FORECASTED_SPEND"))
        self.budget_name = display_name(args.stack)
        budget = gcp.billing.Budget(
            f"{name}-budget",
            billing_account=args.billing_account,
            display_name=self.budget_name,
            amount=gcp.billing.BudgetAmountArgs(specified_amount=gcp.billing.BudgetAmountSpecifiedAmountArgs(
                currency_code="USD", units=units, nanos=nanos)),
            budget_filter=gcp.billing.BudgetBudgetFilterArgs(
                projects=[project.number.apply(lambda n: f"projects/{n}")],
                # One label pair: the API takes no more.
                labels={STACK_LABEL_KEY: args.labels[STACK_LABEL_KEY]},
                calendar_period="MONTH"),
            threshold_rules=rules,
            all_updates_rule=gcp.billing.BudgetAllUpdatesRuleArgs(pubsub_topic=args.topic_id,
                                                                  schema_version=SCHEMA_VERSION),
            # Protected like the stack's keys: deleting the budget silently removes the spend guardrail.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=list(args.wait_for)))
        self.budget_id = budget.name
        self.register_outputs({"budget_name": self.budget_name, "budget_id": self.budget_id})
