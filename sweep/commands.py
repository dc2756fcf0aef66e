"""CLI commands of the sweep service: validate, submit, resume, status, compact."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="validate a study file and print its size (nothing is scheduled)")
    p.add_argument("study", help="study YAML file")
    p.add_argument("--storage", help="override the file's storage")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from sweep.spec import load_study

    study = load_study(args.study, storage=args.storage)
    print(f"{study.name}: {len(study.restarts)} restarts in {len(study.trials)} trials -> {study.study_uri}")
    return 0
