"""The impact graph as a picture, laid out on the server and drawn as SVG by the template.

Columns are depths (the analysed CI on the left), the last column the business services reached.
Nodes are filled by CI class and sit on a band coloured by depth; every node is a link that
highlights the path explaining its impact; a business service highlights the path to the
nearest CI that leads to it.
"""

from __future__ import annotations

from typing import Any

COLUMN = 230
ROW = 46
NODE_W = 190
NODE_H = 34
TOP = 40
PER_COLUMN = 14
CLASS_COLOURS = ("#1f5fa8", "#8a3b12", "#2d6a2d", "#6b2f86", "#7a5c00", "#005f66", "#8b1a3a", "#3d4a5c")


def _short(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def impact_picture(report: dict[str, Any], focus: str | None) -> dict[str, Any]:
    root = report["ci"]
    cis = report["cis"]
    classes = sorted({root["ci_class"], *(c["ci_class"] for c in cis)})
    colour = {name: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, name in enumerate(classes)}
    nodes: dict[str, dict[str, Any]] = {}

    def place(ci: dict[str, Any], depth: int, row: int) -> None:
        nodes[ci["id"]] = {"id": ci["id"], "label": _short(f"{ci['number']} {ci['name']}"), "number": ci["number"],
                           "name": ci["name"], "ci_class": ci["ci_class"], "depth": depth,
                           "x": 20 + depth * COLUMN, "y": TOP + row * ROW, "fill": colour[ci["ci_class"]],
                           "kind": "ci", "domain": ci.get("domain")}

    place(root, 0, 0)
    per_depth: dict[int, int] = {}
    hidden: dict[int, int] = {}
    for ci in cis:
        depth = ci["depth"]
        row = per_depth.get(depth, 0)
        if row >= PER_COLUMN:
            hidden[depth] = hidden.get(depth, 0) + 1
            continue
        per_depth[depth] = row + 1
        place(ci, depth, row)
    for depth, count in report["by_depth"].items():
        shown = per_depth.get(int(depth), 0)
        if count > shown:
            hidden[int(depth)] = count - shown
    max_depth = max([0, *per_depth])
    parents: dict[str, str] = {}
    edges = []
    for ci in cis:
        if ci["id"] not in nodes:
            continue
        path = ci["path"]
        parent = path[-2]["ci_id"] if len(path) > 1 else root["id"]
        parents[ci["id"]] = parent
        if parent in nodes:
            edges.append({"from": parent, "to": ci["id"], "type": path[-1]["relationship_type"] if path else ""})

    service_x = 20 + (max_depth + 1) * COLUMN
    business = []
    for row, svc in enumerate(report["business_services"][:PER_COLUMN]):
        node_id = "service:" + svc["id"]
        via = next((v for v in svc["via_ci_ids"] if v in nodes), None)
        nodes[node_id] = {"id": node_id, "label": _short(f"{svc['number']} {svc['name']}"), "number": svc["number"],
                          "name": svc["name"], "depth": None, "x": service_x, "y": TOP + row * ROW, "kind": "service",
                          "fill": "#ffffff", "count": svc["via_ci_count"], "service_id": svc["id"]}
        if via is not None:
            edges.append({"from": via, "to": node_id, "type": "supports"})
            parents[node_id] = via
        business.append(nodes[node_id])

    highlighted: set[tuple[str, str]] = set()
    trail: list[dict[str, Any]] = []
    if focus and focus in nodes:
        node = focus
        while node in parents:
            highlighted.add((parents[node], node))
            trail.append(nodes[node])
            node = parents[node]
        trail.append(nodes[root["id"]])
        trail.reverse()
    for edge in edges:
        a, b = nodes[edge["from"]], nodes[edge["to"]]
        edge.update(x1=a["x"] + NODE_W, y1=a["y"] + NODE_H / 2, x2=b["x"], y2=b["y"] + NODE_H / 2,
                    on=(edge["from"], edge["to"]) in highlighted)
        edge["mx"] = (edge["x1"] + edge["x2"]) / 2
    rows = max([1, *per_depth.values(), len(business)])
    bands = [{"x": 10 + d * COLUMN, "depth": d, "hidden": hidden.get(d, 0)} for d in range(max_depth + 1)]
    return {"nodes": list(nodes.values()), "edges": sorted(edges, key=lambda e: e["on"]), "bands": bands,
            "width": service_x + NODE_W + 30, "height": TOP + rows * ROW + 40, "service_x": service_x,
            "legend": list(colour.items()), "trail": trail, "focus_node": nodes.get(focus) if focus else None,
            "node_w": NODE_W, "node_h": NODE_H, "band_w": COLUMN - 20}
