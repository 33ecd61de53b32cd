"""`python -m rmbench.broker --state-dir DIR --service-dir SVC [--host H] [--port N]
[--bench-port N] [--name NAME ...]`: the bench MQTT broker in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path

from rmbench.broker.server import BrokerSettings, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rmbench.broker", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True, help="the broker's own files")
    parser.add_argument(
        "--service-dir",
        type=Path,
        required=True,
        help="the claiming service's state dir (its server CA signs the broker certificate, "
        "its claim CA verifies the boards)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of the boards' TLS port")
    parser.add_argument("--port", type=int, default=0, help="TLS port (0: any free port)")
    parser.add_argument("--bench-port", type=int, default=0, help="bench port on 127.0.0.1")
    parser.add_argument(
        "--name", action="append", default=[], help="another name for the certificate (repeat)"
    )
    args = parser.parse_args(argv)
    run(
        BrokerSettings(
            state_dir=args.state_dir,
            service_dir=args.service_dir,
            host=args.host,
            port=args.port,
            bench_port=args.bench_port,
            names=tuple(args.name),
        )
    )


if __name__ == "__main__":
    main()
