"""Command line for CI and for a first run: `python -m data_assets.cli simulate ...`.

Materializing the data graph is Dagster's own CLI (`dg launch`, see the README); this module only
does what Dagster has no command for: writing a day of mock device uploads into the landing zone
of the active profile's object store.
"""

import argparse
import json
import sys
from datetime import date

from data_assets.simulator import FORMATS, FaultRates, manifest_key, simulate_day, write_day
from resources.object_store import object_store_for
from resources.settings import SettingsError, load_settings


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day; expected YYYY-MM-DD") from None


def _formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not valid; expected a comma-separated subset of {','.join(FORMATS)}"
        )
    return formats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_assets.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate", help="write one day of mock device uploads into landing/")
    sim.add_argument("--day", type=_day, required=True, help="UTC day, YYYY-MM-DD")
    sim.add_argument("--devices", type=int, default=8)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--formats", type=_formats, default=list(FORMATS), help="jsonl,csv")
    sim.add_argument("--no-gzip", action="store_true", help="never gzip the files")
    sim.add_argument(
        "--faults", action="store_true", help="inject typical device faults (see the manifest)"
    )
    sim.add_argument(
        "--keep-existing",
        action="store_true",
        help="leave a day that already has mock data as it is",
    )
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error("--devices must be at least 1")

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Resolves the dg.EnvVar secrets of the cluster profile's store, as Dagster would.
    store = object_store_for(settings).process_config_and_initialize()
    simulated = simulate_day(
        args.day,
        devices=args.devices,
        seed=args.seed,
        formats=args.formats,
        gzip_files=not args.no_gzip,
        faults=FaultRates.typical() if args.faults else FaultRates(),
    )
    manifest = write_day(store, simulated, overwrite=not args.keep_existing)
    expected = manifest["expected"]
    print(
        f"{args.day}: {len(manifest['files'])} files from {manifest['devices']} devices in "
        f"the landing bucket of {store.describe()}; manifest {manifest_key(args.day)}\n"
        f"expected after curation: {json.dumps(expected)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
