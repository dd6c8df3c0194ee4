"""Benchmarks: `python -m bench [api|portfolio|cmdb|itsm|workflow|mixed|knowledge|ui|all]` prints figures
against same-run baselines (see bench/README.md); `all` runs every suite at the default (the issues')
scale and ends with one table of every figure."""

from __future__ import annotations

import argparse

from bench import api, cmdb, itsm, knowledge, mixed, portfolio, ui, workflow
from bench.common import BenchDatabase, print_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", nargs="?", default="all",
                        choices=["api", "portfolio", "cmdb", "itsm", "workflow", "mixed", "knowledge", "ui", "all"])
    parser.add_argument("--scale", type=int, default=300, help="operations per API measurement")
    parser.add_argument("--services", type=int, default=100_000, help="portfolio: services in all")
    parser.add_argument("--domains", type=int, default=10, help="portfolio: domains")
    parser.add_argument("--entries", type=int, default=1_000_000, help="portfolio: cost entries in all")
    parser.add_argument("--repeat", type=int, default=30, help="portfolio, cmdb: runs of each measured request")
    parser.add_argument("--cis", type=int, default=1_000_000, help="cmdb: CIs in the layered graph")
    parser.add_argument("--import-rows", type=int, default=100_000, help="cmdb: CIs in the import measurement")
    parser.add_argument("--incidents", type=int, default=1_000_000, help="itsm: incidents in all")
    parser.add_argument("--changes", type=int, default=100_000, help="itsm: changes in all")
    parser.add_argument("--itsm-cis", type=int, default=100_000, help="itsm: CIs in all")
    parser.add_argument("--itsm-domains", type=int, default=10, help="itsm: domains")
    parser.add_argument("--event-rate", type=int, default=200, help="workflow: events per second")
    parser.add_argument("--event-seconds", type=float, default=20, help="workflow: seconds of sustained events")
    parser.add_argument("--agents", type=int, default=50, help="mixed: simulated service-desk agents")
    parser.add_argument("--seconds", type=int, default=300, help="mixed: measured run time")
    parser.add_argument("--workers", type=int, default=2, help="mixed: API processes")
    parser.add_argument("--articles", type=int, default=100_000, help="knowledge: articles in all")
    parser.add_argument("--kb-incidents", type=int, default=1_000_000, help="knowledge: incidents in all")
    parser.add_argument("--page-repeat", type=int, default=30, help="ui: requests of each page")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--keep", action="store_true", help="keep the portfolio database (to explain queries)")
    args = parser.parse_args()
    if args.suite in ("api", "all"):
        db = BenchDatabase()
        try:
            api.run(db, scale=args.scale, seed=args.seed)
        finally:
            db.drop()
    if args.suite in ("portfolio", "all"):
        db = BenchDatabase()
        try:
            portfolio.run(db, services=args.services, domains=args.domains, entries=args.entries,
                          repeat=args.repeat, seed=args.seed)
        finally:
            if args.keep:
                print(f"kept database {db.name} on {db.server_url}")
            else:
                db.drop()
    if args.suite in ("cmdb", "all"):
        db = BenchDatabase()
        try:
            cmdb.run(db, cis=args.cis, repeat=args.repeat, seed=args.seed, import_rows=args.import_rows)
        finally:
            if args.keep:
                print(f"kept database {db.name} on {db.server_url}")
            else:
                db.drop()

    if args.suite in ("itsm", "all"):
        db = BenchDatabase()
        try:
            itsm.run(db, incidents=args.incidents, changes=args.changes, cis=args.itsm_cis,
                     domains=args.itsm_domains, repeat=args.repeat, scale=args.scale, seed=args.seed)
        finally:
            if args.keep:
                print(f"kept database {db.name} on {db.server_url}")
            else:
                db.drop()

    if args.suite in ("workflow", "all"):
        db = BenchDatabase()
        try:
            workflow.run(db, rate=args.event_rate, seconds=args.event_seconds)
        finally:
            db.drop()

    if args.suite in ("mixed", "all"):
        db = BenchDatabase()
        try:
            mixed.run(db, agents=args.agents, seconds=args.seconds, workers=args.workers, seed=args.seed)
        finally:
            db.drop()

    if args.suite in ("knowledge", "all"):
        db = BenchDatabase()
        try:
            knowledge.run(db, articles=args.articles, incidents=args.kb_incidents, domains=10, repeat=args.repeat,
                          seed=args.seed)
        finally:
            if args.keep:
                print(f"kept database {db.name} on {db.server_url}")
            else:
                db.drop()

    if args.suite in ("ui", "all"):
        db = BenchDatabase()
        try:
            ui.run(db, repeat=args.page_repeat)
        finally:
            db.drop()
    if args.suite == "all":
        print_summary()


if __name__ == "__main__":
    main()
