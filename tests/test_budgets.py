"""Budgets at the planned cost: every example stack gets a monthly budget at its plan's `spend.cloudMonthlyUsd`, scoped
to its own resources, alerting at 80/100/120 % of actual spend and 100 % of the forecast on the same topic its other
alerts go to. Amounts are read from each stack file's own `llm-hosting:spend`; a stack file without one gets the
example block below (as `llmhost plan` writes it) in a copy of the project, so the tests hold before and after the
examples carry their plan's spend."""

from __future__ import annotations

import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from components.aws_budget import AwsBudgetArgs
from components.contract import aws_tags, gcp_labels
from components.gcp_budget import GcpBudgetArgs, money
from planner.stack_config import BUDGET_ALERT_PERCENTS
from preview.harness import run_preview
from preview.mocks import ACCOUNT_ID, PROJECT_NUMBER
from tests.conftest import ROOT
from tests.test_preview import INVENTORIED

AWS_BUDGET, GCP_BUDGET = "aws:budgets/budget:Budget", "gcp:billing/budget:Budget"
COST_TAG = "aws:costexplorer/costAllocationTag:CostAllocationTag"
BILLING_ACCOUNT = "01ABCD-23EF45-6789AB"
BUDGET_NOTIFIER = "serviceAccount:billing-budget-alert@system.gserviceaccount.com"
EXAMPLE_SPEND = {  # what the planner writes for startup-api; the API caps only where the stack has an api section
    "plannedMonthlyUsd": 575.0, "cloudMonthlyUsd": 493.0, "apiMonthlyUsd": 82.13, "staffingMonthlyUsd": 0.0,
    "drift": {"dailyTokensNow": 1800000, "dailyTokensProjected": 2500000, "growthMonthlyPercent": 10.0,
              "upperDailyTokens": 450000000, "upperReason": "self-hosted costs no more than openai/gpt-4o-mini at every "
                                                            "volume from 13.5B tokens/month",
              "lowerDailyTokens": None, "lowerReason": None},
}
API_CAPS = {"apiRequestsPerMinute": 8, "apiTokensPerMinute": 9600, "apiHeadroom": 1.5}
_SCRATCH = tempfile.TemporaryDirectory(prefix="llmhost-budgets-")  # the project copies, shared by the module's tests


def _config(stack: str) -> dict:
    return yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]


def _with_spend(config: dict, billing_account: bool = True) -> dict:
    """The stack's own spend section, or the example one; GCP stacks name a billing account (a budget needs one)."""
    spend = dict(config.get("llm-hosting:spend") or {**EXAMPLE_SPEND, **(API_CAPS if "llm-hosting:api" in config else {})})
    if config["llm-hosting:cloud"] == "gcp":
        if billing_account:
            spend.setdefault("billingAccount", BILLING_ACCOUNT)
        else:
            spend.pop("billingAccount", None)
    return {**config, "llm-hosting:spend": spend}


@lru_cache(maxsize=None)
def _project(variant: str) -> Path:
    """A copy of the project whose stack files are edited by `variant`: planned (spend, billing account on GCP),
    no-billing-account (spend without one), unplanned (no spend at all: a hand-written stack)."""
    dst = Path(_SCRATCH.name) / variant
    dst.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "stacks", dst / "stacks")
    for stack in INVENTORIED:
        path = dst / "stacks" / f"Pulumi.{stack}.yaml"
        doc = yaml.safe_load(path.read_text())
        if variant == "planned":
            doc["config"] = _with_spend(doc["config"])
        elif variant == "no-billing-account":
            doc["config"] = _with_spend(doc["config"], billing_account=False)
        else:
            doc["config"].pop("llm-hosting:spend", None)
        path.write_text(yaml.safe_dump(doc))
    return dst


@lru_cache(maxsize=None)
def preview(stack: str, variant: str = "planned"):
    return run_preview(_project(variant), stack)


