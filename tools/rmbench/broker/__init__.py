"""The bench MQTT broker: amqtt behind a gate that does what AWS IoT does for an ESP RainMaker
node (mutual TLS with the claim CA, client id = certificate CN, a node's own topics only).

- `identities`: the broker's server certificate (from the claiming service's server CA) and
  client identities from the claim CA;
- `mqtt`: MQTT 3.1.1 packets as the gate reads them, and a node's topic policy;
- `gate`: the front door, and the record of what each client did (events.jsonl);
- `server`: the broker process (`python -m rmbench.broker`);
- `harness`: `running_broker()` for tests and benchmarks.
"""

from __future__ import annotations

from rmbench.errors import BenchError


class BrokerError(BenchError):
    """The bench broker did not start, or did not see what was expected."""
