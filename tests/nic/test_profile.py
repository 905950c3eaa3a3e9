"""The capture profile built from config values: the supervisor's way in."""

from __future__ import annotations

import pytest

from appliance.errors import SluiceError
from appliance.nic.profile import CaptureProfile, feature_name, profile_from_mapping


def test_defaults_are_the_contract() -> None:
    p = CaptureProfile()
    assert (p.rx_usecs, p.mtu, p.hw_timestamps, p.irq_cpus) == (50, None, True, None)
    assert {"rx-gro", "rx-lro", "tx-tcp-segmentation", "tx-generic-segmentation",
            "rx-vlan-hw-parse", "rx-checksum"} <= set(p.features_off)


def test_validated_nic_section_of_the_config_is_accepted_whole() -> None:
    from appliance.config import loads

    cfg = loads('[capture]\ninterfaces = ["span0"]\nspool = "/tmp/x"\n\n'
                "[nic]\nrx_usecs = 20\nmtu = 9000\nirq_cpus = [1, 2]\nhw_timestamps = false\n")
    p = profile_from_mapping(cfg.sections["nic"])
    assert (p.rx_usecs, p.mtu, p.irq_cpus, p.hw_timestamps) == (20, 9000, [1, 2], False)
    defaults = profile_from_mapping(loads('[capture]\ninterfaces = ["span0"]\nspool = "/tmp/x"\n')
                                    .sections["nic"])
    assert (defaults.mtu, defaults.irq_cpus) == (None, None)  # 0 and [] mean "leave as is"


@pytest.mark.parametrize("values, word", [
    ({"rx_usec": 5}, "unknown key"),
    ({"rx_usecs": -1}, "rx_usecs"),
    ({"rx_usecs": True}, "rx_usecs"),
    ({"mtu": 20}, "mtu"),
    ({"irq_cpus": [1, "2"]}, "irq_cpus"),
    ({"promiscuous": "yes"}, "promiscuous"),
    ({"features_on": ["rx-gro"]}, "both off and on"),
])
def test_bad_values_are_one_clear_error(values: dict, word: str) -> None:
    with pytest.raises(SluiceError) as err:
        profile_from_mapping(values)
    assert word in str(err.value) and err.value.exit_code == 2


def test_aliases_both_ways() -> None:
    assert feature_name("gro") == "rx-gro" and feature_name("generic-receive-offload") == "rx-gro"
    assert feature_name("rx-gro-list") == "rx-gro-list" and feature_name("rx-all") == "rx-all"
