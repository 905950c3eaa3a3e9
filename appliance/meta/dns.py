"""DNS zone transfers with dnspython: AXFR, and IXFR (from the serial of the last copy) where the
server offers it. The stored text is the whole zone in master-file form either way: an IXFR is
applied to the previous copy, so every stored copy stands alone."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.query
import dns.rdatatype
import dns.xfr
import dns.zone

from appliance.errors import SluiceError


def _serial(zone: dns.zone.Zone) -> int:
    soa = zone.find_rdataset(zone.origin, dns.rdatatype.SOA)
    return int(soa[0].serial)


def transfer(source: dict[str, Any], previous: str | None) -> tuple[str, dict[str, Any]]:
    """(zone text, details) of source's zone from source's server; IXFR when a previous copy exists."""
    server, zone_name = str(source["server"]), str(source["zone"])
    port = int(source.get("port", 53))
    try:
        if previous and source.get("ixfr", True):
            zone = dns.zone.from_text(previous, origin=zone_name, relativize=False)
            old = _serial(zone)
            try:
                dns.query.inbound_xfr(server, zone, dns.xfr.make_query(zone, serial=old)[0], port=port,
                                      timeout=15, lifetime=60)
                method = "ixfr"
            except (dns.xfr.TransferError, dns.exception.FormError):
                zone = dns.zone.Zone(zone_name, relativize=False)
                dns.query.inbound_xfr(server, zone, port=port, timeout=15, lifetime=60)
                method = "axfr"
        else:
            zone = dns.zone.Zone(zone_name, relativize=False)
            dns.query.inbound_xfr(server, zone, port=port, timeout=15, lifetime=60)
            method = "axfr"
            old = None
    except (dns.exception.DNSException, OSError) as exc:
        raise SluiceError(f"zone transfer of {zone_name} from {server}: {exc}") from None
    text = zone.to_text(sorted=True, relativize=False)
    return text, {"method": method, "serial": _serial(zone), "from_serial": old,
                  "records": sum(len(rds) for _, rds in zone.iterate_rdatasets())}
