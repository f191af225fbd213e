"""The stack's monthly AWS Budget at the planned cloud cost, scoped to the stack's own resources by its tag.

The amount is the plan's `spend.cloudMonthlyUsd`: what the cloud bills for this stack's resources, not the API or the
people. The budget sees only costs tagged `llm-hosting:stack=<stack>` (components/contract.py aws_tags), so several
stacks in one account each hold their own plan. It alerts the stack's alert topic (AwsAlertTopic) when actual spend
passes 80 %, 100 % and 120 % of the plan (planner/stack_config.py BUDGET_ALERT_PERCENTS) and when the month's forecast
passes 100 %: the same place the stack's other alarms go, so the team subscribes once.

A tag filters costs only once it is an *active cost allocation tag*, which this component turns on. Two facts of AWS
billing decide how that goes:

- A user-defined tag key can be activated only after it appears in the billing data, which takes up to 24 hours after
  the first resource carrying it is created. On a new account (or the first stack with this tag) the activation
  therefore fails on the first `pulumi up` (Cost Explorer reports the tag key as not found). Everything else is
  created; run `pulumi up` again the next day. Costs before activation are not attributed unless a backfill is
  requested (Billing console, Cost allocation tags, Backfill tags).
- Cost allocation tags are managed by the organization's management (payer) account. In a member account the
  activation is refused ("Linked account doesn't have access to cost allocation tags"): activate
  `llm-hosting:stack` once in the management account instead
  (`aws ce update-cost-allocation-tags-status --cost-allocation-tags-status TagKey=llm-hosting:stack,Status=Active`)
  and build with `activate_cost_allocation_tag=False`.

Activation is account-wide, shared by every stack that carries the tag, so it is retained when a stack is destroyed:
removing one stack must not blind the others' budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from planner.stack_config import BUDGET_ALERT_PERCENTS

from .contract import STACK_TAG_PREFIX

STACK_TAG_KEY = f"{STACK_TAG_PREFIX}:stack"  # the key aws_tags writes; what the budget filters on
FORECAST_PERCENT = 100  # warn before the month ends over plan, not only after


def budget_name(stack: str) -> str:
    return f"llm-hosting-{stack}-monthly"


def tag_filter_value(value: str) -> str:
    """The Budgets TagKeyValue form of a user-defined cost allocation tag: `user:<key>$<value>`."""
    return f"user:{STACK_TAG_KEY}${value}"


def limit_amount(amount_usd: float) -> str:
    # To the cent: a float's repr (82.13000000000001 after arithmetic) is not an amount anyone budgets.
    return f"{amount_usd:.2f}"


@dataclass(frozen=True)
class AwsBudgetArgs:
    stack: str
    amount_usd: float  # the plan's spend.cloudMonthlyUsd
    topic_arn: pulumi.Input[str]  # the stack's alert topic, whose policy admits budgets.amazonaws.com
    alert_percents: tuple[int, ...] = BUDGET_ALERT_PERCENTS  # of actual spend
    forecast_percent: Optional[int] = FORECAST_PERCENT  # of forecasted spend; None = no forecast alert
    # False where the account cannot activate cost allocation tags itself (an organization's member account).
    activate_cost_allocation_tag: bool = True
    # The stack's tags (aws_tags): the budget counts the costs of resources carrying its llm-hosting:stack tag.
    tags: dict[str, str] = field(default_factory=dict)
    wait_for: list = field(default_factory=list)  # what must exist before budgets can publish (the topic's policy)
    protect: bool = True

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: the stack name is required")
        if not self.amount_usd > 0:
            raise ValueError(f"amount_usd: a budget needs a positive monthly amount (the plan's spend.cloudMonthlyUsd), "
                             f"got {self.amount_usd!r}")
        if self.tags.get(STACK_TAG_KEY) != self.stack:
            raise ValueError(f"tags: the stack's tags must carry {STACK_TAG_KEY}={self.stack} (components/contract.py "
                             "aws_tags), which the budget filters on")
        if not self.alert_percents or any(p <= 0 for p in self.alert_percents):
            raise ValueError(f"alert_percents: positive percentages of the budget, got {self.alert_percents!r}")


class AwsBudget(pulumi.ComponentResource):
    budget_name: str
    limit_amount: str

    def __init__(self, name: str, args: AwsBudgetArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:AwsBudget", name, None, opts)
        if args.activate_cost_allocation_tag:
            aws.costexplorer.CostAllocationTag(
                f"{name}-cost-allocation-tag", tag_key=STACK_TAG_KEY, status="Active",
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        notifications = [aws.budgets.BudgetNotificationArgs(
            comparison_operator="GREATER_THAN", notification_type="ACTUAL", threshold=float(p),
            threshold_type="PERCENTAGE", subscriber_sns_topic_arns=[args.topic_arn]) for p in args.alert_percents]
        if args.forecast_percent is not None:
            notifications.append(aws.budgets.BudgetNotificationArgs(
                comparison_operator="GREATER_THAN", notification_type="FORECASTED",
                threshold=float(args.forecast_percent), threshold_type="PERCENTAGE",
                subscriber_sns_topic_arns=[args.topic_arn]))
        self.budget_name = budget_name(args.stack)
        self.limit_amount = limit_amount(args.amount_usd)
        # Not made to wait for the tag's activation: a budget on a tag that is not active yet is valid (it counts
        # nothing until the tag is), and it should exist even while the activation waits for the billing data.
        aws.budgets.Budget(
            f"{name}-budget",
            name=self.budget_name,
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=self.limit_amount,
            limit_unit="USD",
            cost_filters=[aws.budgets.BudgetCostFilterArgs(name="TagKeyValue", values=[tag_filter_value(args.tags[STACK_TAG_KEY])])],
            notifications=notifications,
            tags=args.tags,
            # Protected like the stack's keys: deleting the budget silently removes the spend guardrail.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=list(args.wait_for)))
        self.register_outputs({"budget_name": self.budget_name, "limit_amount": self.limit_amount})