def spend_of(stack: str) -> dict:
    """The spend section the planned preview ran with, read back from its stack file."""
    return yaml.safe_load((_project("planned") / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]["llm-hosting:spend"]


def cloud_of(stack: str) -> str:
    return _config(stack)["llm-hosting:cloud"]


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"{result.stack}: expected one {type_}, got {[r.name for r in found]}"
    return found[0]


AWS_STACKS = [s for s in INVENTORIED if cloud_of(s) == "aws"]
GCP_STACKS = [s for s in INVENTORIED if cloud_of(s) == "gcp"]


# -- the budget's amount and scope ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", AWS_STACKS)
def test_aws_budget_is_the_plans_cloud_cost_on_the_resources_tagged_with_this_stack(stack):
    result = preview(stack)
    spend, config = spend_of(stack), _config(stack)
    budget = one(result, AWS_BUDGET)
    assert (budget.inputs["budgetType"], budget.inputs["timeUnit"], budget.inputs["limitUnit"]) == ("COST", "MONTHLY", "USD")
    assert float(budget.inputs["limitAmount"]) == pytest.approx(spend["cloudMonthlyUsd"], abs=0.005)
    # The filter names this stack's tag, in the Budgets form for a user-defined cost allocation tag, and nothing else.
    assert budget.inputs["costFilters"] == [{"name": "TagKeyValue", "values": [f"user:llm-hosting:stack${stack}"]}]
    # ... and that is the tag the stack's resources carry (what the budget will count).
    stack_tag = aws_tags(stack, config["llm-hosting:tier"], config["llm-hosting:residency"]["classification"])
    tagged = [r for r in result.resources if r.custom and isinstance(r.inputs.get("tags"), dict)]
    assert tagged and all(r.inputs["tags"].get("llm-hosting:stack") == stack_tag["llm-hosting:stack"] for r in tagged), \
        [r.name for r in tagged if r.inputs["tags"].get("llm-hosting:stack") != stack]
    assert result.outputs["budget_name"] == budget.inputs["name"] == f"llm-hosting-{stack}-monthly"


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_gcp_budget_is_the_plans_cloud_cost_on_this_stacks_project_and_label(stack):
    result = preview(stack)
    spend, config = spend_of(stack), _config(stack)
    budget = one(result, GCP_BUDGET)
    assert budget.inputs["billingAccount"] == spend["billingAccount"]
    amount = budget.inputs["amount"]["specifiedAmount"]
    assert amount["currencyCode"] == "USD"
    assert int(amount["units"]) + amount.get("nanos", 0) / 1e9 == pytest.approx(spend["cloudMonthlyUsd"], abs=0.005)
    label = gcp_labels(stack, config["llm-hosting:tier"], config["llm-hosting:residency"]["classification"])["llm-hosting-stack"]
    flt = budget.inputs["budgetFilter"]
    # The project by number (what the API keeps), and the stack's own label: this stack only.
    assert flt["projects"] == [f"projects/{PROJECT_NUMBER}"]
    assert flt["labels"] == {"llm-hosting-stack": label}
    labelled = [r for r in result.resources if r.custom and isinstance(r.inputs.get("labels"), dict)
                and "llm-hosting-stack" in r.inputs["labels"]]
    assert labelled and {r.inputs["labels"]["llm-hosting-stack"] for r in labelled} == {label}
    assert result.outputs["budget_name"] == budget.inputs["displayName"] == f"llm-hosting-{stack}-monthly"


# -- where the alerts go --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", AWS_STACKS)
def test_aws_budget_alerts_at_80_100_120_percent_actual_and_100_forecast_on_the_stacks_alert_topic(stack):
    result = preview(stack)
    notifications = one(result, AWS_BUDGET).inputs["notifications"]
    topic = result.outputs["alerts_topic"]
    assert {(n["notificationType"], n["threshold"]) for n in notifications} == \
        {("ACTUAL", p) for p in BUDGET_ALERT_PERCENTS} | {("FORECASTED", 100)}
    assert len(notifications) == len(BUDGET_ALERT_PERCENTS) + 1
    for n in notifications:
        assert (n["comparisonOperator"], n["thresholdType"]) == ("GREATER_THAN", "PERCENTAGE")
        assert n["subscriberSnsTopicArns"] == [topic]
        assert not n.get("subscriberEmailAddresses")


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_gcp_budget_alerts_at_80_100_120_percent_actual_and_100_forecast_on_the_stacks_alert_topic(stack):
    result = preview(stack)
    budget = one(result, GCP_BUDGET)
    assert sorted((r["spendBasis"], r["thresholdPercent"]) for r in budget.inputs["thresholdRules"]) == \
        sorted([("CURRENT_SPEND", p / 100) for p in BUDGET_ALERT_PERCENTS] + [("FORECASTED_SPEND", 1.0)])
    assert budget.inputs["allUpdatesRule"] == {"pubsubTopic": result.outputs["alerts_topic"], "schemaVersion": "1.0"}


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_aws_alert_topic_admits_this_accounts_budgets_and_its_key_lets_them_encrypt(stack):
    result = preview(stack)
    topic_arn = result.outputs["alerts_topic"]
    policy = one(result, "aws:sns/topicPolicy:TopicPolicy")
    assert policy.inputs["arn"] == topic_arn
    [allow] = [s for s in json.loads(policy.inputs["policy"])["Statement"]
               if s["Effect"] == "Allow" and s["Principal"] == {"Service": "budgets.amazonaws.com"}]
    assert allow["Action"] == "sns:Publish" and allow["Resource"] == topic_arn
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                                  "ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{ACCOUNT_ID}:*"}}
    topic = next(r for r in result.by_type("aws:sns/topic:Topic") if r.inputs.get("name") == f"llm-hosting-{stack}-alerts")
    key = next(r for r in result.by_type("aws:kms/key:Key") if r.urn in _key_urns(result, topic))
    services = [s for s in json.loads(key.inputs["policy"])["Statement"] if "Service" in s["Principal"]]
    granted = {svc for s in services for svc in _as_list(s["Principal"]["Service"])}
    assert "budgets.amazonaws.com" in granted
    [grant] = [s for s in services if "budgets.amazonaws.com" in _as_list(s["Principal"]["Service"])]
    assert sorted(_as_list(grant["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    # The budget is created once budgets may publish: it waits for the topic policy.
    assert policy.urn in one(result, AWS_BUDGET).dependencies


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_gcp_alert_topic_lets_cloud_billing_publish_before_the_budget_names_it(stack):
    result = preview(stack)
    topic = next(r for r in result.by_type("gcp:pubsub/topic:Topic") if r.inputs["name"] == f"llm-hosting-{stack}-alerts")
    [grant] = [r for r in result.by_type("gcp:pubsub/topicIAMMember:TopicIAMMember") if r.inputs["member"] == BUDGET_NOTIFIER]
    assert (grant.inputs["topic"], grant.inputs["role"]) == (topic.inputs["name"], "roles/pubsub.publisher")
    assert grant.urn in one(result, GCP_BUDGET).dependencies


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_the_stack_tag_is_activated_for_cost_allocation_and_kept_when_the_stack_goes(stack):
    result = preview(stack)
    tag = one(result, COST_TAG)
    assert tag.inputs == {"tagKey": "llm-hosting:stack", "status": "Active"}
    # Account-wide: destroying one stack must not deactivate it for the others.
    assert tag.options.get("retainOnDelete") is True
    # The budget does not wait for it: activation can lag the billing data by a day, the budget need not.
    assert tag.urn not in one(result, AWS_BUDGET).dependencies


@pytest.mark.parametrize("stack", INVENTORIED)
def test_the_plans_cost_is_exported_beside_what_was_built(stack):
    spend = spend_of(stack)
    assert preview(stack).outputs["planned_monthly_cost_usd"] == {
        "total": spend["plannedMonthlyUsd"], "cloud": spend["cloudMonthlyUsd"],
        "api": spend.get("apiMonthlyUsd", 0.0), "staffing": spend.get("staffingMonthlyUsd", 0.0)}


# -- GKE cost allocation and the API tier's topic -------------------------------------------------------------------

@pytest.mark.parametrize("stack", GCP_STACKS)
def test_gke_clusters_itemise_their_costs_by_workload(stack):
    clusters = preview(stack).by_type("gcp:container/cluster:Cluster")
    for cluster in clusters:
        assert cluster.inputs.get("costManagementConfig") == {"enabled": True}, cluster.name


def test_some_example_runs_gke_so_the_cost_allocation_check_is_not_vacuous():
    assert any(preview(s).by_type("gcp:container/cluster:Cluster") for s in GCP_STACKS)


@pytest.mark.parametrize("stack", [s for s in INVENTORIED if _config(s)["llm-hosting:tier"] == "api"])
def test_api_stacks_have_an_alert_topic_that_their_budget_notifies(stack):
    result = preview(stack)
    topic = result.outputs["alerts_topic"]
    if cloud_of(stack) == "aws":
        assert one(result, "aws:sns/topic:Topic").inputs["name"] == f"llm-hosting-{stack}-alerts"
        assert {a for n in one(result, AWS_BUDGET).inputs["notifications"] for a in n["subscriberSnsTopicArns"]} == {topic}
    else:
        assert one(result, "gcp:pubsub/topic:Topic").inputs["name"] == f"llm-hosting-{stack}-alerts"
        assert one(result, GCP_BUDGET).inputs["allUpdatesRule"]["pubsubTopic"] == topic


# -- where there is no budget, and what the components refuse ------------------------------------------------------

@pytest.mark.parametrize("stack", GCP_STACKS)
def test_a_gcp_stack_without_a_billing_account_builds_no_budget(stack):
    result = preview(stack, "no-billing-account")
    assert not result.by_type(GCP_BUDGET)
    assert "budget_name" not in result.outputs
    assert not [r for r in result.by_type("gcp:pubsub/topicIAMMember:TopicIAMMember") if r.inputs["member"] == BUDGET_NOTIFIER]
    # The plan's cost is still reported, and the alerts still have their topic.
    assert "planned_monthly_cost_usd" in result.outputs and "alerts_topic" in result.outputs


@pytest.mark.parametrize("stack", ["startup-api", "eu-residency-api"])
def test_a_hand_written_stack_without_spend_builds_no_budget(stack):
    result = preview(stack, "unplanned")
    assert not result.by_type(AWS_BUDGET) and not result.by_type(GCP_BUDGET) and not result.by_type(COST_TAG)
    assert "budget_name" not in result.outputs and "planned_monthly_cost_usd" not in result.outputs
    assert "alerts_topic" in result.outputs


@pytest.mark.parametrize("amount", [0, 0.0, -12.5])
def test_a_budget_refuses_a_non_positive_amount(amount):
    with pytest.raises(ValueError, match=r"amount_usd: a budget needs a positive monthly amount"):
        AwsBudgetArgs(stack="s", amount_usd=amount, topic_arn="arn:aws:sns:us-east-1:1:t", tags={"llm-hosting:stack": "s"})
    with pytest.raises(ValueError, match=r"amount_usd: a budget needs a positive monthly amount"):
        GcpBudgetArgs(stack="s", billing_account=BILLING_ACCOUNT, amount_usd=amount, topic_id="projects/p/topics/t",
                      project=None, labels={"llm-hosting-stack": "s"})


def test_a_budget_refuses_labels_or_tags_it_cannot_filter_on():
    with pytest.raises(ValueError, match=r"llm-hosting:stack=s"):
        AwsBudgetArgs(stack="s", amount_usd=10, topic_arn="arn:aws:sns:us-east-1:1:t", tags={"team": "ml"})
    with pytest.raises(ValueError, match=r"llm-hosting-stack"):
        GcpBudgetArgs(stack="s", billing_account=BILLING_ACCOUNT, amount_usd=10, topic_id="projects/p/topics/t",
                      project=None, labels={"team": "ml"})


@pytest.mark.parametrize("usd,expected", [(493.0, ("493", 0)), (82.13, ("82", 130_000_000)), (0.5, ("0", 500_000_000)),
                                          (1234.565, ("1234", 570_000_000))])
def test_gcp_amounts_are_whole_dollars_and_nanos_to_the_cent(usd, expected):
    assert money(usd) == expected


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _key_urns(result, topic) -> set[str]:
    """The URNs of the KMS keys inside the alert topic's component (the topic's own key)."""
    component = topic.parent
    keys = {r.name for r in result.resources if r.parent == component}  # the key component(s) under the topic's
    return {r.urn for r in result.by_type("aws:kms/key:Key") if r.parent in keys}
