"""Every region, not six: the per-region price tables, the managed estimates derived from them, the region note when
a plan leaves the home region, and the 405B class that needs a whole 8-GPU node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from planner.catalog import load_catalog
from planner.costmodel import fit_replica
from planner.errors import InputError
from planner.report import render_report
from planner.stackgen import stack_config_from
from tests.test_rules import profile, run

CATALOG_FILE = Path(__file__).resolve().parent.parent / "planner" / "catalog.yaml"


def confidential(cloud: str, regions: list[str], model: str = "8b", quality: str = "small", team: str = "limited") -> dict:
    return profile(cloud=cloud, regions=regions, model=model, quality=quality, team=team, sensitivity="confidential")


def with_405b(d: dict) -> dict:
    d["model"] = {"id": "meta-llama/Llama-3.1-405B-Instruct", "size_class": "405b", "fine_tuned": False}
    return d


# ---------------------------------------------------------------------------------------------------------------
# Planning in the home region


@pytest.mark.parametrize("cloud, home, team", [("aws", "eu-west-1", "limited"), ("aws", "eu-north-1", "limited"),
                                               ("gcp", "europe-west1", "dedicated"), ("gcp", "asia-northeast1", "dedicated")])
def test_a_confidential_profile_plans_in_its_home_region(catalog, cloud, home, team):
    # Before the region tables these were refused: no SageMaker price in eu-west-1, no GPU price at all in the others.
    decision = run(catalog, confidential(cloud, [home], team=team))
    assert decision.chosen.region == home
    assert decision.chosen.region_note is None


def test_a_plan_that_leaves_home_says_why(catalog):
    d = confidential("aws", ["eu-west-1", "us-east-1"])
    decision = run(catalog, d)
    c = decision.chosen
    assert c.region == "us-east-1"
    assert c.region_note.startswith("runs in us-east-1, not the home region eu-west-1")
    assert re.search(r"capacity in eu-west-1 costs \d+% more per token than in us-east-1, above the 5% a plan gives up "
                     r"to stay at home", c.region_note)
    report = render_report(decision, stack_config_from(decision, "profile.yaml", catalog), "test", "profile.yaml")
    assert f"- Region: {c.region_note}." in report


def test_a_near_tie_keeps_the_home_region(catalog):
    # g2 in us-east4 lists a few cents a day below us-central1: not worth leaving home (and its registry mirror) for.
    decision = run(catalog, confidential("gcp", ["us-central1", "us-east4"], team="dedicated"))
    assert decision.chosen.region == "us-central1" and decision.chosen.region_note is None
    decision = run(catalog, confidential("gcp", ["us-east4", "us-central1"], team="dedicated"))
    assert decision.chosen.region == "us-east4" and decision.chosen.region_note is None


# ---------------------------------------------------------------------------------------------------------------
# The tables as rows


def _tables():
    return yaml.safe_load(CATALOG_FILE.read_text())["region_prices"]


def test_every_table_row_is_a_priced_row_with_its_source(catalog):
    listed = {(i["cloud"], i["instance_type"], i["region"]): i for i in yaml.safe_load(CATALOG_FILE.read_text())["instances"]
              if i["service"] == "compute"}
    rows = {(i.cloud, i.instance_type, i.region): i for i in catalog.instances if i.service == "compute"}
    for table in _tables():
        for itype, prices in table["prices"].items():
            for region, (od, spot) in prices.items():
                key = (table["cloud"], itype, region)
                row = rows[key]
                if key in listed:  # a hand-listed row wins over the table
                    assert row.on_demand_hourly == listed[key]["on_demand_hourly"]
                    continue
                assert row.on_demand_hourly == od and row.spot_hourly == spot
                assert "skypilot-org/skypilot-catalog" in row.source
                assert row.estimate == table.get("estimate", False)
                if row.estimate:
                    assert row.basis


def test_the_tables_cover_the_regions_with_gpus_the_kit_serves_on(catalog):
    def regions(cloud):
        return {i.region for i in catalog.instances if i.cloud == cloud and i.service == "compute"}

    assert len(regions("aws")) >= 16 and {"eu-west-1", "eu-west-2", "eu-west-3", "ap-south-1", "ca-central-1"} <= regions("aws")
    assert len(regions("gcp")) >= 22 and {"europe-west1", "europe-west3", "asia-northeast1", "us-east4"} <= regions("gcp")


def test_the_p4d_and_p5_table_rows_are_scaled_to_the_listed_post_cut_price(catalog):
    p5 = {i.region: i for i in catalog.instances if i.instance_type == "p5.48xlarge" and i.service == "compute"}
    assert p5["us-east-1"].on_demand_hourly == 55.04 and not p5["us-east-1"].estimate
    assert p5["ap-south-1"].estimate and p5["ap-south-1"].spot_hourly is None
    assert p5["ap-south-1"].on_demand_hourly == pytest.approx(118.0 * 55.04 / 98.32, rel=1e-3)


def test_managed_estimates_are_marked_with_their_basis(catalog):
    compute = {(i.cloud, i.instance_type, i.region): i for i in catalog.instances if i.service == "compute"}
    listed = {(i["cloud"], i["service"], i["instance_type"], i["region"]) for i in yaml.safe_load(CATALOG_FILE.read_text())["instances"]}
    derived = [i for i in catalog.instances if i.service in ("sagemaker", "vertex")
               and (i.cloud, i.service, i.instance_type, i.region) not in listed]
    assert len(derived) > 50
    for m in derived:
        assert m.estimate and m.basis and m.spot_hourly is None
        twin = compute[(m.cloud, m.ec2_twin or m.instance_type, m.region)]
        assert m.on_demand_hourly == pytest.approx(twin.on_demand_hourly * m.premium_over_ec2, abs=1e-4)
        assert f"{twin.on_demand_hourly:g}" in m.basis
    ml = {(i.instance_type, i.region): i for i in derived if i.service == "sagemaker"}
    assert ml[("ml.g5.xlarge", "eu-west-1")].premium_over_ec2 == 1.4  # the listed us-east-1 ratio, 1.408 / 1.006
    assert any(i.service == "vertex" and i.region == "europe-west1" for i in derived)


# ---------------------------------------------------------------------------------------------------------------
# The 405B class


@pytest.mark.parametrize("gpu, gpus", [("H100", 8), ("H200", 4)])
def test_405b_fits_on_one_node_of_80_gb_or_larger_gpus_at_fp8(catalog, gpu, gpus):
    fit = fit_replica(catalog, "405b", gpu, 131072)
    assert fit is not None and fit.precision == "fp8" and fit.gpus_per_replica == gpus


@pytest.mark.parametrize("gpu", ["A100-80GB", "A100-40GB", "L40S", "A10G", "L4"])
def test_405b_does_not_fit_on_smaller_nodes(catalog, gpu):
    assert fit_replica(catalog, "405b", gpu, 131072) is None


def test_405b_plans_on_a_p5_node(catalog):
    decision = run(catalog, with_405b(confidential("aws", ["us-east-1"], quality="strong-open", team="dedicated")))
    assert decision.chosen.plan.option.fit.gpu == "H100"
    assert decision.chosen.plan.option.fit.gpus_per_replica == 8


def test_405b_is_refused_where_no_node_holds_it(catalog):
    with pytest.raises(InputError) as exc:
        run(catalog, with_405b(confidential("aws", ["eu-west-1"], quality="strong-open", team="dedicated")))
    problems = dict(exc.value.problems)
    why = problems["model.size_class"]
    assert why.startswith("405b needs 8 x H100 at fp8 or 4 x H200 at fp8 on one node")
    assert "no instance in eu-west-1 has that" in why and "multi-node" in why
    assert "p5.48xlarge" in why and re.search(r"smaller model.size_class .*8b", why)


# ---------------------------------------------------------------------------------------------------------------
# The loader


@pytest.mark.parametrize("row, message", [
    ("      eu-west-2: [-1.0, null]", "on-demand price must be a positive number"),
    ("      eu-west-2: [1.0, 2.0]", "spot price must be above 0 and below the on-demand"),
    ("      eu-west-2: [1.0]", "region_prices[0].prices.g5.xlarge.eu-west-2[1]: is required"),
    ("      mars-north-1: [1.0, null]", "not a aws region in regions.yaml"),
])
def test_the_loader_refuses_a_malformed_price_row_naming_it(tmp_path, row, message):
    text = CATALOG_FILE.read_text()
    start = text.index("region_prices:")
    at = text.index("    g5.xlarge:\n", start) + len("    g5.xlarge:\n")
    bad = tmp_path / "catalog.yaml"
    bad.write_text(text[:at] + row + "\n" + text[at:].replace("      eu-west-2: ", "      # eu-west-2: ", 1))
    with pytest.raises(InputError) as exc:
        load_catalog(bad)
    shown = str(exc.value)
    assert message in shown and "g5.xlarge" in shown


def test_the_loader_refuses_a_table_row_for_an_unknown_instance_type(tmp_path):
    text = CATALOG_FILE.read_text()
    start = text.index("region_prices:")
    at = text.index("  prices:\n", start) + len("  prices:\n")
    bad = tmp_path / "catalog.yaml"
    bad.write_text(text[:at] + "    g9.xlarge:\n      us-east-1: [1.0, null]\n" + text[at:])
    with pytest.raises(InputError) as exc:
        load_catalog(bad)
    assert "region_prices[0].prices.g9.xlarge: not an instance type in instance_shapes.aws" in str(exc.value)
