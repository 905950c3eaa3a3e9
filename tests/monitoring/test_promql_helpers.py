"""The metric-name extraction the rule and dashboard checks rely on."""

from __future__ import annotations

from tests.monitoring.promql import metric_names


def test_selectors_functions_and_grouping_are_told_apart() -> None:
    expr = (
        'sum by (job, instance) (rate(sluice_capture_packets_total{interface=~"span.*"}[5m]))'
        " / on (job, instance) group_left(version) sluice_build_info"
        " and abs(sluice_time_offset_seconds) > 0.01"
    )
    assert metric_names(expr) == {"sluice_capture_packets_total", "sluice_build_info",
                                  "sluice_time_offset_seconds"}


def test_recording_rule_names_and_name_matchers_are_found() -> None:
    expr = (
        'instance_interface:sluice_capture_loss:ratio_rate5m > 0.001 or '
        '{__name__=~"sluice_disk_free_bytes|node_filesystem_avail_bytes"}'
    )
    assert metric_names(expr) == {"instance_interface:sluice_capture_loss:ratio_rate5m",
                                  "sluice_disk_free_bytes", "node_filesystem_avail_bytes"}


def test_grafana_variables_and_strings_are_not_metrics() -> None:
    expr = 'label_replace(sluice_nic_link_up{instance=~"$instance"}, "box", "$1", "instance", "(.*)")'
    assert metric_names(expr) == {"sluice_nic_link_up"}


def test_an_unknown_name_is_reported() -> None:
    assert "sluice_made_up_total" in metric_names("rate(sluice_made_up_total[5m]) * 2")
