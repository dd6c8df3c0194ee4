"""The CI classes every installation starts with: JSON Schemas for their attributes, the
attributes worth having, and the rules that say two records are the same CI."""

from __future__ import annotations

from typing import Any

_HOST = {
    "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
    "fqdn": {"type": "string", "maxLength": 255},
    "ip": {"type": "string", "format": "ipv4"},
    "serial_number": {"type": "string", "minLength": 1, "maxLength": 100},
    "os": {"type": "string", "maxLength": 100},
    "cpu_cores": {"type": "integer", "minimum": 1},
    "ram_gb": {"type": "number", "minimum": 0},
    "location": {"type": "string", "maxLength": 200},
}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


# name: (label, schema, recommended, identification rules, source precedence)
DEFAULT_CLASSES: dict[str, tuple[str, dict[str, Any], list[str], list[list[str]], list[str]]] = {
    "server": ("Server", _schema(_HOST, ["hostname"]), ["ip", "os", "serial_number", "location"],
               [["serial_number"], ["hostname", "domain"]], ["manual", "cmdb-scan", "aws-auto-discovery"]),
    "virtual_machine": ("Virtual machine", _schema({**_HOST, "hypervisor": {"type": "string"},
                                                    "instance_id": {"type": "string", "minLength": 1}},
                                                   ["hostname"]),
                        ["ip", "os", "cpu_cores", "ram_gb"], [["instance_id"], ["hostname", "domain"]],
                        ["manual", "cmdb-scan", "aws-auto-discovery"]),
    "database": ("Database", _schema({"engine": {"type": "string", "minLength": 1}, "version": {"type": "string"},
                                      "host": {"type": "string"}, "port": {"type": "integer", "minimum": 1,
                                                                           "maximum": 65535},
                                      "size_gb": {"type": "number", "minimum": 0}}, ["engine"]),
                 ["version", "host", "port"], [["host", "port", "engine"]], ["manual", "cmdb-scan"]),
    "application": ("Application", _schema({"version": {"type": "string"}, "language": {"type": "string"},
                                            "repo": {"type": "string"}, "url": {"type": "string", "format": "uri"}},
                                           []),
                    ["version", "repo"], [["repo"]], ["manual", "ci-pipeline"]),
    "network_device": ("Network device", _schema({"hostname": {"type": "string", "minLength": 1},
                                                  "ip": {"type": "string", "format": "ipv4"},
                                                  "serial_number": {"type": "string", "minLength": 1},
                                                  "model": {"type": "string"}, "ports": {"type": "integer",
                                                                                         "minimum": 0}},
                                                 ["hostname"]),
                       ["ip", "serial_number", "model"], [["serial_number"], ["hostname", "domain"]],
                       ["manual", "snmp-discovery"]),
    "storage": ("Storage", _schema({"serial_number": {"type": "string", "minLength": 1},
                                    "capacity_tb": {"type": "number", "minimum": 0},
                                    "vendor": {"type": "string"}}, []),
                ["capacity_tb", "vendor"], [["serial_number"]], ["manual", "cmdb-scan"]),
    "load_balancer": ("Load balancer", _schema({"hostname": {"type": "string", "minLength": 1},
                                                "vip": {"type": "string", "format": "ipv4"}}, ["hostname"]),
                      ["vip"], [["hostname", "domain"]], ["manual", "snmp-discovery"]),
    "container_cluster": ("Container cluster", _schema({"cluster_id": {"type": "string", "minLength": 1},
                                                        "platform": {"type": "string"},
                                                        "nodes": {"type": "integer", "minimum": 0}},
                                                       ["cluster_id"]),
                          ["platform", "nodes"], [["cluster_id"]], ["manual", "k8s-discovery"]),
}
