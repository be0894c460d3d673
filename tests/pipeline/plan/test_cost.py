"""The sizing plan's cost model (pipeline/plan/cost.py) on known inputs, and its throughput sources."""

from __future__ import annotations

import pytest

from pipeline.plan import prices as data
from pipeline.plan.cost import (Catalog, Instance, UnknownInstance, featurize_time, gp2_bytes_s, makespan,
                             select_throughput, stage_cost)

M5_4XL = Instance("ml.m5.4xlarge", 16, 5.0, 0.922, 10.0)


class TestValidCostModel:
    def test_stream_overlaps_transfer_and_compute(self):
        t = featurize_time(27_000_000_000, M5_4XL, 1, 4.0, "stream", 30)
        assert t.compute_s == pytest.approx(27 * 4.0 / 16)  # 6.75 s over 16 vCPUs
        assert t.transfer_s == pytest.approx(27e9 / 625e6)  # 5 Gbps baseline = 625 MB/s: 43.2 s
        assert t.run_s == pytest.approx(43.2) and t.binds == "network"

    def test_download_copies_to_the_gp2_volume_first(self):
        small = featurize_time(27_000_000_000, M5_4XL, 1, 4.0, "download", 30)
        copy = 27e9 / (128 * 1024**2)  # 128 MiB/s up to 170 GiB, below the network's 625 MB/s
        assert small.transfer_s == pytest.approx(2 * copy)  # copied in, then read back
        assert small.run_s == pytest.approx(copy + max(6.75, copy)) and small.binds == "gp2 volume"
        large = featurize_time(27_000_000_000, M5_4XL, 1, 4.0, "download", 1024)
        assert large.transfer_s == pytest.approx(2 * 27e9 / (250 * 1024**2))
        assert gp2_bytes_s(170) == 128 * 1024**2 and gp2_bytes_s(171) == 250 * 1024**2

    def test_download_is_bounded_by_the_network_when_it_is_slower_than_the_volume(self):
        t3 = Instance("ml.t3.medium", 2, 0.256, 0.05)
        t = featurize_time(32_000_000, t3, 1, 0.0, "download", 30)
        read = 32e6 / (128 * 1024**2)
        assert (t.transfer_s, t.run_s, t.binds) == (pytest.approx(1.0 + read), pytest.approx(1.0 + read), "network")

    def test_compute_bound_with_few_cores(self):
        xl = Instance("ml.m5.xlarge", 4, 1.25, 0.23)
        t = featurize_time(10_000_000_000, xl, 1, 100.0, "stream", 30)
        assert (t.compute_s, t.transfer_s, t.binds) == (pytest.approx(250.0), pytest.approx(64.0), "compute")

    def test_makespan_schedules_longest_first_in_waves(self):
        assert makespan([5, 4, 3, 3, 3], 2) == 10  # A: 5+3, B: 4+3+3
        assert makespan([10.0] * 100, 50) == 20.0  # two waves
        assert makespan([7.0], 50) == 7.0 and makespan([], 5) == 0.0

    def test_stage_cost_adds_start_up_and_bills_per_instance(self):
        cost = stage_cost("Featurize", [100.0, 100.0, 100.0], M5_4XL, 2, slots=2, nbytes=3)
        wall = data.START_WALL_S + 100
        assert cost.wall_s == 2 * wall  # three jobs on two slots
        assert cost.instance_hours == pytest.approx(3 * (data.START_BILLED_S + 100) * 2 / 3600)
        assert cost.usd == pytest.approx(cost.instance_hours * 0.922)


class TestValidCatalog:
    def test_published_figures_and_overrides(self):
        catalog = Catalog(["ml.m5.4xlarge=1.5", "ml.z9.mega=2.0:64:40"])
        assert catalog.get("ml.m5.4xlarge") == Instance("ml.m5.4xlarge", 16, 5.0, 1.5, 10.0)
        assert catalog.get("ml.z9.mega") == Instance("ml.z9.mega", 64, 40.0, 2.0)
        assert Catalog().get("ml.m5.xlarge").usd_per_hour == 0.23
        for name in ("ml.m5.large", "ml.m5.24xlarge", "ml.c5.xlarge", "ml.c5.18xlarge", "ml.r5.large", "ml.t3.medium"):
            assert Catalog().get(name).vcpus > 0


class TestInvalidCatalog:
    def test_unknown_type_names_it_and_how_to_price_it(self):
        with pytest.raises(UnknownInstance, match=r"ml\.x9\.huge: .*--price ml\.x9\.huge=USD_PER_HOUR:VCPUS:"):
            Catalog().get("ml.x9.huge")

    def test_a_bare_price_for_an_unlisted_type_is_refused(self):
        with pytest.raises(UnknownInstance, match="ml.x9.huge"):
            Catalog(["ml.x9.huge=1.0"])

    @pytest.mark.parametrize("item", ["ml.m5.xlarge", "ml.m5.xlarge=cheap", "ml.m5.xlarge=1:2", "=1.0"])
    def test_malformed_price(self, item):
        with pytest.raises(ValueError, match="--price expects TYPE=USD"):
            Catalog([item])


def report(cpu_seconds: float, bytes_read: int, featurized: int = 10) -> dict:
    return {"cpu_seconds": cpu_seconds, "bytes_read": bytes_read, "records_featurized": featurized}


class TestValidThroughput:
    def test_reports_that_read_enough_are_the_measure(self):
        t = select_throughput([report(30.0, 4_000_000_000), report(10.0, 1_000_000_000), report(5.0, 0, 0)])
        assert t.cpu_s_per_gb == pytest.approx(40.0 / 5.0)
        assert t.source.startswith("measured by 2 Featurize report(s)")

    def test_reports_win_over_a_given_figure_and_say_so(self):
        t = select_throughput([report(8.0, 2_000_000_000)], given=3.0)
        assert t.cpu_s_per_gb == 4.0 and "--cpu-seconds-per-gb 3 not used" in t.source

    def test_a_given_figure_when_reports_read_too_little(self):
        t = select_throughput([report(2.0, 5_000_000)], given=3.0)
        assert t.cpu_s_per_gb == 3.0 and t.source.startswith("given with --cpu-seconds-per-gb (1 report(s) read only 5 MB)")

    def test_the_benchmark_figure_otherwise(self):
        t = select_throughput([])
        assert (t.cpu_s_per_gb, t.source) == (data.DEFAULT_CPU_S_PER_GB, data.DEFAULT_CPU_S_SOURCE)
        assert t.source.startswith("assumed from benchmarks/featurize_bench.py on ")
